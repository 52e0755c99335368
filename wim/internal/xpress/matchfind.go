package xpress

import (
	"encoding/binary"
	"math/bits"
)

// The match finder is specialised for XPRESS rather than shared with LZX
// (lzmatch): a chunk is at most 64 KiB, so positions fit in 16 bits, which
// halves the tables' cache footprint, lets every offset within the chunk
// be reached without a window check, and makes clearing the heads for each
// chunk cheaper than biasing positions. The chunk is copied into a window
// of 64 KiB plus padding and indexed by uint16: the compiler then proves
// every access in bounds and the inner loops carry no bounds checks (the
// copy costs well under 1% of compressing the chunk).
const (
	hash3Bits = 12
	hash4Bits = 14
	winPad    = 16
)

// finder is a hash-chain match finder: chains link positions with equal
// 4-byte hashes, which keeps them selective, and a one-entry table
// remembers the latest position for each 3-byte hash so that length-3
// matches are still found. Table entries hold position+1, 0 meaning none
// (position 65535 wraps to 0 and is forgotten, harmlessly: it is the last
// byte of a 64 KiB chunk and can start no match).
type finder struct {
	win   [1<<16 + winPad]byte
	head3 [1 << hash3Bits]uint16
	head4 [1 << hash4Bits]uint16
	prev  [1 << 16]uint16
}

func newFinder() *finder {
	return new(finder)
}

// reset starts a new chunk: in (at most 64 KiB) becomes the window.
func (f *finder) reset(in []byte) {
	copy(f.win[:], in)
	clear(f.head3[:])
	clear(f.head4[:])
}

func (f *finder) load32(i int) uint32 { return binary.LittleEndian.Uint32(f.win[uint16(i):]) }
func (f *finder) load16(i int) uint16 { return binary.LittleEndian.Uint16(f.win[uint16(i):]) }

func hash3(v uint32) uint32 { return (v << 8 * 0x9E3779B1) >> (32 - hash3Bits) }
func hash4(v uint32) uint32 { return (v * 0x9E3779B1) >> (32 - hash4Bits) }

// insert adds position i (i+4 <= chunk length) to the tables.
func (f *finder) insert(i int) {
	v := f.load32(i)
	p := uint16(i + 1)
	f.head3[hash3(v)] = p
	h4 := hash4(v)
	f.prev[uint16(i)] = f.head4[h4]
	f.head4[h4] = p
}

// skip inserts positions [i, end) of a match's inside: past the first few,
// only every skipStep-th and the last ones, trading a little ratio for
// speed. end+3 <= chunk length. Most matches are short and take the single
// loop: each loop's exit is a mispredicted branch, which costs as much as
// a few inserts.
func (f *finder) skip(i, end int) {
	if end-i <= skipDense+4 {
		for ; i < end; i++ {
			f.insert(i)
		}
		return
	}
	dense := i + skipDense
	for ; i < dense; i++ {
		f.insert(i)
	}
	sparseEnd := end - 4
	for ; i < sparseEnd; i += skipStep {
		f.insert(i)
	}
	for i = max(i, sparseEnd); i < end; i++ {
		f.insert(i)
	}
}

// longest inserts i (i+4 <= n, the chunk length) and returns the longest
// match there longer than bestLen (at least 3 long), looking at most depth
// chain candidates and stopping at niceLen bytes; (0, 0) when there is
// none.
func (f *finder) longest(i, n, bestLen, depth int) (length, offset int) {
	v := f.load32(i)
	p := uint16(i + 1)
	h3 := hash3(v)
	cand3 := f.head3[h3]
	f.head3[h3] = p
	h4 := hash4(v)
	cand := f.head4[h4]
	f.prev[uint16(i)] = cand
	f.head4[h4] = p

	maxLen := min(maxMatchLen, n-i)
	if bestLen >= maxLen {
		return 0, 0
	}
	nice := min(niceLen, maxLen)
	if bestLen < 4 {
		// Until a 4-byte match turns up, the first four bytes are the
		// only test worth making (a chain mixes different 4-byte
		// strings sharing a hash).
		for {
			if depth <= 0 || cand == 0 {
				// No 4-byte match: perhaps a 3-byte one. The 3-byte
				// table is not chained: only its first three bytes
				// need to agree.
				if bestLen < 3 && cand3 != 0 {
					c := int(cand3) - 1
					if f.load32(c)<<8 == v<<8 {
						return 3, i - c
					}
				}
				return 0, 0
			}
			depth--
			c := int(cand) - 1
			cand = f.prev[cand-1]
			if f.load32(c) == v {
				l := f.matchLen(c, i, maxLen)
				bestLen, length, offset = l, l, i-c
				if l >= nice {
					return length, offset
				}
				break
			}
		}
	}
	// From here on 4 <= bestLen < nice <= maxLen: the two bytes ending at
	// i+bestLen are inside the chunk. A candidate must match them to
	// extend the best match, a cheap and selective first test.
	want := f.load16(i + bestLen - 1)
	for ; depth > 0 && cand != 0; depth-- {
		c := int(cand) - 1
		cand = f.prev[cand-1]
		if f.load16(c+bestLen-1) != want || f.load32(c) != v {
			continue
		}
		l := f.matchLen(c, i, maxLen)
		if l > bestLen {
			bestLen, length, offset = l, l, i-c
			if l >= nice {
				break
			}
			want = f.load16(i + l - 1)
		}
	}
	return length, offset
}

// matchLen returns how many leading bytes (at most max) the window shares
// at a and b; a < b and b+max <= chunk length.
func (f *finder) matchLen(a, b, max int) int {
	n := 0
	for n+8 <= max {
		x := binary.LittleEndian.Uint64(f.win[uint16(a+n):]) ^ binary.LittleEndian.Uint64(f.win[uint16(b+n):])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < max && f.win[uint16(a+n)] == f.win[uint16(b+n)] {
		n++
	}
	return n
}
