package lzx

import (
	"encoding/binary"
	"math/bits"

	"github.com/minint/minint/wim/internal/huffman"
	"github.com/minint/minint/wim/internal/lzmatch"
)

// Parser parameters. wimlib's default level (50) searches 24 candidates,
// takes 48-byte matches outright and optimizes twice from a rough model.
// Starting from the code of a greedy parse, one pass gets within ~1% of its
// output; the shallower search keeps capture faster than wimlib's
// (BenchmarkVsWimlib measures both).
var (
	searchDepth = 16
	niceLen     = 32
	numPasses   = 1
)

const (
	// Costs are in 1/costScale bits.
	costScale = 16
	// Assumed codeword lengths of symbols the model's parse did not use:
	// pessimistic enough to prefer known symbols, not so much that the
	// parse never tries repeat offsets the first parse happened to skip.
	unusedMain = 10
	unusedLen  = 8
	// Chunks larger than this are split into blocks of this size, each
	// with its own Huffman codes.
	blockSize = 65536
	infCost   = 1<<32 - 1
)

// Compressor is reusable, not safe for concurrent use.
type Compressor struct {
	maxChunk int
	order    uint
	nMain    int
	buf      []byte // the chunk after E8 translation
	out      []byte // the compressed chunk, copied to dst if it fits
	mf       *lzmatch.Finder
	matches  []lzmatch.Match
	mstart   []int32 // matches of position i: matches[mstart[i]:mstart[i+1]]
	nodes    []node
	queues   [][3]uint32
	items    []item

	mainCost [maxMainSyms]uint32
	// matchCostTab[slot][length-2]: main (and length) symbol cost.
	matchCostTab [maxOffsetSlots][numLens]uint32
	lenCost      [lenSyms]uint32

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

// node is a position in the parse graph: the cheapest known way to reach
// it. There is one per byte of a block, so its 16 bytes (20 with 32-bit
// lengths) count in a capture's peak memory, once per compressor thread.
type node struct {
	cost uint32
	off  uint32 // match offset
	slot uint32 // offset slot (0-2: repeat offsets)
	// length of the item ending here: 1 for a literal, at most
	// 2*maxMatchLen+1 for a compound item.
	length uint16
	// gap > 0 marks a compound item: an explicit match of gap bytes, one
	// literal, then the same offset again (R0) for the rest of length.
	gap uint16
}

// item is a chosen literal (length 0, sym holds the byte) or match, in 8
// bytes: up to one per byte of a block, like the nodes.
type item struct {
	extra  uint32 // offset - slot base (explicit offsets)
	length uint16
	slot   uint8
	sym    uint8 // literal byte
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
		out:      make([]byte, maxChunk),
		mf:       lzmatch.NewFinder(maxChunk),
		mstart:   make([]int32, maxChunk+1),
		nodes:    make([]node, min(maxChunk, blockSize)+1),
		queues:   make([][3]uint32, min(maxChunk, blockSize)+1),
	}
}

// Compress compresses one chunk src into dst (len(dst) >= len(src)) and
// returns the number of bytes written, or 0 when the result would not be
// smaller than src (the WIM then stores the chunk uncompressed). dst may
// be src: it is written only once the result is known to fit, so a caller
// needs no second buffer for every chunk in flight.
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
	c.mf.Reset()
	w := bitWriter{out: c.out[:min(len(dst), len(src)-1)]}
	// Huffman codes adapt per block; codeword lengths are sent as deltas
	// from the previous block's.
	var prevMain [maxMainSyms]uint8
	var prevLen [lenSyms]uint8
	q := [3]uint32{1, 1, 1}
	for s := 0; s < len(data); s += blockSize {
		e := min(len(data), s+blockSize)
		if !c.findMatches(data, s, e, e-s == len(data)) {
			return 0
		}
		if est := c.initCosts(data, s, e); e-s == len(data) && est >= len(data) {
			// Even the symbols alone of a parse that is rarely more
			// than a few percent worse do not fit: the chunk is
			// incompressible, so skip the optimizing parse.
			return 0
		}
		for pass := 0; ; pass++ {
			c.parse(data, s, e, q)
			c.collect(data, s, e)
			if pass+1 == numPasses {
				break
			}
			c.updateCosts()
		}
		q = c.writeBlock(&w, e-s, q, &prevMain, &prevLen)
		if w.overflow {
			return 0
		}
	}
	return copy(dst, c.out[:w.flush()])
}

