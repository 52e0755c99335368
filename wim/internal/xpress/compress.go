package xpress

import (
	"encoding/binary"
	"math/bits"

	"github.com/minint/minint/wim/internal/huffman"
)

// Parameters of the lazy parser. wimlib's default level (50) searches 46
// candidates, takes 93-byte matches outright and checks every shorter
// match lazily; a shallower search, no lazy check for matches of 6 bytes
// or more (rarely beaten one byte on), and indexing only every 4th
// position inside long matches cost about 1.5% of output and make it
// markedly faster. (On a GOROOT tree: maxLazy 8 instead of 6 saves 0.24%
// of output for 4% more instructions; 3, greedy parsing, costs 1.3%.)
var (
	searchDepth = 16
	niceLen     = 32
	skipStep    = 4
	maxLazy     = 6 // longer matches are taken without the lazy check
	skipDense   = 8 // positions inserted one by one at the start of a match
)

// Compressor is reusable, not safe for concurrent use.
type Compressor struct {
	maxChunk int
	mf       *finder
	items    []uint64 // see item
	nitems   int
	freqs    [numSymbols]uint32
	lens     [numSymbols]uint8
	codes    [numSymbols]uint32
	enc      huffman.Encoder
	// out receives the compressed chunk: it is large enough for any
	// chunk, so writing needs no overflow checks; the result is copied to
	// the caller's buffer if it fits.
	out *[outMask + 8]byte
}

// An item is a literal or a match packed into 64 bits, as wimlib does:
// bits 0-8 the Huffman symbol (a literal is its byte), and for a match
// bits 9-24 the length minus 3, bits 25-28 the number of extra offset
// bits and bits 29 and up the extra offset bits.
func literalItem(b byte) uint64 { return uint64(b) }

func matchItem(length, offset int) (item uint64, sym int) {
	adj := length - minMatchLen
	log2 := bits.Len32(uint32(offset)) - 1
	sym = numChars + log2<<4 | min(adj, 0xF)
	return uint64(sym) | uint64(adj)<<9 | uint64(log2)<<25 | uint64(offset-1<<log2)<<29, sym
}

// outMask+1 bounds the size of a compressed chunk of up to 64 KiB: the
// code lengths, then at most 15 bits (a literal's longest codeword) per
// input byte, a match of 3 bytes or more taking at most 15+15 bits and 3
// length bytes, and the end-of-data symbol and final units.
const outMask = 1<<18 - 1

// NewCompressor prepares for chunks of up to maxChunk bytes (32768 default
// in WIM; XPRESS offsets limit chunks to 64 KiB).
func NewCompressor(maxChunk int) *Compressor {
	if maxChunk <= 0 || maxChunk > maxOffset+1 {
		panic("xpress: chunk size out of range")
	}
	return &Compressor{
		maxChunk: maxChunk,
		mf:       newFinder(),
		items:    make([]uint64, maxChunk+1),
		out:      new([outMask + 8]byte),
	}
}

// Compress compresses one chunk src into dst (len(dst) >= len(src)) and
// returns the number of bytes written, or 0 when the result would not be
// smaller than src (the WIM then stores the chunk uncompressed). dst may
// be src: it is written only once the result is known to fit, so a caller
// needs no second buffer for every chunk in flight.
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
	n := c.write()
	if n > limit {
		return 0
	}
	return copy(dst, c.out[:n])
}

// parse chooses the literals and matches, or reports false when the chunk
// turns out to be incompressible (as compressed files are) without
// parsing all of it.
func (c *Compressor) parse(in []byte) bool {
	clear(c.freqs[:])
	c.nitems = 0
	mf := c.mf
	mf.reset(in)
	// A length-3 match far back costs more than three literals.
	tooFar := 4096
	if len(in) <= 8192 {
		tooFar = 2048
	}
	n := len(in)
	// Positions are hashed by their first four bytes; the last three are
	// left as literals (or covered by matches reaching the end).
	end := n - 3
	// Large chunks are probed for incompressible data once the first
	// probeSize positions are parsed.
	lim := end
	if n >= 2*probeSize {
		lim = probeSize
	}
	i := 0
	for {
		var curLen, curOff int
		i, curLen, curOff = c.scan(i, lim, n, tooFar)
		if curLen == 0 {
			if lim == end {
				break
			}
			if c.matchedBytes() < probeSize/64 && huffman.Entropy(in[:probeSize]) > 7.9 {
				return false
			}
			lim = end
			continue
		}
		i++
		// i is one past the start of the current match.
		for {
			if curLen >= niceLen || curLen >= maxLazy || i >= end {
				c.match(curLen, curOff)
				mf.skip(i, min(i+curLen-1, end))
				i += curLen - 1
				break
			}
			// Lazy evaluation: is there a longer match one byte on?
			nextLen, nextOff := mf.longest(i, n, curLen, searchDepth/2)
			i++
			if nextLen > curLen {
				c.literal(in[i-2])
				curLen, curOff = nextLen, nextOff
				continue
			}
			c.match(curLen, curOff)
			mf.skip(i, min(i+curLen-2, end))
			i += curLen - 2
			break
		}
	}
	for ; i < n; i++ {
		c.literal(in[i])
	}
	return true
}

