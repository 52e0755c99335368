package lzx

import (
	"encoding/binary"
	"math/bits"

	"github.com/minint/minint/wim/internal/huffman"
	"github.com/minint/minint/wim/internal/lzmatch"
)

// Parser parameters: wimlib's default level (50) searches 24 candidates,
// takes matches of 48 bytes or more immediately, and optimizes twice.
const (
	searchDepth = 24
	niceLen     = 48
	numPasses   = 2
	// Costs are in 1/costScale bits.
	costScale = 16
	infCost   = 1<<32 - 1
)

// Compressor is reusable, not safe for concurrent use.
type Compressor struct {
	maxChunk int
	order    uint
	nMain    int
	buf      []byte // the chunk after E8 translation
	mf       *lzmatch.Finder
	matches  []lzmatch.Match
	mstart   []int32 // matches of position i: matches[mstart[i]:mstart[i+1]]
	nodes    []node
	items    []item

	mainCost [maxMainSyms]uint32
	lenCost  [lenSyms]uint32

	mainFreq [maxMainSyms]uint32
	lenFreq  [lenSyms]uint32
	alFreq   [alignedSyms]uint32
	mainLens [maxMainSyms]uint8
	lenLens  [lenSyms]uint8
	alLens   [alignedSyms]uint8
	mainCode [maxMainSyms]uint32
	lenCode  [lenSyms]uint32
	alCode   [alignedSyms]uint32
	enc      huffman.Encoder
}

// node is a position in the parse graph: the cheapest known way to reach it.
type node struct {
	cost   uint32
	length uint32 // of the item ending here; 1 for a literal
	off    uint32 // match offset
	slot   uint32 // offset slot (0-2: repeat offsets)
	queue  [3]uint32
}

// item is a chosen literal (length 0, sym holds the byte) or match.
type item struct {
	length uint32
	slot   uint32
	extra  uint32 // offset - slot base (explicit offsets)
	sym    uint32 // literal byte
}

// NewCompressor prepares for chunks of up to maxChunk bytes (32768 default
// in WIM; at most 2 MiB). The LZX window is maxChunk rounded up to a power
// of two, so decompress with a Decompressor for the same chunk size.
func NewCompressor(maxChunk int) *Compressor {
	o := windowOrder(maxChunk)
	if o == 0 {
		panic("lzx: chunk size out of range")
	}
	return &Compressor{
		maxChunk: maxChunk,
		order:    o,
		nMain:    numMainSyms(o),
		buf:      make([]byte, maxChunk),
		mf:       lzmatch.NewFinder(maxChunk),
		mstart:   make([]int32, maxChunk+1),
		nodes:    make([]node, maxChunk+1),
	}
}

// Compress compresses one chunk src into dst (len(dst) >= len(src)) and
// returns the number of bytes written, or 0 when the result would not be
// smaller than src (the WIM then stores the chunk uncompressed).
func (c *Compressor) Compress(dst, src []byte) int {
	if len(src) > c.maxChunk {
		panic("lzx: chunk larger than the compressor's maximum")
	}
	if len(src) < 16 {
		return 0
	}
	data := c.buf[:len(src)]
	copy(data, src)
	e8Filter(data, false)
	c.findMatches(data)
	c.initCosts(data)
	for pass := 0; ; pass++ {
		c.parse(data)
		c.collect(data)
		if pass+1 == numPasses {
			break
		}
		c.updateCosts()
	}
	return c.write(dst[:min(len(dst), len(src)-1)], len(src))
}

// findMatches records the explicit-offset matches at every position,
// skipping over the inside of very long matches as the parser will.
func (c *Compressor) findMatches(data []byte) {
	mf := c.mf
	mf.Reset()
	c.matches = c.matches[:0]
	n := len(data)
	// The format cannot express a match from the last two bytes of the
	// window back to its first two.
	maxOff := min(n, 1<<c.order-3)
	for i := 0; i < n; {
		c.mstart[i] = int32(len(c.matches))
		c.matches = mf.All(data, i, maxMatchLen, niceLen, searchDepth, maxOff, c.matches)
		k := len(c.matches)
		if k > int(c.mstart[i]) && c.matches[k-1].Len >= niceLen {
			l := int(c.matches[k-1].Len)
			mf.Skip(data, i+1, i+l)
			for j := i + 1; j < i+l; j++ {
				c.mstart[j] = int32(k)
			}
			i += l
			continue
		}
		i++
	}
	c.mstart[n] = int32(len(c.matches))
}