// findMatches records the explicit-offset matches at every position of the
// block [s, e), skipping over the inside of very long matches as the
// parser will. Matches reach back anywhere in the chunk; only one block's
// matches are held at a time, which bounds memory for large chunks.
//
// With probe set, it reports false, giving up, when the first probeSize
// bytes look incompressible (as compressed files do): nearly 8 bits of
// entropy per byte and hardly any matches.
func (c *Compressor) findMatches(data []byte, s, e int, probe bool) bool {
	probe = probe && e-s >= 2*probeSize
	mf := c.mf
	c.matches = c.matches[:0]
	// The format cannot express a match from the last two bytes of the
	// window back to its first two.
	maxOff := min(len(data), 1<<c.order-3)
	for i := s; i < e; {
		if probe && i >= s+probeSize {
			probe = false
			if len(c.matches) < probeSize/64 && huffman.Entropy(data[s:s+probeSize]) > 7.9 {
				return false
			}
		}
		c.mstart[i] = int32(len(c.matches))
		c.matches = mf.All(data, i, maxMatchLen, niceLen, searchDepth, maxOff, c.matches)
		k := len(c.matches)
		if k > int(c.mstart[i]) && int(c.matches[k-1].Len) >= niceLen {
			// Stop at the block end: the next block searches from there.
			l := min(int(c.matches[k-1].Len), e-i)
			mf.Skip(data, i+1, i+l)
			for j := i + 1; j < i+l; j++ {
				c.mstart[j] = int32(k)
			}
			i += l
			continue
		}
		i++
	}
	c.mstart[e] = int32(len(c.matches))
	return true
}

// probeSize is how much of a chunk findMatches looks at before deciding it
// is incompressible.
const probeSize = 4096

// initCosts sets a first cost model before any optimized parse exists:
// the Huffman code of a greedy parse over the recorded matches. It returns
// the size of that parse's symbols and extra bits.
func (c *Compressor) initCosts(data []byte, s, e int) (estBytes int) {
	clear(c.mainFreq[:])
	clear(c.lenFreq[:])
	r0 := uint32(1)
	extraBits := 0
	for i := s; i < e; {
		maxLen := min(maxMatchLen, e-i)
		repLen := 0
		if int(r0) <= i && maxLen >= minMatchLen {
			repLen = lzmatch.MatchLen(data, i-int(r0), i, maxLen)
		}
		ms := c.matches[c.mstart[i]:c.mstart[i+1]]
		var best lzmatch.Match
		if len(ms) > 0 {
			best = ms[len(ms)-1]
			best.Len = min(best.Len, uint32(maxLen))
		}
		var slot uint32
		var l int
		switch {
		case repLen >= minMatchLen && repLen+1 >= int(best.Len):
			slot, l = 0, repLen
		case best.Len >= 3:
			slot, l = offsetSlot(best.Off), int(best.Len)
			r0 = best.Off
			extraBits += int(extraOffsetBits[slot])
		default:
			c.mainFreq[data[i]]++
			i++
			continue
		}
		h := l - minMatchLen
		if h >= numPrimaryLens {
			c.lenFreq[h-numPrimaryLens]++
			h = numPrimaryLens
		}
		c.mainFreq[numChars+int(slot)*numLenHeaders+h]++
		i += l
	}
	c.updateCosts()
	bits := extraBits
	for s, f := range c.mainFreq[:c.nMain] {
		bits += int(f) * int(c.mainLens[s])
	}
	for s, f := range c.lenFreq {
		bits += int(f) * int(c.lenLens[s])
	}
	return bits / 8
}

// updateCosts derives the cost model from the Huffman code the current
// parse would get.
func (c *Compressor) updateCosts() {
	c.makeCodes()
	for s := 0; s < c.nMain; s++ {
		l := uint32(c.mainLens[s])
		if l == 0 {
			l = unusedMain
		}
		c.mainCost[s] = l * costScale
	}
	for s := range c.lenCost {
		l := uint32(c.lenLens[s])
		if l == 0 {
			l = unusedLen
		}
		c.lenCost[s] = l * costScale
	}
}

func offsetSlot(offset uint32) uint32 {
	f := offset + offsetAdjust
	if f >= 1<<18 {
		// From slot 36 on, every slot spans 2^17 offsets.
		return 36 + (f-1<<18)>>17
	}
	l := uint32(bits.Len32(f)) - 1
	return 2*l + (f>>(l-1))&1
}

