package huffman

import "math"

// Encoder builds length-limited canonical Huffman codes. It is reusable and
// keeps its scratch space between calls.
type Encoder struct {
	syms   []uint64 // freq<<16 | symbol, sorted
	tmp    []uint64
	nodes  []uint32 // node weights during construction
	parent []int32
	depth  []uint8
}

// MakeCode computes codeword lengths (at most maxLen) for the symbol
// frequencies freqs, writing them to lens, and the canonical codewords to
// codes (which may be nil). The code is always complete and decodable by
// BuildDecodeTable: if fewer than two symbols have a nonzero frequency,
// extra symbols get 1-bit codewords; if none do, all lengths are zero.
func (e *Encoder) MakeCode(freqs []uint32, maxLen int, lens []uint8, codes []uint32) {
	n := len(freqs)
	clear(lens[:n])
	e.syms = e.syms[:0]
	for s, f := range freqs {
		if f != 0 {
			e.syms = append(e.syms, uint64(f)<<16|uint64(s))
		}
	}
	switch len(e.syms) {
	case 0:
		if codes != nil {
			clear(codes[:n])
		}
		return
	case 1:
		s := int(e.syms[0] & 0xFFFF)
		other := 0
		if s == 0 {
			other = 1
		}
		lens[s], lens[other] = 1, 1
		Codewords(lens[:n], codes)
		return
	}
	e.sortSyms()
	for shift := uint32(0); ; shift++ {
		if e.lengths(lens, maxLen, shift) {
			break
		}
	}
	Codewords(lens[:n], codes)
}

// sortSyms sorts e.syms, which are in symbol order, by frequency and then
// symbol: a stable LSD radix sort on the frequency's bytes. A code is
// built for every compressed chunk, and for a few hundred keys this is
// several times faster than a comparison sort.
func (e *Encoder) sortSyms() {
	n := len(e.syms)
	if cap(e.tmp) < n {
		e.tmp = make([]uint64, n)
	}
	src, dst := e.syms, e.tmp[:n]
	var maxFreq uint64
	for _, v := range src {
		maxFreq = max(maxFreq, v>>16)
	}
	for shift := uint(16); maxFreq>>(shift-16) != 0; shift += 8 {
		var count [256]int
		for _, v := range src {
			count[uint8(v>>shift)]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, v := range src {
			b := uint8(v >> shift)
			dst[count[b]] = v
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &e.syms[0] {
		copy(e.syms, src)
	}
}

// lengths builds a Huffman code over e.syms (sorted by frequency) with each
// frequency f replaced by max(f>>shift, 1), and assigns the depths to lens.
// It reports false, assigning nothing, if some codeword is longer than
// maxLen; flattening the frequencies then gives a complete code that fits.
func (e *Encoder) lengths(lens []uint8, maxLen int, shift uint32) bool {
	m := len(e.syms)
	if cap(e.nodes) < 2*m {
		e.nodes = make([]uint32, 2*m)
		e.parent = make([]int32, 2*m)
		e.depth = make([]uint8, 2*m)
	}
	weight := e.nodes[:2*m] // leaves at [0,m), internal nodes at [m,2m-1)
	parent := e.parent[:2*m]
	for i, v := range e.syms {
		weight[i] = max(uint32(v>>16)>>shift, 1)
	}
	// Two-queue construction: leaves are sorted by weight (shifting keeps
	// the order) and internal nodes are created in nondecreasing order.
	leaf, inner, next := 0, m, m
	pick := func() int {
		if leaf < m && (inner >= next || weight[leaf] <= weight[inner]) {
			leaf++
			return leaf - 1
		}
		inner++
		return inner - 1
	}
	for next < 2*m-1 {
		a := pick()
		b := pick()
		weight[next] = weight[a] + weight[b]
		parent[a] = int32(next)
		parent[b] = int32(next)
		next++
	}
	depth := e.depth[:2*m]
	depth[2*m-2] = 0
	for i := 2*m - 3; i >= 0; i-- {
		d := depth[parent[i]] + 1
		if int(d) > maxLen {
			return false
		}
		depth[i] = d
	}
	for i, v := range e.syms {
		lens[v&0xFFFF] = depth[i]
	}
	return true
}

// Codewords assigns canonical codewords for lens to codes (if non-nil):
// codewords of each length are consecutive in symbol order, shorter first.
func Codewords(lens []uint8, codes []uint32) {
	if codes == nil {
		return
	}
	var counts [17]uint32
	for _, l := range lens {
		counts[l]++
	}
	counts[0] = 0
	var next [17]uint32
	code := uint32(0)
	for l := 1; l <= 16; l++ {
		code = (code + counts[l-1]) << 1
		next[l] = code
	}
	for s, l := range lens {
		if l != 0 {
			codes[s] = next[l]
			next[l]++
		} else {
			codes[s] = 0
		}
	}
}

// Entropy is the order-0 entropy of b in bits per byte: close to 8, no
// Huffman code over bytes can pay for its code table, which is how the
// compressors recognise incompressible chunks early.
func Entropy(b []byte) float64 {
	var h [256]int
	for _, x := range b {
		h[x]++
	}
	e := 0.0
	for _, f := range h {
		if f > 0 {
			p := float64(f) / float64(len(b))
			e -= p * math.Log2(p)
		}
	}
	return e
}