// initCosts sets a first cost model before any parse exists: literal costs
// from the chunk's byte histogram, and flat guesses for match symbols.
func (c *Compressor) initCosts(data []byte) {
	var freq [numChars]uint32
	for _, b := range data {
		freq[b]++
	}
	var lens [numChars]uint8
	c.enc.MakeCode(freq[:], maxMainCodeLen, lens[:], nil)
	for s := range numChars {
		l := uint32(lens[s])
		if l == 0 {
			l = 12
		}
		c.mainCost[s] = (l + 1) * costScale
	}
	for s := numChars; s < c.nMain; s++ {
		slot := (s - numChars) / numLenHeaders
		var bits uint32 = 9
		if slot < numRecentOffsets {
			bits = 5 + uint32(slot)
		}
		c.mainCost[s] = bits * costScale
	}
	for s := range c.lenCost {
		c.lenCost[s] = uint32(4+min(s, 8)) * costScale
	}
}

// updateCosts derives the cost model from the Huffman code the current
// parse would get.
func (c *Compressor) updateCosts() {
	c.makeCodes()
	for s := 0; s < c.nMain; s++ {
		l := uint32(c.mainLens[s])
		if l == 0 {
			l = 15
		}
		c.mainCost[s] = l * costScale
	}
	for s := range c.lenCost {
		l := uint32(c.lenLens[s])
		if l == 0 {
			l = 14
		}
		c.lenCost[s] = l * costScale
	}
}

func (c *Compressor) matchCost(slot uint32, length int) uint32 {
	h := length - minMatchLen
	if h < numPrimaryLens {
		return c.mainCost[numChars+slot*numLenHeaders+uint32(h)]
	}
	return c.mainCost[numChars+slot*numLenHeaders+numPrimaryLens] + c.lenCost[h-numPrimaryLens]
}

// offsetSlot returns the slot of an explicit match offset.
func offsetSlot(offset uint32) uint32 {
	f := offset + offsetAdjust
	l := uint32(bits.Len32(f)) - 1
	return 2*l + (f>>(l-1))&1
}

// parse finds the cheapest path through the chunk under the current cost
// model, tracking the recent offsets queue along the best path to each
// position.
func (c *Compressor) parse(data []byte) {
	n := len(data)
	nodes := c.nodes[:n+1]
	for i := range nodes {
		nodes[i].cost = infCost
	}
	nodes[0] = node{cost: 0, queue: [3]uint32{1, 1, 1}}
	for i := 0; i < n; {
		cur := &nodes[i]
		base := cur.cost
		q := cur.queue
		maxLen := min(maxMatchLen, n-i)
		// Literal.
		if lc := base + c.mainCost[data[i]]; lc < nodes[i+1].cost {
			nodes[i+1] = node{cost: lc, length: 1, queue: q}
		}
		if maxLen < minMatchLen {
			i++
			continue
		}
		// Repeat offsets: every length up to the longest.
		bestRep, bestRepLen := -1, 0
		for k := range uint32(numRecentOffsets) {
			off := q[k]
			if int(off) > i {
				continue
			}
			l := lzmatch.MatchLen(data, i-int(off), i, maxLen)
			if l < minMatchLen {
				continue
			}
			nq := q
			nq[k], nq[0] = nq[0], off
			for ln := minMatchLen; ln <= l; ln++ {
				if mc := base + c.matchCost(k, ln); mc < nodes[i+ln].cost {
					nodes[i+ln] = node{cost: mc, length: uint32(ln), off: off, slot: k, queue: nq}
				}
			}
			if l > bestRepLen {
				bestRep, bestRepLen = int(k), l
			}
		}
		ms := c.matches[c.mstart[i]:c.mstart[i+1]]
		if bestRepLen >= niceLen {
			// Take a long repeat match outright.
			i += bestRepLen
			_ = bestRep
			continue
		}
		prev := minMatchLen - 1
		for _, m := range ms {
			off := m.Off
			slot := offsetSlot(off)
			extra := uint32(extraOffsetBits[slot]) * costScale
			nq := [3]uint32{off, q[0], q[1]}
			for ln := prev + 1; ln <= int(m.Len); ln++ {
				if mc := base + c.matchCost(slot, ln) + extra; mc < nodes[i+ln].cost {
					nodes[i+ln] = node{cost: mc, length: uint32(ln), off: off, slot: slot, queue: nq}
				}
			}
			prev = int(m.Len)
		}
		if prev >= niceLen {
			i += prev
			continue
		}
		i++
	}
}