// parse finds the cheapest path through the chunk under the current cost
// model. The recent offsets queue along the best path to a position is
// derived when the position is expanded: its predecessor is final by then.
func (c *Compressor) parse(data []byte, s, e int, q0 [3]uint32) {
	nodes := c.nodes[:e-s+1]
	for i := s; i <= e; i++ {
		nodes[-s+i].cost = infCost
	}
	nodes[0] = node{cost: 0}
	queues := c.queues[:e-s+1]
	queues[0] = q0
	c.setMatchCosts(e-s, e)
	mainCost := &c.mainCost
	matches, mstart := c.matches, c.mstart
	costTab := &c.matchCostTab
	for i := s; i < e; {
		cur := nodes[-s+i]
		base := cur.cost
		var q [3]uint32
		if i > s {
			pq := &queues[-s+i-int(cur.length)]
			switch {
			case cur.length == 1:
				q = *pq
			case cur.slot >= numRecentOffsets:
				q = [3]uint32{cur.off, pq[0], pq[1]}
			default:
				q = *pq
				q[cur.slot], q[0] = q[0], cur.off
			}
		} else {
			q = q0
		}
		queues[-s+i] = q
		maxLen := min(maxMatchLen, e-i)
		// Literal.
		if lc := base + mainCost[data[i]]; lc < nodes[-s+i+1].cost {
			nodes[-s+i+1] = node{cost: lc, length: 1}
		}
		if maxLen < minMatchLen {
			i++
			continue
		}
		// Each length is considered with the first offset that reaches
		// it, in the order R0, R1, R2, explicit offsets (nearest first):
		// the earlier ones are almost always cheaper.
		next := minMatchLen
		for k := range uint32(numRecentOffsets) {
			off := int(q[k])
			if next > maxLen {
				break
			}
			if off > i || data[i-off] != data[i] || data[i-off+1] != data[i+1] {
				continue
			}
			src := i - off
			if next > minMatchLen && lzmatch.MatchLen(data, src, i, next) < next {
				continue
			}
			tab := &costTab[k]
			for ; next <= maxLen && data[src+next-1] == data[i+next-1]; next++ {
				if mc := base + tab[next-minMatchLen]; mc < nodes[-s+i+next].cost {
					nodes[-s+i+next] = node{cost: mc, length: uint16(next), off: uint32(off), slot: k}
				}
			}
		}
		if next-1 >= niceLen {
			// Take a long repeat match outright.
			i += next - 1
			continue
		}
		longest := 0
		for _, m := range matches[mstart[i]:mstart[i+1]] {
			longest = min(int(m.Len), maxLen)
			if longest < next {
				continue
			}
			off := m.Off
			slot := offsetSlot(off)
			tab := &costTab[slot]
			extra := base + uint32(extraOffsetBits[slot])*costScale
			for ; next <= longest; next++ {
				if mc := extra + tab[next-minMatchLen]; mc < nodes[-s+i+next].cost {
					nodes[-s+i+next] = node{cost: mc, length: uint16(next), off: off, slot: slot}
				}
			}
		}
		if longest >= niceLen {
			i += longest
			continue
		}
		// A match, one literal, and the same offset again is common
		// (a changed byte in a copy) and the step-by-step parse misses
		// it when the literal alone does not look worthwhile.
		if ms := matches[mstart[i]:mstart[i+1]]; longest >= 3 {
			off := int(ms[len(ms)-1].Off)
			g := i + longest + 1
			if g+minMatchLen <= e && data[g] == data[g-off] && data[g+1] == data[g+1-off] {
				rl := lzmatch.MatchLen(data, g-off, g, min(maxMatchLen, e-g))
				slot := offsetSlot(uint32(off))
				mc := base + uint32(extraOffsetBits[slot])*costScale + costTab[slot][longest-minMatchLen] +
					mainCost[data[g-1]] + costTab[0][rl-minMatchLen]
				if end := g + rl; mc < nodes[-s+end].cost {
					nodes[-s+end] = node{cost: mc, length: uint16(end - i), off: uint32(off), slot: slot, gap: uint16(longest)}
				}
			}
		}
		i++
	}
}

