// Package xpress implements the XPRESS Huffman compression format as used in
// WIM files: every chunk is compressed independently, starts with a 256-byte
// table of 512 4-bit codeword lengths, and continues with a bitstream of
// 16-bit little-endian coding units interleaved with raw length bytes.
package xpress

import (
	"encoding/binary"
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
	table   *[tableCap]uint32
}

// NewDecompressor returns a Decompressor for chunks of any size up to 64 KiB
// (XPRESS offsets cannot reach further).
func NewDecompressor() *Decompressor {
	if huffman.TableSize(numSymbols, decTableBits, maxCodeLen) > tableCap {
		panic("xpress: decode table too small")
	}
	return &Decompressor{table: new([tableCap]uint32)}
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
	var longest uint8
	for _, l := range d.lens {
		longest = max(longest, l)
	}
	tb := min(decTableBits, max(uint32(longest), 1))
	if err := huffman.BuildDecodeTable(d.table[:], d.lens[:], uint(tb), maxCodeLen, d.scratch[:]); err != nil {
		return corrupt("bad Huffman code")
	}
	table := d.table
	in := src[headerSize:]
	// Bit reader state in locals, with bitstream.Reader's exact refill
	// policy: raw length bytes sit right after the units fetched so far.
	var buf, left uint32
	var pos, out uint // unsigned: the compiler then proves the indexes below in bounds
	for out < uint(len(dst)) {
		if left < 16 {
			if pos+1 < uint(len(in)) {
				buf |= (uint32(in[pos]) | uint32(in[pos+1])<<8) << (16 - left)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		e := table[(buf>>(32-tb))&(tableCap-1)]
		if e&huffman.EntrySubtable != 0 {
			buf <<= tb
			left -= tb
			e = table[((e>>huffman.EntrySymShift)+buf>>(32-(e&huffman.EntryLenMask)))&(tableCap-1)]
		}
		n := e & huffman.EntryLenMask
		buf <<= n
		left -= n
		sym := e >> huffman.EntrySymShift
		if sym < numChars {
			dst[out] = byte(sym)
			out++
			continue
		}
		length := int(sym & 0xF)
		log2Off := (sym >> 4) & 0xF
		if left < 16 {
			if pos+1 < uint(len(in)) {
				buf |= (uint32(in[pos]) | uint32(in[pos+1])<<8) << (16 - left)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		offset := uint(1<<log2Off | buf>>(32-log2Off))
		buf <<= log2Off
		left -= log2Off
		if length == 0xF {
			if pos < uint(len(in)) {
				length += int(in[pos])
				pos++
			}
			if length == 0xF+0xFF {
				length = 0
				if pos+1 < uint(len(in)) {
					length = int(in[pos]) | int(in[pos+1])<<8
					pos += 2
				}
			}
		}
		length += minMatchLen
		if offset > out {
			return corrupt("match offset %d before start of data at position %d", offset, out)
		}
		if uint(length) > uint(len(dst))-out {
			return corrupt("match of length %d runs past end of data at position %d", length, out)
		}
		src := out - offset
		if offset >= 8 && length <= 16 && uint(len(dst))-out >= 16 {
			binary.LittleEndian.PutUint64(dst[out:], binary.LittleEndian.Uint64(dst[src:]))
			binary.LittleEndian.PutUint64(dst[out+8:], binary.LittleEndian.Uint64(dst[src+8:]))
		} else {
			lzCopy(dst, int(out), int(offset), length)
		}
		out += uint(length)
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
