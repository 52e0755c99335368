package xpress

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/minint/minint/wim/internal/huffman"
)

// Parameters of the lazy parser. wimlib's default level (50) searches 46
// candidates, takes 93-byte matches outright and checks every shorter
// match lazily; a shallower search, no lazy check for matches of 8 bytes
// or more (rarely beaten one byte on), and indexing only every 4th
// position inside long matches cost about 1% of output and make it
// markedly faster.
var (
	searchDepth = 16
	niceLen     = 32
	skipStep    = 4
	maxLazy     = 8 // longer matches are taken without the lazy check
)

// Compressor is reusable, not safe for concurrent use.
type Compressor struct {
	maxChunk int
	mf       *finder
	items    []item
	matched  int // bytes covered by matches so far
	freqs    [numSymbols]uint32
	lens     [numSymbols]uint8
	codes    [numSymbols]uint32
	enc      huffman.Encoder
}

// item is a literal (length 0, offset holds the byte) or a match.
type item struct {
	length uint32
	offset uint32
	sym    uint32 // the Huffman symbol, computed once during parsing
}

// NewCompressor prepares for chunks of up to maxChunk bytes (32768 default
// in WIM; XPRESS offsets limit chunks to 64 KiB).
func NewCompressor(maxChunk int) *Compressor {
	if maxChunk <= 0 || maxChunk > maxOffset+1 {
		panic("xpress: chunk size out of range")
	}
	return &Compressor{maxChunk: maxChunk, mf: newFinder()}
}

// Compress compresses one chunk src into dst (len(dst) >= len(src)) and
// returns the number of bytes written, or 0 when the result would not be
// smaller than src (the WIM then stores the chunk uncompressed).
func (c *Compressor) Compress(dst, src []byte) int {
	if len(src) > c.maxChunk {
		panic("xpress: chunk larger than the compressor's maximum")
	}
	if len(src) <= headerSize+4 {
		return 0
	}
	if !c.parse(src) {
		return 0
	}
	limit := min(len(dst), len(src)-1)
	return c.write(dst[:limit])
}

// parse chooses the literals and matches, or reports false when the chunk
// turns out to be incompressible (as compressed files are) without
// parsing all of it.
func (c *Compressor) parse(in []byte) bool {
	clear(c.freqs[:])
	c.items = c.items[:0]
	c.matched = 0
	mf := c.mf
	mf.reset()
	// A length-3 match far back costs more than three literals.
	tooFar := 4096
	if len(in) <= 8192 {
		tooFar = 2048
	}
	n := len(in)
	// Positions are hashed by their first four bytes; the last three are
	// left as literals (or covered by matches reaching the end).
	end := n - 3
	i := 0
	probed := n < 2*probeSize
	for i < end {
		if !probed && i >= probeSize {
			probed = true
			if c.matched < probeSize/64 && entropy(in[:probeSize]) > 7.9 {
				return false
			}
		}
		curLen, curOff := mf.longest(in, i, 0, searchDepth)
		i++
		if curLen < minMatchLen || curLen == minMatchLen && curOff >= tooFar {
			c.literal(in[i-1])
			continue
		}
		// i is one past the start of the current match.
		for {
			if curLen >= niceLen || curLen >= maxLazy || i >= end {
				c.match(curLen, curOff)
				mf.skip(in, i, min(i+curLen-1, end))
				i += curLen - 1
				break
			}
			// Lazy evaluation: is there a longer match one byte on?
			nextLen, nextOff := mf.longest(in, i, curLen, searchDepth/2)
			i++
			if nextLen > curLen {
				c.literal(in[i-2])
				curLen, curOff = nextLen, nextOff
				continue
			}
			c.match(curLen, curOff)
			mf.skip(in, i, min(i+curLen-2, end))
			i += curLen - 2
			break
		}
	}
	for ; i < n; i++ {
		c.literal(in[i])
	}
	return true
}

// probeSize is how much of a chunk is parsed before giving up on
// incompressible data: with almost no matches and nearly 8 bits of entropy
// per byte, Huffman coding cannot pay for its 256-byte code table.
const probeSize = 4096

// entropy is the order-0 entropy of b in bits per byte.
func entropy(b []byte) float64 {
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

func (c *Compressor) literal(b byte) {
	c.freqs[b]++
	c.items = append(c.items, item{0, uint32(b), uint32(b)})
}

func (c *Compressor) match(length, offset int) {
	c.matched += length
	sym := matchSym(length, offset)
	c.freqs[sym]++
	c.items = append(c.items, item{uint32(length), uint32(offset), uint32(sym)})
}

func matchSym(length, offset int) int {
	return numChars + (bits.Len32(uint32(offset))-1)<<4 | min(length-minMatchLen, 0xF)
}

// writer mirrors the XPRESS bitstream layout: two 16-bit coding units are
// reserved ahead of the raw byte position, which is exactly where the
// decompressor, fetching units lazily, will look for raw bytes.
type writer struct {
	out      []byte
	buf      uint32
	count    uint32
	nb, nb2  int
	next     int
	overflow bool
}

func (w *writer) bits(v, n uint32) {
	w.count += n
	w.buf = w.buf<<n | v
	if w.count > 16 {
		w.count -= 16
		if len(w.out)-w.next >= 2 {
			binary.LittleEndian.PutUint16(w.out[w.nb:], uint16(w.buf>>w.count))
			w.nb, w.nb2 = w.nb2, w.next
			w.next += 2
		} else {
			w.overflow = true
		}
	}
}

func (w *writer) byte(b byte) {
	if w.next < len(w.out) {
		w.out[w.next] = b
		w.next++
	} else {
		w.overflow = true
	}
}

func (w *writer) u16(v uint16) {
	if len(w.out)-w.next >= 2 {
		binary.LittleEndian.PutUint16(w.out[w.next:], v)
		w.next += 2
	} else {
		w.overflow = true
	}
}

func (w *writer) flush() int {
	if w.overflow || len(w.out)-w.next < 2 {
		return 0
	}
	binary.LittleEndian.PutUint16(w.out[w.nb:], uint16(w.buf<<(16-w.count)))
	binary.LittleEndian.PutUint16(w.out[w.nb2:], 0)
	return w.next
}

func (c *Compressor) write(out []byte) int {
	if len(out) < headerSize+4 {
		return 0
	}
	// Microsoft's decoder wants an end-of-data symbol.
	c.freqs[endOfDataSym]++
	c.enc.MakeCode(c.freqs[:], maxCodeLen, c.lens[:], c.codes[:])
	for i := range headerSize {
		out[i] = c.lens[2*i] | c.lens[2*i+1]<<4
	}
	w := writer{out: out[headerSize:], nb: 0, nb2: 2, next: 4}
	lens, codes := &c.lens, &c.codes
	for _, it := range c.items {
		sym := uint8(it.sym) // uint8 indexes: no bounds checks below
		if it.length == 0 {
			w.bits(codes[sym], uint32(lens[sym]))
			continue
		}
		w.bits(codes[256+int(sym)], uint32(lens[256+int(sym)]))
		adj := it.length - minMatchLen
		if adj >= 0xF {
			b := min(adj-0xF, 0xFF)
			w.byte(byte(b))
			if b == 0xFF {
				w.u16(uint16(adj))
			}
		}
		log2 := uint32(bits.Len32(it.offset) - 1)
		w.bits(it.offset-1<<log2, log2)
		if w.overflow {
			return 0
		}
	}
	w.bits(codes[endOfDataSym], uint32(lens[endOfDataSym]))
	n := w.flush()
	if n == 0 {
		return 0
	}
	return headerSize + n
}