// setMatchCosts tabulates the cost of every (offset slot, length) match
// header under the current cost model, for matches of up to maxLen bytes
// and offsets below maxOff (small blocks need only a corner of the table).
func (c *Compressor) setMatchCosts(maxLen, maxOff int) {
	nSlots := min((c.nMain-numChars)/numLenHeaders, int(offsetSlot(uint32(max(maxOff, 1))))+1)
	n := min(numLens, maxLen-minMatchLen+1)
	for slot := range nSlots {
		sb := numChars + slot*numLenHeaders
		tab := c.matchCostTab[slot][:n]
		for h := range tab {
			if h < numPrimaryLens {
				tab[h] = c.mainCost[sb+h]
			} else {
				tab[h] = c.mainCost[sb+numPrimaryLens] + c.lenCost[h-numPrimaryLens]
			}
		}
	}
}

// collect walks the best path backwards, stores its items in order and
// counts symbol frequencies.
func (c *Compressor) collect(data []byte, s, e int) {
	nodes := c.nodes
	count := 0
	for i := e; i > s; i -= int(nodes[-s+i].length) {
		count++
		if nodes[-s+i].gap > 0 {
			count += 2
		}
	}
	if cap(c.items) < count {
		c.items = make([]item, count)
	}
	c.items = c.items[:count]
	clear(c.mainFreq[:])
	clear(c.lenFreq[:])
	clear(c.alFreq[:])
	k := count
	for i := e; i > s; {
		nd := &nodes[-s+i]
		if nd.length == 1 {
			b := data[i-1]
			k--
			c.items[k] = item{sym: b}
			c.mainFreq[b]++
			i--
			continue
		}
		start := i - int(nd.length)
		if nd.gap > 0 {
			lit := data[start+int(nd.gap)]
			k -= 3
			c.items[k] = c.matchItem(uint32(nd.gap), nd.slot, nd.off)
			c.items[k+1] = item{sym: lit}
			c.mainFreq[lit]++
			c.items[k+2] = c.matchItem(uint32(nd.length-nd.gap-1), 0, nd.off)
		} else {
			k--
			c.items[k] = c.matchItem(uint32(nd.length), nd.slot, nd.off)
		}
		i = start
	}
}

// matchItem returns the item for a match and counts its symbols.
func (c *Compressor) matchItem(length, slot, off uint32) item {
	it := item{length: uint16(length), slot: uint8(slot)}
	h := length - minMatchLen
	if h >= numPrimaryLens {
		c.lenFreq[h-numPrimaryLens]++
		h = numPrimaryLens
	}
	c.mainFreq[numChars+slot*numLenHeaders+h]++
	if slot >= numRecentOffsets {
		it.extra = off - uint32(offsetSlotBase[slot])
		if slot >= minAlignedSlot {
			c.alFreq[it.extra&7]++
		}
	}
	return it
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
// writeBlock encodes the collected items as one block of size bytes and
// returns the recent offsets queue after it, given the one before it.
func (c *Compressor) writeBlock(w *bitWriter, size int, q [3]uint32, prevMain *[maxMainSyms]uint8, prevLen *[lenSyms]uint8) [3]uint32 {
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
	c.writeLens(w, prevMain[:numChars], c.mainLens[:numChars])
	c.writeLens(w, prevMain[numChars:c.nMain], c.mainLens[numChars:c.nMain])
	c.writeLens(w, prevLen[:], c.lenLens[:])
	copy(prevMain[:c.nMain], c.mainLens[:c.nMain])
	*prevLen = c.lenLens
	for _, it := range c.items {
		if it.length == 0 {
			w.bits(c.mainCode[it.sym], uint32(c.mainLens[it.sym]))
			continue
		}
		slot := uint32(it.slot)
		h := uint32(it.length) - minMatchLen
		lh := min(h, numPrimaryLens)
		ms := numChars + slot*numLenHeaders + lh
		w.bits(c.mainCode[ms], uint32(c.mainLens[ms]))
		if lh == numPrimaryLens {
			ls := h - numPrimaryLens
			w.bits(c.lenCode[ls], uint32(c.lenLens[ls]))
		}
		if slot < numRecentOffsets {
			q[slot], q[0] = q[0], q[slot]
			continue
		}
		q = [3]uint32{it.extra + uint32(offsetSlotBase[slot]), q[0], q[1]}
		nb := uint32(extraOffsetBits[slot])
		if btype == blockAligned && slot >= minAlignedSlot {
			w.bits(it.extra>>numAlignedBits, nb-numAlignedBits)
			a := it.extra & 7
			w.bits(c.alCode[a], uint32(c.alLens[a]))
		} else {
			w.bits(it.extra, nb)
		}
		if w.overflow {
			return q
		}
	}
	return q
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
