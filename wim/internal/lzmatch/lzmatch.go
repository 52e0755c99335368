// Package lzmatch finds LZ77 matches for the WIM compressors: a hash-chain
// match finder over one chunk at a time. Chains link positions with equal
// 4-byte hashes, which keeps them selective; a separate one-entry table
// remembers the latest position for each 3-byte hash so length-3 matches
// are still found.
package lzmatch

import (
	"encoding/binary"
	"math/bits"
)

// Match is a candidate match: Len bytes at Off bytes back.
type Match struct {
	Len uint32
	Off uint32
}

// Finder is a hash-chain match finder. It is reusable across chunks and not
// safe for concurrent use.
type Finder struct {
	head3 []int32
	head4 []int32
	// Hash shifts: 32 minus the table sizes' log2.
	shift3, shift4 uint32
	prev           []int32
	// Positions are stored biased by base so that a new chunk invalidates
	// all old entries without clearing the tables.
	base int32
}

// NewFinder returns a Finder for chunks of up to maxChunk bytes.
func NewFinder(maxChunk int) *Finder {
	// Tables about the chunk's size: larger ones only add cache misses.
	bits4 := uint32(min(max(bits.Len(uint(maxChunk)), 12), 17))
	bits3 := bits4 - 2
	f := &Finder{
		prev:   make([]int32, maxChunk),
		head3:  make([]int32, 1<<bits3),
		head4:  make([]int32, 1<<bits4),
		shift3: 32 - bits3,
		shift4: 32 - bits4,
	}
	f.clear()
	return f
}

func (f *Finder) clear() {
	for i := range f.head3 {
		f.head3[i] = -1 << 31
	}
	for i := range f.head4 {
		f.head4[i] = -1 << 31
	}
	f.base = 0
}

// Reset prepares for a new chunk.
func (f *Finder) Reset() {
	if int64(f.base)+3*int64(len(f.prev)) >= 1<<31-1 {
		f.clear()
	} else {
		f.base += int32(len(f.prev)) + 1
	}
}

func hash3(data []byte, i int, shift uint32) uint32 {
	v := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16
	return (v * 0x9E3779B1) >> shift
}

// MatchLen returns how many bytes (at most max) at a and b agree; a < b and
// b+max <= len(data).
func MatchLen(data []byte, a, b, max int) int {
	n := 0
	for n+8 <= max {
		x := binary.LittleEndian.Uint64(data[a+n:]) ^ binary.LittleEndian.Uint64(data[b+n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < max && data[a+n] == data[b+n] {
		n++
	}
	return n
}

// insert adds i to the tables and returns the previous 3-byte-hash and
// chain heads.
func (f *Finder) insert(data []byte, i int) (cand3, cand4 int32) {
	p := int32(i) + f.base
	if i+4 <= len(data) {
		// One load serves both hashes.
		v := binary.LittleEndian.Uint32(data[i:])
		h3 := (v & 0xFFFFFF * 0x9E3779B1) >> f.shift3
		h4 := (v * 0x9E3779B1) >> f.shift4
		cand3 = f.head3[h3]
		f.head3[h3] = p
		cand4 = f.head4[h4]
		f.head4[h4] = p
		f.prev[i] = cand4
		return cand3, cand4
	}
	cand4 = -1 << 31
	if i+3 > len(data) {
		return -1 << 31, cand4
	}
	h3 := hash3(data, i, f.shift3)
	cand3 = f.head3[h3]
	f.head3[h3] = p
	f.prev[i] = cand4
	return cand3, cand4
}

// Skip inserts positions [i, end) without searching.
func (f *Finder) Skip(data []byte, i, end int) {
	for ; i < end; i++ {
		f.insert(data, i)
	}
}

// SkipSparse is Skip for the inside of a match: positions past the first
// few are inserted only every step bytes, trading a little ratio for speed.
func (f *Finder) SkipSparse(data []byte, i, end, step int) {
	for k := 0; i < end; i, k = i+1, k+1 {
		if k < 8 || k%step == 0 || i >= end-4 {
			f.insert(data, i)
		}
	}
}

// Longest finds the longest match at i longer than bestLen (and at least 3
// long), looking at most depth chain candidates and stopping at nice
// bytes, then inserts i. It returns (0, 0) when there is none. Matches are
// at most maxOff back and at most maxLen long.
func (f *Finder) Longest(data []byte, i, bestLen, maxLen, nice, depth, maxOff int) (length, offset int) {
	cand3, cand := f.insert(data, i)
	maxLen = min(maxLen, len(data)-i)
	if maxLen < 3 {
		return 0, 0
	}
	nice = min(nice, maxLen)
	limit := f.base + int32(max(i-maxOff, 0))
	if bestLen < 3 {
		bestLen = 2
		if cand3 >= limit {
			c := int(cand3 - f.base)
			if l := MatchLen(data, c, i, maxLen); l >= 3 {
				bestLen, length, offset = l, l, i-c
				if l >= nice {
					return
				}
			}
		}
	}
	for ; depth > 0 && cand >= limit; depth-- {
		c := int(cand - f.base)
		cand = f.prev[c]
		// Cheap rejection: the byte that would extend the best match.
		if bestLen < maxLen && data[c+bestLen] != data[i+bestLen] {
			continue
		}
		l := MatchLen(data, c, i, maxLen)
		if l > bestLen {
			bestLen, length, offset = l, l, i-c
			if l >= nice {
				break
			}
		}
	}
	return length, offset
}

// All appends to ms the matches at i of increasing length (at least 3, each
// the nearest found with its length), looking at most depth chain
// candidates and stopping at nice bytes, then inserts i.
func (f *Finder) All(data []byte, i, maxLen, nice, depth, maxOff int, ms []Match) []Match {
	cand3, cand := f.insert(data, i)
	maxLen = min(maxLen, len(data)-i)
	if maxLen < 3 {
		return ms
	}
	nice = min(nice, maxLen)
	limit := f.base + int32(max(i-maxOff, 0))
	bestLen := 2
	if cand3 >= limit {
		c := int(cand3 - f.base)
		if l := MatchLen(data, c, i, maxLen); l >= 3 {
			bestLen = l
			ms = append(ms, Match{Len: uint32(l), Off: uint32(i - c)})
			if l >= nice {
				return ms
			}
		}
	}
	for ; depth > 0 && cand >= limit; depth-- {
		c := int(cand - f.base)
		cand = f.prev[c]
		if bestLen < maxLen && data[c+bestLen] != data[i+bestLen] {
			continue
		}
		l := MatchLen(data, c, i, maxLen)
		if l > bestLen {
			bestLen = l
			ms = append(ms, Match{Len: uint32(l), Off: uint32(i - c)})
			if l >= nice {
				break
			}
		}
	}
	return ms
}
