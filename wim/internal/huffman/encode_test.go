package huffman

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMakeCodeDecodes checks that codes built from random frequency
// distributions respect the length limit, are accepted by the decoder's
// table builder, and decode every codeword back to its symbol.
func TestMakeCodeDecodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var enc Encoder
	for iter := range 2000 {
		n := 2 + rng.IntN(700)
		maxLen := 7 + rng.IntN(10) // 7..16
		if n > 1<<maxLen {
			n = 1 << maxLen
		}
		freqs := make([]uint32, n)
		for i := range freqs {
			switch rng.IntN(4) {
			case 0:
			case 1:
				freqs[i] = 1 + uint32(rng.IntN(3))
			case 2:
				// Exponential skew forces the length limit.
				freqs[i] = uint32(1) << rng.IntN(24)
			default:
				freqs[i] = uint32(rng.IntN(100000))
			}
			if iter%7 == 0 && i > 1 {
				freqs[i] = 0
			}
		}
		lens := make([]uint8, n)
		codes := make([]uint32, n)
		enc.MakeCode(freqs, maxLen, lens, codes)
		for s, l := range lens {
			if int(l) > maxLen {
				t.Fatalf("iter %d: symbol %d length %d > %d", iter, s, l, maxLen)
			}
			if freqs[s] != 0 && l == 0 {
				t.Fatalf("iter %d: used symbol %d has no codeword", iter, s)
			}
		}
		tableBits := uint(min(maxLen, 10))
		table := make([]uint32, TableSize(n, tableBits, uint(maxLen)))
		scratch := make([]uint16, n)
		if err := BuildDecodeTable(table, lens, tableBits, uint(maxLen), scratch); err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		for s, l := range lens {
			if l == 0 {
				continue
			}
			// Left-justify the codeword in 32 bits and decode it.
			bits := codes[s] << (32 - uint(l))
			e := table[bits>>(32-tableBits)]
			got := e & EntryLenMask
			if e&EntrySubtable != 0 {
				bits <<= tableBits
				e = table[(e>>EntrySymShift)+bits>>(32-(e&EntryLenMask))]
				got = e&EntryLenMask + uint32(tableBits)
			}
			if got != uint32(l) || int(e>>EntrySymShift) != s {
				t.Fatalf("iter %d: codeword of symbol %d (len %d) decodes to %d (len %d)", iter, s, l, e>>EntrySymShift, got)
			}
		}
	}
}

func TestMakeCodeDegenerate(t *testing.T) {
	var enc Encoder
	lens := make([]uint8, 8)
	enc.MakeCode(make([]uint32, 8), 7, lens, nil)
	for _, l := range lens {
		if l != 0 {
			t.Fatalf("empty frequencies gave lengths %v", lens)
		}
	}
	for _, s := range []int{0, 5} {
		f := make([]uint32, 8)
		f[s] = 10
		enc.MakeCode(f, 7, lens, nil)
		if lens[s] != 1 {
			t.Fatalf("single symbol %d: lengths %v", s, lens)
		}
		table := make([]uint32, 128)
		if err := BuildDecodeTable(table, lens, 7, 7, make([]uint16, 8)); err != nil {
			t.Fatalf("single symbol %d: %v", s, err)
		}
	}
}

// TestSortSyms checks the radix sort against a comparison sort: codes (and
// so compressed output) depend on the exact order, ties included.
func TestSortSyms(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var e Encoder
	for iter := range 500 {
		n := 1 + rng.IntN(800)
		e.syms = e.syms[:0]
		for s := range n {
			var f uint64
			switch rng.IntN(3) {
			case 0:
				f = 1 + uint64(rng.IntN(4))
			case 1:
				f = uint64(1) << rng.IntN(31)
			default:
				f = uint64(rng.IntN(70000))
			}
			if f != 0 {
				e.syms = append(e.syms, f<<16|uint64(s))
			}
		}
		if len(e.syms) == 0 {
			continue
		}
		want := slices.Clone(e.syms)
		slices.Sort(want)
		e.sortSyms()
		if !slices.Equal(e.syms, want) {
			t.Fatalf("iter %d: radix order differs from sorted order", iter)
		}
	}
}
