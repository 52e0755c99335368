package lzx

import (
	"encoding/binary"
	"fmt"

	"github.com/minint/minint/wim/internal/bitstream"
	"github.com/minint/minint/wim/internal/huffman"
)

const (
	mainTableBits    = 11
	lenTableBits     = 9
	preTableBits     = 6
	alignedTableBits = 7
	// A run-length code in the precode may run up to 50 entries past the
	// end of the lengths being read; the slack absorbs that harmlessly.
	lensOverrun = 50

	// Decode table sizes: powers of two at least huffman.TableSize for
	// each code, so that masked indexes need no bounds checks.
	mainTableCap    = 1 << 15
	lenTableCap     = 1 << 15
	preTableCap     = 1 << 14
	alignedTableCap = 1 << alignedTableBits
)

// Decompressor is reusable and not safe for concurrent use (one per goroutine).
type Decompressor struct {
	order    uint // 0: derive from each chunk's size
	mainLens [maxMainSyms + lensOverrun]uint8
	lenLens  [lenSyms + lensOverrun]uint8
	preLens  [preSyms]uint8
	alLens   [alignedSyms]uint8
	scratch  [maxMainSyms]uint16

	// Root table widths of the current block's main and length codes.
	mainBits, lenBits uint32

	// decodeFast's state that only matches use.
	in, dst    []byte
	rec        [numRecentOffsets]uint
	minAligned uint

	// The tables are arrays rather than pointers to them: a pointer
	// would be checked for nil at every symbol.
	mainTable [mainTableCap]uint32
	lenTable  [lenTableCap]uint32
	preTable  [preTableCap]uint32
	alTable   [alignedTableCap]uint32
}

func newDecompressor(order uint) *Decompressor {
	if huffman.TableSize(maxMainSyms, mainTableBits, maxMainCodeLen) > mainTableCap ||
		huffman.TableSize(lenSyms, lenTableBits, maxLenCodeLen) > lenTableCap ||
		huffman.TableSize(preSyms, preTableBits, maxPreCodeLen) > preTableCap ||
		huffman.TableSize(alignedSyms, alignedTableBits, maxAlignedCodeLen) > alignedTableCap {
		panic("lzx: decode table too small")
	}
	return &Decompressor{order: order}
}

// NewDecompressor returns a Decompressor for the default WIM chunk size of
// 32 KiB. Chunks larger than that are decoded with a window of their own
// size rounded up to a power of two, which is right for every chunk of a
// resource except a short last one: for chunk sizes above 32 KiB use
// NewDecompressorChunkSize so short chunks get the resource's window too.
func NewDecompressor() *Decompressor {
	return newDecompressor(0)
}

