// Package huffman builds the canonical Huffman codes shared by the WIM
// compression formats (XPRESS and LZX): decoding tables for the
// decompressors and length-limited codes for the compressors.
//
// Both formats transmit only codeword lengths; codewords are assigned
// canonically (shorter codes first, ties broken by symbol value) and read
// most-significant bit first from the bitstream.
package huffman

import "errors"

// ErrBadCode reports codeword lengths that neither fill the code space
// exactly nor are all zero.
var ErrBadCode = errors.New("huffman: invalid codeword lengths")

// A decode table entry packs either a symbol and the number of bits it
// consumes, or (root entries only) a subtable's start index and its index width
// with EntrySubtable set.
const (
	EntryLenMask  = 0xFF
	EntrySubtable = 1 << 8
	EntrySymShift = 16
)

// TableSize returns a table length that is always sufficient for numSyms
// symbols with the given root-table width and maximum codeword length.
// It over-approximates: every subtable is assumed to be as large as possible.
func TableSize(numSyms int, tableBits, maxLen uint) int {
	if maxLen <= tableBits {
		return 1 << tableBits
	}
	// Each symbol longer than tableBits can open at most one subtable of
	// at most 2^(maxLen-tableBits) entries, and there are at most
	// 2^tableBits subtables.
	sub := numSyms
	if sub > 1<<tableBits {
		sub = 1 << tableBits
	}
	return 1<<tableBits + sub<<(maxLen-tableBits)
}

// BuildDecodeTable fills table so that a decoder can look up the next
// tableBits bits of input (MSB first) and get the symbol and its length,
// following subtable pointers for longer codewords. lens holds one codeword
// length per symbol, each <= maxLen. table must be at least
// TableSize(len(lens), tableBits, maxLen) long. scratch must hold at least
// len(lens) entries.
//
// An all-zero lens (an empty code) is accepted: every entry then decodes to
// symbol 0 consuming no bits, as wimlib does, so such a code is harmless as
// long as the stream never uses it.
func BuildDecodeTable(table []uint32, lens []uint8, tableBits, maxLen uint, scratch []uint16) error {
	_, err := buildDecodeTable(table, lens, tableBits, maxLen, scratch, false)
	return err
}

// BuildDecodeTableShort is BuildDecodeTable with a root table no wider than
// the longest codeword (but at least 1 bit), which is cheaper to fill for
// short codes; it returns the root table's width.
func BuildDecodeTableShort(table []uint32, lens []uint8, maxTableBits, maxLen uint, scratch []uint16) (uint, error) {
	return buildDecodeTable(table, lens, maxTableBits, maxLen, scratch, true)
}

