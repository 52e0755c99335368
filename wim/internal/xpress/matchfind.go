package xpress

import (
	"encoding/binary"
	"math/bits"
)

// The match finder is specialised for XPRESS rather than shared with LZX
// (lzmatch): a chunk is at most 64 KiB, so positions fit in 16 bits, which
// halves the tables' cache footprint, lets every offset within the chunk
// be reached without a window check, and makes clearing the heads for each
// chunk cheaper than biasing positions.
const (
	hash3Bits = 12
	hash4Bits = 14
)

// finder is a hash-chain match finder: chains link positions with equal
// 4-byte hashes, which keeps them selective, and a one-entry table
// remembers the latest position for each 3-byte hash so that length-3
// matches are still found. Table entries hold position+1, 0 meaning none
// (position 65535 wraps to 0 and is forgotten, harmlessly: it is the last
// byte of a 64 KiB chunk and can start no match).
type finder struct {
	head3 [1 << hash3Bits]uint16
	head4 [1 << hash4Bits]uint16
	// prev is indexed by a uint16, so the chain walk needs no bounds checks.
	prev [1 << 16]uint16
}

func newFinder() *finder {
	return new(finder)
}

func (f *finder) reset() {
	clear(f.head3[:])
	clear(f.head4[:])
}

// insert adds position i (i+4 <= len(in)) and returns the previous heads
// of its 3-byte bucket and 4-byte chain.
func (f *finder) insert(in []byte, i int) (cand3, cand4 uint16) {
	v := binary.LittleEndian.Uint32(in[i:])
	h3 := (v << 8 * 0x9E3779B1) >> (32 - hash3Bits)
	h4 := (v * 0x9E3779B1) >> (32 - hash4Bits)
	p := uint16(i + 1)
	cand3 = f.head3[h3&(1<<hash3Bits-1)]
	f.head3[h3&(1<<hash3Bits-1)] = p
	cand4 = f.head4[h4&(1<<hash4Bits-1)]
	f.head4[h4&(1<<hash4Bits-1)] = p
	f.prev[uint16(i)] = cand4
	return cand3, cand4
}

// skip inserts positions [i, end) of a match's inside: past the first few,
// only every skipStep-th and the last ones, trading a little ratio for
// speed. end+3 <= len(in).
func (f *finder) skip(in []byte, i, end int) {
	dense := min(i+8, end)
	for ; i < dense; i++ {
		f.insert(in, i)
	}
	sparseEnd := end - 4
	for ; i < sparseEnd; i += skipStep {
		f.insert(in, i)
	}
	for i = max(i, sparseEnd); i < end; i++ {
		f.insert(in, i)
	}
}

// longest inserts i (i+4 <= len(in)) and returns the longest match there
// longer than bestLen (at least 3 long), looking at most depth chain
// candidates and stopping at niceLen bytes; (0, 0) when there is none.
func (f *finder) longest(in []byte, i, bestLen, depth int) (length, offset int) {
	cand3, cand := f.insert(in, i)
	maxLen := min(maxMatchLen, len(in)-i)
	if bestLen >= maxLen {
		return 0, 0
	}
	nice := min(niceLen, maxLen)
	cur := in[i:]
	cur4 := binary.LittleEndian.Uint32(cur)
	if bestLen < 3 {
		bestLen = 2
		if cand3 != 0 {
			c := int(cand3) - 1
			// The 3-byte table is not chained: only its first three
			// bytes need to agree for a usable match.
			if binary.LittleEndian.Uint32(in[c:])<<8 == cur4<<8 {
				l := matchLen(in[c:], cur, maxLen)
				bestLen, length, offset = l, l, i-c
				if l >= nice {
					return
				}
			}
		}
	}
	// From here on bestLen < nice <= maxLen: cur[bestLen] exists.
	want := cur[bestLen]
	for ; depth > 0 && cand != 0; depth-- {
		c := int(cand) - 1
		cand = f.prev[cand-1]
		// Cheap rejection: the byte that would extend the best match, then
		// the first four (a chain mixes different 4-byte strings).
		if in[c+bestLen] != want || binary.LittleEndian.Uint32(in[c:]) != cur4 {
			continue
		}
		l := matchLen(in[c:], cur, maxLen)
		if l > bestLen {
			bestLen, length, offset = l, l, i-c
			if l >= nice {
				break
			}
			want = cur[l]
		}
	}
	return length, offset
}

// matchLen returns how many leading bytes (at most max) a and b share;
// len(b) >= max and a starts before b in the same buffer.
func matchLen(a, b []byte, max int) int {
	n := 0
	for n+8 <= max {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < max && a[n] == b[n] {
		n++
	}
	return n
}