// collect walks the best path backwards, stores its items in order and
// counts symbol frequencies.
func (c *Compressor) collect(data []byte) {
	nodes := c.nodes
	count := 0
	for i := len(data); i > 0; i -= int(nodes[i].length) {
		count++
	}
	if cap(c.items) < count {
		c.items = make([]item, count)
	}
	c.items = c.items[:count]
	clear(c.mainFreq[:])
	clear(c.lenFreq[:])
	clear(c.alFreq[:])
	k := count
	for i := len(data); i > 0; {
		nd := &nodes[i]
		k--
		if nd.length == 1 {
			b := uint32(data[i-1])
			c.items[k] = item{sym: b}
			c.mainFreq[b]++
			i--
			continue
		}
		it := item{length: nd.length, slot: nd.slot}
		h := nd.length - minMatchLen
		if h >= numPrimaryLens {
			c.lenFreq[h-numPrimaryLens]++
			h = numPrimaryLens
		}
		c.mainFreq[numChars+nd.slot*numLenHeaders+h]++
		if nd.slot >= numRecentOffsets {
			it.extra = nd.off - uint32(offsetSlotBase[nd.slot])
			if nd.slot >= minAlignedSlot {
				c.alFreq[it.extra&7]++
			}
		}
		c.items[k] = it
		i -= int(nd.length)
	}
}

func (c *Compressor) makeCodes() {
	c.enc.MakeCode(c.mainFreq[:c.nMain], maxMainCodeLen, c.mainLens[:c.nMain], c.mainCode[:c.nMain])
	c.enc.MakeCode(c.lenFreq[:], maxLenCodeLen, c.lenLens[:], c.lenCode[:])
}

// bitWriter writes 16-bit little-endian coding units, MSB first.
type bitWriter struct {
	out      []byte
	pos      int
	buf      uint64
	count    uint32
	overflow bool
}

func (w *bitWriter) bits(v, n uint32) {
	w.buf = w.buf<<n | uint64(v)
	w.count += n
	for w.count >= 16 {
		w.count -= 16
		if w.pos+2 <= len(w.out) {
			binary.LittleEndian.PutUint16(w.out[w.pos:], uint16(w.buf>>w.count))
			w.pos += 2
		} else {
			w.overflow = true
		}
	}
}

func (w *bitWriter) flush() int {
	if w.count > 0 {
		w.bits(0, 16-w.count)
	}
	if w.overflow {
		return 0
	}
	return w.pos
}