// NewDecompressorChunkSize returns a Decompressor for a WIM whose chunk size
// is chunkSize (32 KiB to 2 MiB): the LZX window, which changes how blocks
// and offsets are encoded, is the chunk size rounded up to a power of two.
func NewDecompressorChunkSize(chunkSize int) (*Decompressor, error) {
	o := windowOrder(chunkSize)
	if o == 0 {
		return nil, fmt.Errorf("lzx: chunk size %d outside 1..%d", chunkSize, 1<<maxWindowOrder)
	}
	return newDecompressor(o), nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// readLens reads a precode and then delta-coded codeword lengths into
// lens[:n] (which may overrun into the slack after it).
func (d *Decompressor) readLens(r *bitstream.Reader, lens []uint8, n int) error {
	for i := range d.preLens {
		d.preLens[i] = uint8(r.Read(4))
	}
	if err := huffman.BuildDecodeTable(d.preTable[:], d.preLens[:], preTableBits, maxPreCodeLen, d.scratch[:]); err != nil {
		return corrupt("bad precode")
	}
	delta := func(old uint8, presym uint32) uint8 {
		v := int(old) - int(presym)
		if v < 0 {
			v += 17
		}
		return uint8(v)
	}
	// The bit reader state lives in locals (with Reader's refill policy):
	// this loop runs for every block of every chunk, however small.
	pre := &d.preTable
	buf, left, pos, in := r.Buf, r.Left, r.Pos, r.In
	for i := 0; i < n; {
		if left < 16 {
			if pos+1 < len(in) {
				buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << (16 - left)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		e := pre[buf>>(32-preTableBits)]
		if e&huffman.EntrySubtable != 0 {
			buf <<= preTableBits
			left -= preTableBits
			e = pre[(e>>huffman.EntrySymShift)+buf>>(32-(e&huffman.EntryLenMask))]
		}
		buf <<= e & huffman.EntryLenMask
		left -= e & huffman.EntryLenMask
		presym := e >> huffman.EntrySymShift
		if presym < 17 {
			lens[i] = delta(lens[i], presym)
			i++
			continue
		}
		// Extra bits: 4, 5 or 1 (then another presymbol).
		nb := uint32(4)
		switch presym {
		case 18:
			nb = 5
		case 19:
			nb = 1
		}
		if left < nb {
			if pos+1 < len(in) {
				buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << (16 - left)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		x := int(buf >> (32 - nb))
		buf <<= nb
		left -= nb
		var run int
		var l uint8
		switch presym {
		case 17:
			run = 4 + x
		case 18:
			run = 20 + x
		default:
			run = 4 + x
			if left < 16 {
				if pos+1 < len(in) {
					buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << (16 - left)
					pos += 2
					left += 16
				} else {
					left = 32
				}
			}
			e := pre[buf>>(32-preTableBits)]
			if e&huffman.EntrySubtable != 0 {
				buf <<= preTableBits
				left -= preTableBits
				e = pre[(e>>huffman.EntrySymShift)+buf>>(32-(e&huffman.EntryLenMask))]
			}
			buf <<= e & huffman.EntryLenMask
			left -= e & huffman.EntryLenMask
			p := e >> huffman.EntrySymShift
			if p > 17 {
				return corrupt("bad precode symbol in run")
			}
			l = delta(lens[i], p)
		}
		for end := i + run; i < end; i++ {
			lens[i] = l
		}
	}
	r.Buf, r.Left, r.Pos = buf, left, pos
	return nil
}

// Decompress decompresses one WIM chunk. len(dst) is the exact uncompressed
// size. It never panics and never writes past dst; on error the contents of
// dst are unspecified.
func (d *Decompressor) Decompress(dst, src []byte) error {
	order := d.order
	if o := windowOrder(len(dst)); o == 0 {
		if len(dst) == 0 {
			return nil
		}
		return corrupt("chunk of %d bytes exceeds the largest LZX window", len(dst))
	} else if o > order {
		order = o
	}
	nMain := numMainSyms(order)
	clear(d.mainLens[:nMain])
	clear(d.lenLens[:lenSyms])
	recent := [numRecentOffsets]uint32{1, 1, 1}
	mayHaveE8 := false

	var r bitstream.Reader
	r.Init(src)
	out := 0
	for out < len(dst) {
		r.Ensure(4)
		btype := r.Pop(3)
		var bsize int
		if r.Pop(1) != 0 {
			bsize = defaultBlockSize
		} else {
			bsize = int(r.Read(16))
			if order >= 16 {
				bsize = bsize<<8 | int(r.Read(8))
			}
		}
		switch btype {
		case blockAligned, blockVerbatim:
			if btype == blockAligned {
				for i := range d.alLens {
					d.alLens[i] = uint8(r.Read(3))
				}
			}
			if err := d.readLens(&r, d.mainLens[:], numChars); err != nil {
				return err
			}
			if err := d.readLens(&r, d.mainLens[numChars:], nMain-numChars); err != nil {
				return err
			}
			if err := d.readLens(&r, d.lenLens[:], lenSyms); err != nil {
				return err
			}
		case blockUncompressed:
			// The header continues at the next 16-bit boundary; if
			// the stream is already aligned, 16 bits are skipped.
			r.Ensure(1)
			r.Align()
			for i := range recent {
				recent[i] = r.RawU32()
				if recent[i] == 0 {
					return corrupt("uncompressed block with recent offset 0")
				}
			}
		default:
			return corrupt("block type %d", btype)
		}
		if bsize < 1 || bsize > len(dst)-out {
			return corrupt("block size %d with %d bytes left to produce", bsize, len(dst)-out)
		}
		if btype == blockUncompressed {
			if len(r.In)-r.Pos < bsize {
				return corrupt("uncompressed block of %d bytes truncated", bsize)
			}
			copy(dst[out:out+bsize], r.In[r.Pos:])
			r.Pos += bsize
			if bsize&1 != 0 {
				r.RawByte()
			}
			mayHaveE8 = true
		} else {
			if err := d.decodeBlock(&r, dst[:out+bsize], out, btype, nMain, &recent); err != nil {
				return err
			}
			// E8 bytes can only come from an E8 literal in some block.
			mayHaveE8 = mayHaveE8 || d.mainLens[0xE8] != 0
		}
		out += bsize
	}
	if mayHaveE8 {
		e8Filter(dst, true)
	}
	return nil
}

// decodeBlock decodes a verbatim or aligned block producing dst[out:].
func (d *Decompressor) decodeBlock(r *bitstream.Reader, dst []byte, out int, btype uint32, nMain int, recent *[3]uint32) error {
	// Small chunks have short codes: a root table no wider than the
	// longest codeword is cheaper to fill, which matters for small files.
	mb, err := huffman.BuildDecodeTableShort(d.mainTable[:], d.mainLens[:nMain], mainTableBits, maxMainCodeLen, d.scratch[:])
	if err != nil {
		return corrupt("bad main code")
	}
	lb, err := huffman.BuildDecodeTableShort(d.lenTable[:], d.lenLens[:lenSyms], lenTableBits, maxLenCodeLen, d.scratch[:])
	if err != nil {
		return corrupt("bad length code")
	}
	if mb < mainTableBits && len(dst)-out >= widenMinBlock {
		widenRoot(&d.mainTable, mb)
		mb = mainTableBits
	}
	d.mainBits, d.lenBits = uint32(mb), uint32(lb)
	minAligned := uint32(maxOffsetSlots)
	if btype == blockAligned {
		if huffman.BuildDecodeTable(d.alTable[:], d.alLens[:], alignedTableBits, maxAlignedCodeLen, d.scratch[:]) != nil {
			return corrupt("bad aligned offset code")
		}
		minAligned = minAlignedSlot
	}
	mainTable, lenTable, alTable := &d.mainTable, &d.lenTable, &d.alTable
	mtb, ltb := d.mainBits, d.lenBits
	out, err = d.decodeFast(r, dst, out, minAligned, recent)
	if err != nil {
		return err
	}
	r0, r1, r2 := recent[0], recent[1], recent[2]
	// The bit reader's state lives in locals here, with Reader's refill
	// policy. Table indexes are masked to the tables' sizes and shift
	// counts to 31 ((32-e)&31, for an entry e, is 32 minus its length), so
	// that the compiler needs no checks or fixups for them.
	buf, left, pos, in := r.Buf, r.Left, r.Pos, r.In
	for out < len(dst) {
		if left < 16 {
			if pos+1 < len(in) {
				buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << ((16 - left) & 31)
				pos += 2
				left += 16
			} else {
				left = 32
			}
		}
		e := mainTable[(buf>>((32-mtb)&31))&(mainTableCap-1)]
		if e&huffman.EntrySubtable != 0 {
			buf <<= mtb & 31
			left -= mtb
			e = mainTable[((e>>huffman.EntrySymShift)+buf>>((32-e)&31))&(mainTableCap-1)]
		}
		n := e & huffman.EntryLenMask
		buf <<= n & 31
		left -= n
		sym := e >> huffman.EntrySymShift
		if sym < numChars {
			dst[out] = byte(sym)
			out++
			continue
		}
		sym -= numChars
		length := int(sym % numLenHeaders)
		slot := sym / numLenHeaders
		if length == numPrimaryLens {
			if left < 16 {
				if pos+1 < len(in) {
					buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << ((16 - left) & 31)
					pos += 2
					left += 16
				} else {
					left = 32
				}
			}
			e := lenTable[(buf>>((32-ltb)&31))&(lenTableCap-1)]
			if e&huffman.EntrySubtable != 0 {
				buf <<= ltb & 31
				left -= ltb
				e = lenTable[((e>>huffman.EntrySymShift)+buf>>((32-e)&31))&(lenTableCap-1)]
			}
			n := e & huffman.EntryLenMask
			buf <<= n & 31
			left -= n
			length += int(e >> huffman.EntrySymShift)
		}
		length += minMatchLen
		var offset uint32
		switch {
		case slot == 0:
			offset = r0
		case slot == 1:
			offset = r1
			r1 = r0
			r0 = offset
		case slot == 2:
			offset = r2
			r2 = r0
			r0 = offset
		default:
			if slot >= maxOffsetSlots {
				return corrupt("offset slot %d", slot)
			}
			nb := uint32(extraOffsetBits[slot])
			aligned := slot >= minAligned
			if aligned {
				nb -= numAlignedBits
			}
			// Up to 17 extra bits may need two coding units.
			if left < nb {
				if pos+1 < len(in) {
					buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << ((16 - left) & 31)
					pos += 2
					left += 16
					if nb == 17 && left == 16 {
						if pos+1 < len(in) {
							buf |= uint32(binary.LittleEndian.Uint16(in[pos:]))
							pos += 2
						}
						left = 32
					}
				} else {
					left = 32
				}
			}
			// nb may be 0: shift by 1 and then at most 31.
			offset = (buf >> 1) >> ((31 - nb) & 31)
			buf <<= nb & 31
			left -= nb
			if aligned {
				if left < 16 {
					if pos+1 < len(in) {
						buf |= uint32(binary.LittleEndian.Uint16(in[pos:])) << ((16 - left) & 31)
						pos += 2
						left += 16
					} else {
						left = 32
					}
				}
				// The aligned code has no subtables (max length 7).
				e := alTable[buf>>(32-alignedTableBits)]
				n := e & huffman.EntryLenMask
				buf <<= n & 31
				left -= n
				offset = offset<<numAlignedBits | e>>huffman.EntrySymShift
			}
			offset += uint32(offsetSlotBase[slot])
			r2 = r1
			r1 = r0
			r0 = offset
		}
		if int(offset) > out {
			return corrupt("match offset %d before start of data at position %d", offset, out)
		}
		if length > len(dst)-out {
			return corrupt("match of length %d runs past end of block at position %d", length, out)
		}
		src := out - int(offset)
		if offset >= 8 && length <= 16 && len(dst)-out >= 16 {
			// Short non-overlapping-per-word match: two word copies
			// (possibly writing beyond the match, within the block).
			binary.LittleEndian.PutUint64(dst[out:], binary.LittleEndian.Uint64(dst[src:]))
			binary.LittleEndian.PutUint64(dst[out+8:], binary.LittleEndian.Uint64(dst[src+8:]))
		} else {
			lzCopy(dst, out, int(offset), length)
		}
		out += length
	}
	r.Buf, r.Left, r.Pos = buf, left, pos
	recent[0], recent[1], recent[2] = r0, r1, r2
	return nil
}

// widenMinBlock is the shortest block for which a main code with a root
// table narrower than mainTableBits gets its table widened, so that
// decodeFast can decode it: 2^mainTableBits entries to fill are worth it
// for blocks this long.
const widenMinBlock = 1024

// widenRoot widens a root table of bits < mainTableBits bits, which has no
// subtables, to mainTableBits bits: each entry repeats for every value of
// the index bits its codeword does not use.
func widenRoot(t *[mainTableCap]uint32, bits uint) {
	shift := (mainTableBits - bits) & 31
	for i := uint(1<<mainTableBits - 1); i < 1<<mainTableBits; i-- {
		t[i] = t[(i>>shift)&(1<<mainTableBits-1)]
	}
}

// exactOnly disables decodeFast, so tests can check both loops agree.
var exactOnly = false

// Input bytes the fast loop may consume per item (two 4-byte refills: one
// for the main and length symbols, one for an explicit offset), and output
// it leaves to the exact loop: a whole match still fits before the end of
// the block, so match copies may write whole 8-byte words past their end.
const (
	fastInputSlack  = 8
	fastOutputSlack = maxMatchLen + 16
)

// decodeFast decodes most of a block with a 64-bit bit buffer refilled
// eagerly, which is faster than Reader's one-unit-at-a-time refills. It
// stops while at least one item remains before the end of the block (so the
// exact loop decodes the block's end and leaves Reader's precise state for a
// following uncompressed block header) or when the input runs low, and
// hands over the Reader state that the exact loop converges to at its next
// refill: only whole unread units are returned to the input.
func (d *Decompressor) decodeFast(r *bitstream.Reader, dst []byte, out int, minAligned uint32, recent *[3]uint32) (int, error) {
	if len(dst)-out <= fastOutputSlack || r.Pos > len(r.In)-fastInputSlack || d.mainBits != mainTableBits || exactOnly {
		return out, nil
	}
	d.in = r.In[:len(r.In):len(r.In)]
	d.dst = dst[:len(dst):len(dst)] // slices of it are checked against its capacity
	d.minAligned = uint(minAligned)
	d.rec = [numRecentOffsets]uint{uint(recent[0]), uint(recent[1]), uint(recent[2])}
	o, pos, bb, bc, err := d.fastLoop(uint(out), 0, uint64(r.Buf)<<32, uint(r.Pos), uint(r.Left))
	d.in, d.dst = nil, nil
	if err != nil {
		return 0, err
	}
	// Return whole unread units; keep the partial one, zero-padded below.
	r.Pos = int(pos) - 2*int(bc/16)
	r.Left = uint32(bc % 16)
	r.Buf = uint32(bb>>32) &^ (1<<(32-r.Left) - 1)
	recent[0], recent[1], recent[2] = uint32(d.rec[0]), uint32(d.rec[1]), uint32(d.rec[2])
	return int(o), nil
}

// fastLoop is decodeFast's loop over items, with the bit buffer bb holding
// bc bits, left-justified, read up to d.in[pos].
//
// It is written for the compiler: the main root table always has
// mainTableBits bits here, so its index is a constant shift of bb; other
// table indexes are masked to the tables' power-of-two sizes and shift
// counts to 63, so neither needs a check;
// positions are unsigned; the inner loop runs over an output slice short
// enough that the input cannot run out within it, so its bound is the only
// check on literal stores; and whatever the literal path does not need is
// read from d's fields where used, so that the few registers (CX above all,
// which holds every variable shift count) are left to the literal path.
//
// The unused second parameter occupies CX in the register calling
// convention: a parameter passed there tends to stay there, and CX must
// be free for shift counts.
func (d *Decompressor) fastLoop(o uint, _ uint, bb uint64, pos, bc uint) (uint, uint, uint64, uint, error) {
	mt := &d.mainTable
	for {
		inEnd := uint(len(d.in) - fastInputSlack) // the last position an item may start at
		outEnd := uint(len(d.dst) - fastOutputSlack)
		if pos > inEnd || o >= outEnd {
			break
		}
		// Every item produces at least one byte and consumes at most
		// fastInputSlack bytes of input: bounding the output bounds the
		// input.
		ww := d.dst[:min(outEnd, o+(inEnd-pos)/fastInputSlack+1)]
		for o < uint(len(ww)) {
			if bc < 32 {
				v := binary.LittleEndian.Uint32((*[4]byte)(d.in[pos : pos+4])[:])
				bb |= uint64(v<<16|v>>16) << ((32 - bc) & 63)
				bc += 32
				pos += 4
			}
			e := uint(mt[bb>>(64-mainTableBits)])
			if e&huffman.EntrySubtable != 0 {
				bb <<= mainTableBits
				bc -= mainTableBits
				// -e&63 is 64 minus the subtable's width (the
				// entry's high bits are multiples of 64).
				e = uint(mt[((e>>huffman.EntrySymShift)+uint(bb>>(-e&63)))&(mainTableCap-1)])
			}
			// e&63 is the codeword length (at most 16; the flag
			// bit is 1<<8).
			bb <<= e & 63
			bc -= e & huffman.EntryLenMask
			sym := e >> huffman.EntrySymShift
			if sym < numChars {
				ww[o] = byte(sym)
				o++
				continue
			}
			sym -= numChars
			length := sym%numLenHeaders + minMatchLen
			slot := sym / numLenHeaders
			if length == numPrimaryLens+minMatchLen {
				ls := (64 - uint(d.lenBits)) & 63
				e := uint(d.lenTable[(bb>>ls)&(lenTableCap-1)])
				if e&huffman.EntrySubtable != 0 {
					bb <<= (64 - ls) & 63
					bc -= 64 - ls
					e = uint(d.lenTable[((e>>huffman.EntrySymShift)+uint(bb>>(-e&63)))&(lenTableCap-1)])
				}
				bb <<= e & 63
				bc -= e & huffman.EntryLenMask
				length += e >> huffman.EntrySymShift
			}
			var offset uint
			if slot < numRecentOffsets {
				// The used recent offset swaps with the first.
				offset = d.rec[slot]
				d.rec[slot] = d.rec[0]
				d.rec[0] = offset
			} else {
				if slot >= maxOffsetSlots {
					return 0, 0, 0, 0, corrupt("offset slot %d", slot)
				}
				if bc < 32 {
					v := binary.LittleEndian.Uint32((*[4]byte)(d.in[pos : pos+4])[:])
					bb |= uint64(v<<16|v>>16) << ((32 - bc) & 63)
					bc += 32
					pos += 4
				}
				// nb may be 0: shift by 1 and then at most 63.
				nb := uint(extraOffsetBits[slot])
				if slot >= d.minAligned {
					nb -= numAlignedBits
					offset = uint((bb >> 1) >> ((63 - nb) & 63))
					bb <<= nb & 63
					e := uint(d.alTable[(bb>>(64-alignedTableBits))&(alignedTableCap-1)])
					bb <<= e & 63
					bc -= nb + e&huffman.EntryLenMask
					offset = offset<<numAlignedBits | e>>huffman.EntrySymShift
				} else {
					offset = uint((bb >> 1) >> ((63 - nb) & 63))
					bb <<= nb & 63
					bc -= nb
				}
				offset += uint(offsetSlotBase[slot])
				d.rec[2] = d.rec[1]
				d.rec[1] = d.rec[0]
				d.rec[0] = offset
			}
			if offset > o {
				return 0, 0, 0, 0, corrupt("match offset %d before start of data at position %d", offset, o)
			}
			// There are more than maxMatchLen+8 bytes left in the
			// block, so whole 8-byte words may be copied past the
			// match's end; most matches take one word.
			// (Words are copied as arrays: two bounds checks each.)
			dst := d.dst
			src := o - offset
			if offset >= 8 {
				*(*[8]byte)(dst[o : o+8]) = *(*[8]byte)(dst[src : src+8])
				for k := uint(8); k < length; k += 8 {
					*(*[8]byte)(dst[o+k : o+k+8]) = *(*[8]byte)(dst[src+k : src+k+8])
				}
			} else {
				lzCopy(dst, int(o), int(offset), int(length))
			}
			o += length
		}
	}
	return o, pos, bb, bc, nil
}

// lzCopy copies a match of length bytes from offset bytes back, in place,
// with the overlapping (run-length) semantics of LZ77. The caller has
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
