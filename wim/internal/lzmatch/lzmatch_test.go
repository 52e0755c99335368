package lzmatch

import (
	"math/rand/v2"
	"testing"
)

// bruteLongest is the longest match at i within maxOff, and its nearest offset.
func bruteLongest(data []byte, i, maxLen, maxOff int) (int, int) {
	best, off := 0, 0
	for c := i - 1; c >= 0 && i-c <= maxOff; c-- {
		if l := MatchLen(data, c, i, min(maxLen, len(data)-i)); l > best {
			best, off = l, i-c
		}
	}
	return best, off
}

// TestFinderExhaustive compares the finder, with a search depth larger than
// any chain, against brute force on data with many repeats, over several
// chunks to exercise the stale-entry invalidation between chunks.
func TestFinderExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := NewFinder(3000)
	for chunk := range 4 {
		n := 1000 + rng.IntN(2000)
		data := make([]byte, n)
		for i := range data {
			if i > 20 && rng.IntN(3) > 0 {
				data[i] = data[i-1-rng.IntN(20)]
			} else {
				data[i] = byte('a' + rng.IntN(4))
			}
		}
		f.Reset()
		maxOff := 500
		for i := range data {
			var ms []Match
			if i%2 == 0 {
				ms = f.All(data, i, 300, 300, 1<<30, maxOff, nil)
			} else {
				l, o := f.Longest(data, i, 2, 300, 300, 1<<30, maxOff)
				if l > 0 {
					ms = []Match{{uint32(l), uint32(o)}}
				}
			}
			prev := 2
			for _, m := range ms {
				if int(m.Len) <= prev || int(m.Off) > maxOff || int(m.Off) > i {
					t.Fatalf("chunk %d pos %d: bad match %+v after length %d", chunk, i, m, prev)
				}
				if MatchLen(data, i-int(m.Off), i, int(m.Len)) != int(m.Len) {
					t.Fatalf("chunk %d pos %d: %+v is not a match", chunk, i, m)
				}
				prev = int(m.Len)
			}
			want, _ := bruteLongest(data, i, 300, maxOff)
			got := 0
			if len(ms) > 0 {
				got = int(ms[len(ms)-1].Len)
			}
			if want < 3 {
				want = 0
			}
			if got != want {
				t.Fatalf("chunk %d pos %d: longest %d, brute force %d", chunk, i, got, want)
			}
		}
	}
}
