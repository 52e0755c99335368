// Package xpress implements the XPRESS Huffman compression format as used in
// WIM files: every chunk is compressed independently, starts with a 256-byte
// table of 512 4-bit codeword lengths, and continues with a bitstream of
// 16-bit little-endian coding units interleaved with raw length bytes.
package xpress

import (
	"errors"
	"fmt"

	"github.com/minint/minint/wim/internal/huffman"
)

// ErrCorrupt is returned (possibly wrapped with detail) for any malformed input.
var ErrCorrupt = errors.New("xpress: corrupt compressed data")

const (
	numChars      = 256
	numSymbols    = 512
	maxCodeLen    = 15
	minMatchLen   = 3
	maxOffset     = 65535
	decTableBits  = 11
	headerSize    = numSymbols / 2
	endOfDataSym  = 256
	maxMatchLen   = 65538
	numLenHeaders = 16
)

// tableCap is the decode table's size: a power of two at least
// huffman.TableSize(numSymbols, decTableBits, maxCodeLen), so that masked
// indexes need no bounds checks in the decoding loop.
const tableCap = 1 << 14

// Decompressor is reusable and not safe for concurrent use (one per goroutine).
type Decompressor struct {
	lens    [numSymbols]uint8
	scratch [numSymbols]uint16
	// An array rather than a pointer to one: a pointer would be checked
	// for nil at every symbol.
	table [tableCap]uint32
	// The chunk being decoded, for decode.
	dst, in []byte
}

// NewDecompressor returns a Decompressor for chunks of any size up to 64 KiB
// (XPRESS offsets cannot reach further).
func NewDecompressor() *Decompressor {
	if huffman.TableSize(numSymbols, decTableBits, maxCodeLen) > tableCap {
		panic("xpress: decode table too small")
	}
	return &Decompressor{}
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Decompress decompresses one WIM chunk. len(dst) is the exact uncompressed
// size. It never panics and never writes past dst; on error the contents of
// dst are unspecified.
func (d *Decompressor) Decompress(dst, src []byte) error {
	if len(src) < headerSize {
		return corrupt("%d bytes is shorter than the %d-byte code header", len(src), headerSize)
	}
	for i, b := range src[:headerSize] {
		d.lens[2*i] = b & 0xF
		d.lens[2*i+1] = b >> 4
	}
	// A root table no wider than the longest codeword is cheaper to fill,
	// which matters for the many small chunks of small files.
	tb, err := huffman.BuildDecodeTableShort(d.table[:], d.lens[:], decTableBits, maxCodeLen, d.scratch[:])
	if err != nil {
		return corrupt("bad Huffman code")
	}
	d.dst, d.in = dst, src[headerSize:]
	err = d.decode(0, 0, 0, 0, 0, tb)
	d.dst, d.in = nil, nil
	return err
}

// decode decodes the bitstream in with the code in d.table, whose root
// table has tb bits. It is written for the compiler: table indexes are
// masked to the table's size and shift counts to 31, so neither needs a
// check, and positions are unsigned, so the compiler proves the input and
// output indexes in bounds. The unused second parameter occupies CX in the
// register calling convention: a parameter passed there tends to stay
// there, and CX must be free for shift counts. (The bit reader's state
// is passed in for the same reason: locals that start as constants may be
// given any register.)
func (d *Decompressor) decode(out, _ uint, buf uint32, left, pos, tb uint) error {
	dst, in := d.dst, d.in
	table := &d.table
	rs := (32 - tb) & 31 // the right shift that leaves a root table index
	// Bit reader state in locals, with bitstream.Reader's exact refill
	// policy: raw length bytes sit right after the units fetched so far.
	// Only the low byte of left counts: it is decremented by whole table
	// entries, whose low byte is the codeword length (one value for the
	// shift and the count, fewer registers).
	for out < uint(len(dst)) {
		if uint8(left) < 16 {
			if pos+1 < uint(len(in)) {
				buf |= (uint32(in[pos]) | uint32(in[pos+1])<<8) << ((16 - left) & 31)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		e := uint(table[(buf>>rs)&(tableCap-1)])
		if e&huffman.EntrySubtable != 0 {
			buf <<= tb & 31
			left -= tb
			// -e&31 is 32 minus the subtable's width (the entry's
			// high bits are multiples of 32).
			e = uint(table[((e>>huffman.EntrySymShift)+uint(buf>>(-e&31)))&(tableCap-1)])
		}
		// e&31 is the codeword length (at most 15; the flag bit is 1<<8).
		// left is decremented by the whole entry: only its low byte
		// counts (see above).
		buf <<= e & 31
		left -= e
		sym := e >> huffman.EntrySymShift
		if sym < numChars {
			dst[out] = byte(sym)
			out++
			continue
		}
		length := sym & 0xF
		log2Off := (sym >> 4) & 0xF
		if uint8(left) < 16 {
			if pos+1 < uint(len(in)) {
				buf |= (uint32(in[pos]) | uint32(in[pos+1])<<8) << ((16 - left) & 31)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		// log2Off may be 0: shift by 1 and then at most 31.
		offset := 1<<log2Off | uint((buf>>1)>>((31-log2Off)&31))
		buf <<= log2Off & 31
		left -= log2Off
		if length == 0xF {
			if pos < uint(len(in)) {
				length += uint(in[pos])
				pos++
			}
			if length == 0xF+0xFF {
				length = 0
				if pos+1 < uint(len(in)) {
					length = uint(in[pos]) | uint(in[pos+1])<<8
					pos += 2
				}
			}
		}
		length += minMatchLen
		if offset > out {
			return corrupt("match offset %d before start of data at position %d", offset, out)
		}
		if length > uint(len(dst))-out {
			return corrupt("match of length %d runs past end of data at position %d", length, out)
		}
		src := out - offset
		if offset >= 8 && length <= 16 && uint(len(dst))-out >= 16 {
			// Words are copied as arrays: two bounds checks each.
			// (d.dst is read again here, so that its capacity,
			// which the slicing checks, is not kept in a register.)
			dst := d.dst
			*(*[8]byte)(dst[out : out+8]) = *(*[8]byte)(dst[src : src+8])
			*(*[8]byte)(dst[out+8 : out+16]) = *(*[8]byte)(dst[src+8 : src+16])
		} else {
			lzCopy(d.dst, int(out), int(offset), int(length))
		}
		out += length
	}
	return nil
}

// lzCopy copies a match of length bytes from offset bytes back, in place,
// with the overlapping-copy (run-length) semantics of LZ77. The caller has
// checked 0 < offset <= out and out+length <= len(dst).
func lzCopy(dst []byte, out, offset, length int) {
	src := out - offset
	if offset >= length {
		copy(dst[out:out+length], dst[src:src+length])
		return
	}
	if offset == 1 {
		b := dst[src]
		s := dst[out : out+length]
		for i := range s {
			s[i] = b
		}
		return
	}
	end := out + length
	for out < end {
		out += copy(dst[out:end], dst[src:out])
	}
}