func buildDecodeTable(table []uint32, lens []uint8, tableBits, maxLen uint, scratch []uint16, short bool) (uint, error) {
	// Lengths are counted with masked indexes (no bounds checks); any
	// length of 32 or more shows in the OR of all of them, and shorter
	// ones above maxLen in the counts. The symbols are counted, and then
	// sorted, in four interleaved quarters, each with its own counters:
	// runs of equal lengths are common, and one counter incremented in
	// memory symbol after symbol makes a chain of dependent stores and
	// loads that four counters run in parallel.
	var counts [32]int
	var qc [4][32]uint16
	if maxLen > 16 || tableBits > maxLen || len(table) < 1<<tableBits || len(scratch) < len(lens) || len(lens) > 1<<16 {
		return 0, ErrBadCode
	}
	q := len(lens) / 4
	l0, l1, l2, l3 := lens[:q], lens[q:2*q], lens[2*q:3*q], lens[3*q:]
	l1, l2, l3 = l1[:len(l0)], l2[:len(l0)], l3[:len(l0)+len(lens)%4]
	var all uint8
	for i, a := range l0 {
		b, c, d := l1[i], l2[i], l3[i]
		qc[0][a&31]++
		qc[1][b&31]++
		qc[2][c&31]++
		qc[3][d&31]++
		all |= a | b | c | d
	}
	for _, d := range l3[len(l0):] {
		qc[3][d&31]++
		all |= d
	}
	for l := range counts {
		counts[l] = int(qc[0][l]) + int(qc[1][l]) + int(qc[2][l]) + int(qc[3][l])
	}
	longest := uint(0)
	for l := uint(1); l < uint(len(counts)); l++ {
		if counts[l] != 0 {
			longest = l
		}
	}
	if all >= 32 || longest > maxLen {
		return 0, ErrBadCode
	}
	if short {
		tableBits = min(tableBits, max(longest, 1))
	}
	remainder := 1
	for l := uint(1); l <= maxLen; l++ {
		remainder = remainder<<1 - counts[l]
		if remainder < 0 {
			return 0, ErrBadCode
		}
	}
	if remainder != 0 {
		if remainder != 1<<maxLen {
			return 0, ErrBadCode
		}
		clear(table[:1<<tableBits])
		return tableBits, nil
	}
	// Sort symbols by (length, symbol): each quarter's symbols of a
	// length go after the previous quarters' ones.
	var offsets [4][32]int
	next := 0
	for l := range counts {
		for k := range offsets {
			offsets[k][l] = next
			next += int(qc[k][l])
		}
	}
	sorted := scratch[:len(lens)]
	for i, a := range l0 {
		b, c, d := l1[i], l2[i], l3[i]
		sorted[offsets[0][a&31]] = uint16(i)
		offsets[0][a&31]++
		sorted[offsets[1][b&31]] = uint16(q + i)
		offsets[1][b&31]++
		sorted[offsets[2][c&31]] = uint16(2*q + i)
		offsets[2][c&31]++
		sorted[offsets[3][d&31]] = uint16(3*q + i)
		offsets[3][d&31]++
	}
	for i, d := range l3[len(l0):] {
		sorted[offsets[3][d&31]] = uint16(3*q + len(l0) + i)
		offsets[3][d&31]++
	}
	idx := counts[0]
	pos := 0
	// Root table: codewords of length <= tableBits occupy 2^(tableBits-len)
	// consecutive entries each, in canonical order.
	l := uint(1)
	for ; l <= tableBits && l <= maxLen; l++ {
		n := 1 << (tableBits - l)
		for end := idx + counts[l]; idx < end; idx++ {
			e := uint32(sorted[idx])<<EntrySymShift | uint32(l)
			t := table[pos : pos+n]
			for i := range t {
				t[i] = e
			}
			pos += n
		}
	}
	if idx == len(lens) {
		return tableBits, nil
	}
	// Longer codewords go into subtables hanging off the remaining root
	// entries. codeword is the next canonical codeword of length l.
	codeword := pos << 1
	subPos := 1 << tableBits
	subBits := uint(0)
	prefix := -1
	var left [17]int
	copy(left[:], counts[:])
	for ; idx < len(lens); idx++ {
		for left[l] == 0 {
			l++
			codeword <<= 1
		}
		p := codeword >> (l - tableBits)
		if p != prefix {
			prefix = p
			// The subtable must be wide enough for every codeword
			// sharing this prefix: grow until those codewords fill it.
			subBits = l - tableBits
			rem := 1 << subBits
			for {
				rem -= left[tableBits+subBits]
				if rem <= 0 {
					break
				}
				subBits++
				rem <<= 1
			}
			table[prefix] = uint32(subPos)<<EntrySymShift | EntrySubtable | uint32(subBits)
		}
		e := uint32(sorted[idx])<<EntrySymShift | uint32(l-tableBits)
		n := 1 << (subBits - (l - tableBits))
		if subPos+n > len(table) {
			return 0, ErrBadCode
		}
		t := table[subPos : subPos+n]
		for i := range t {
			t[i] = e
		}
		subPos += n
		left[l]--
		codeword++
	}
	return tableBits, nil
}