// scan inserts and searches positions from i up to lim (lim+3 <= n),
// recording literals, until one starts a match worth taking, and returns
// that position and match; (lim or i, 0, 0) when none does.
//
// It is the loop over literal positions, where most positions are spent,
// and has the search of finder.longest written out in it: Go's calling
// convention keeps no registers across calls, and a call per position
// would spill and reload the loop's state each time.
func (c *Compressor) scan(i, lim, n, tooFar int) (pos, length, offset int) {
	f := c.mf
	freqs := &c.freqs
	items := c.items
	k := c.nitems
	for ; i < lim; i++ {
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
		nice := min(niceLen, maxLen)
		depth := searchDepth
		bestLen := 0
		// The first 4-byte match, as in finder.longest.
		for ; depth > 0 && cand != 0; depth-- {
			q := int(cand) - 1
			cand = f.prev[cand-1]
			if f.load32(q) == v {
				depth--
				bestLen = f.matchLen(q, i, maxLen)
				offset = i - q
				break
			}
		}
		if bestLen == 0 {
			if cand3 != 0 {
				q := int(cand3) - 1
				if f.load32(q)<<8 == v<<8 && i-q < tooFar {
					c.nitems = k
					return i, minMatchLen, i - q
				}
			}
			b := f.win[uint16(i)]
			freqs[b]++
			items[k] = literalItem(b)
			k++
			continue
		}
		if bestLen < nice {
			want := f.load16(i + bestLen - 1)
			for ; depth > 0 && cand != 0; depth-- {
				q := int(cand) - 1
				cand = f.prev[cand-1]
				if f.load16(q+bestLen-1) != want || f.load32(q) != v {
					continue
				}
				l := f.matchLen(q, i, maxLen)
				if l > bestLen {
					bestLen, offset = l, i-q
					if l >= nice {
						break
					}
					want = f.load16(i + l - 1)
				}
			}
		}
		c.nitems = k
		return i, bestLen, offset
	}
	c.nitems = k
	return i, 0, 0
}

// matchedBytes returns how many bytes the matches parsed so far cover.
func (c *Compressor) matchedBytes() int {
	n := 0
	for _, it := range c.items[:c.nitems] {
		if it&0x1FF >= numChars {
			n += int(it>>9&0xFFFF) + minMatchLen
		}
	}
	return n
}

// probeSize is how much of a chunk is parsed before giving up on
// incompressible data: with almost no matches and nearly 8 bits of entropy
// per byte, Huffman coding cannot pay for its 256-byte code table.
const probeSize = 4096

func (c *Compressor) literal(b byte) {
	c.freqs[b]++
	c.items[c.nitems] = literalItem(b)
	c.nitems++
}

func (c *Compressor) match(length, offset int) {
	it, sym := matchItem(length, offset)
	c.freqs[sym]++
	c.items[c.nitems] = it
	c.nitems++
}

// write encodes the parsed items into c.out and returns the length.
//
// The bitstream interleaves 16-bit little-endian coding units with raw
// bytes (extra length bytes): two units are reserved ahead of the raw byte
// position, which is exactly where the decompressor, fetching units
// lazily, will look for raw bytes.
func (c *Compressor) write() int {
	// Microsoft's decoder wants an end-of-data symbol.
	c.freqs[endOfDataSym]++
	c.enc.MakeCode(c.freqs[:], maxCodeLen, c.lens[:], c.codes[:])
	out := c.out
	for i := range headerSize {
		out[i] = c.lens[2*i] | c.lens[2*i+1]<<4
	}
	// The bit writer is written out at each use rather than as a closure
	// or method, and positions are masked to the buffer's fixed size,
	// which they never reach: the compiler then keeps the writer's state
	// in registers and drops the bounds checks.
	var buf, count uint32
	nb, nb2, next := headerSize, headerSize+2, headerSize+4
	lens, codes := &c.lens, &c.codes
	for _, it := range c.items[:c.nitems] {
		sym := it & 0x1FF
		n := uint32(lens[sym])
		count += n
		buf = buf<<(n&31) | codes[sym]
		if count > 16 {
			count -= 16
			binary.LittleEndian.PutUint16(out[nb&outMask:], uint16(buf>>(count&31)))
			nb, nb2, next = nb2, next, next+2
		}
		if sym < numChars {
			continue
		}
		if adj := uint32(it>>9) & 0xFFFF; adj >= 0xF {
			b := min(adj-0xF, 0xFF)
			out[next&outMask] = byte(b)
			next++
			if b == 0xFF {
				binary.LittleEndian.PutUint16(out[next&outMask:], uint16(adj))
				next += 2
			}
		}
		n = uint32(it>>25) & 0xF
		count += n
		buf = buf<<(n&31) | uint32(it>>29)
		if count > 16 {
			count -= 16
			binary.LittleEndian.PutUint16(out[nb&outMask:], uint16(buf>>(count&31)))
			nb, nb2, next = nb2, next, next+2
		}
	}
	n := uint32(lens[endOfDataSym])
	count += n
	buf = buf<<(n&31) | codes[endOfDataSym]
	if count > 16 {
		count -= 16
		binary.LittleEndian.PutUint16(out[nb&outMask:], uint16(buf>>(count&31)))
		nb, nb2, next = nb2, next, next+2
	}
	binary.LittleEndian.PutUint16(out[nb&outMask:], uint16(buf<<((16-count)&31)))
	binary.LittleEndian.PutUint16(out[nb2&outMask:], 0)
	return next
}
