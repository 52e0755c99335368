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
	// Lengths are counted with a masked index (no bounds checks); any
	// length of 32 or more shows in the OR of all of them, and shorter
	// ones above maxLen in the counts.
	var counts [32]int
	var offsets [32]int
	if maxLen > 16 || tableBits > maxLen || len(table) < 1<<tableBits || len(scratch) < len(lens) {
		return 0, ErrBadCode
	}
	var all uint8
	for _, l := range lens {
		counts[l&31]++
		all |= l
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
	// Sort symbols by (length, symbol).
	for l := uint(0); l < maxLen; l++ {
		offsets[l+1] = offsets[l] + counts[l]
	}
	sorted := scratch[:len(lens)]
	for sym, l := range lens {
		sorted[offsets[l&31]] = uint16(sym)
		offsets[l&31]++
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