// write encodes the chosen items as one block.
func (c *Compressor) write(out []byte, size int) int {
	c.makeCodes()
	// Aligned offset block if the aligned code saves more than its header.
	c.enc.MakeCode(c.alFreq[:], maxAlignedCodeLen, c.alLens[:], c.alCode[:])
	var alignedBits, plainBits uint32
	for s, f := range c.alFreq {
		alignedBits += f * uint32(c.alLens[s])
		plainBits += f * numAlignedBits
	}
	btype := uint32(blockVerbatim)
	if alignedBits+8*3 < plainBits {
		btype = blockAligned
	}
	w := bitWriter{out: out}
	w.bits(btype, 3)
	if size == defaultBlockSize {
		w.bits(1, 1)
	} else {
		w.bits(0, 1)
		if c.order >= 16 {
			w.bits(uint32(size>>8), 16)
			w.bits(uint32(size&0xFF), 8)
		} else {
			w.bits(uint32(size), 16)
		}
	}
	if btype == blockAligned {
		for _, l := range c.alLens {
			w.bits(uint32(l), 3)
		}
	}
	var zero [maxMainSyms]uint8
	c.writeLens(&w, zero[:numChars], c.mainLens[:numChars])
	c.writeLens(&w, zero[numChars:c.nMain], c.mainLens[numChars:c.nMain])
	c.writeLens(&w, zero[:lenSyms], c.lenLens[:])
	for _, it := range c.items {
		if it.length == 0 {
			w.bits(c.mainCode[it.sym], uint32(c.mainLens[it.sym]))
			continue
		}
		h := it.length - minMatchLen
		lh := min(h, numPrimaryLens)
		ms := numChars + it.slot*numLenHeaders + lh
		w.bits(c.mainCode[ms], uint32(c.mainLens[ms]))
		if lh == numPrimaryLens {
			ls := h - numPrimaryLens
			w.bits(c.lenCode[ls], uint32(c.lenLens[ls]))
		}
		if it.slot < numRecentOffsets {
			continue
		}
		nb := uint32(extraOffsetBits[it.slot])
		if btype == blockAligned && it.slot >= minAlignedSlot {
			w.bits(it.extra>>numAlignedBits, nb-numAlignedBits)
			a := it.extra & 7
			w.bits(c.alCode[a], uint32(c.alLens[a]))
		} else {
			w.bits(it.extra, nb)
		}
		if w.overflow {
			return 0
		}
	}
	return w.flush()
}

// writeLens writes a precode and the codeword lengths lens as deltas from
// prev, run-length coding runs of equal lengths.
func (c *Compressor) writeLens(w *bitWriter, prev, lens []uint8) {
	// Presymbol items: sym | extra<<5 | presym<<10 (for symbol 19).
	var items [maxMainSyms]uint32
	var freq [preSyms]uint32
	ni := 0
	delta := func(i int, v uint8) uint32 { return uint32((int(prev[i]) - int(v) + 17) % 17) }
	n := len(lens)
	for i := 0; i < n; {
		v := lens[i]
		run := 1
		for i+run < n && lens[i+run] == v {
			run++
		}
		if v == 0 {
			for run >= 20 {
				k := min(run, 51)
				items[ni] = 18 | uint32(k-20)<<5
				freq[18]++
				ni++
				i += k
				run -= k
			}
			if run >= 4 {
				items[ni] = 17 | uint32(run-4)<<5
				freq[17]++
				ni++
				i += run
				run = 0
			}
		} else {
			for run >= 4 {
				k := min(run, 5)
				d := delta(i, v)
				items[ni] = 19 | uint32(k-4)<<5 | d<<10
				freq[19]++
				freq[d]++
				ni++
				i += k
				run -= k
			}
		}
		for ; run > 0; run-- {
			d := delta(i, v)
			items[ni] = d
			freq[d]++
			ni++
			i++
		}
	}
	var plens [preSyms]uint8
	var pcodes [preSyms]uint32
	c.enc.MakeCode(freq[:], maxPreCodeLen, plens[:], pcodes[:])
	for _, l := range plens {
		w.bits(uint32(l), 4)
	}
	for _, it := range items[:ni] {
		s := it & 31
		w.bits(pcodes[s], uint32(plens[s]))
		switch s {
		case 17:
			w.bits(it>>5&31, 4)
		case 18:
			w.bits(it>>5&31, 5)
		case 19:
			w.bits(it>>5&1, 1)
			d := it >> 10
			w.bits(pcodes[d], uint32(plens[d]))
		}
	}
}
