// Package blake3 is the BLAKE3 hash with a 256-bit output, as
// manifest's chunk hashes use it, fast on the CPUs a PE meets.
//
// On a CPU with AVX2 it is lukechampine.com/blake3, whose vector code
// hashes several GB/s. Without AVX2 that library runs generic Go, which
// keeps too few of a compression's words in registers: that is the case
// of QEMU's TCG, where CI and the benchmarks run the PE, and of the Atom,
// Celeron and Pentium lines sold until 2021. There this package hashes
// with its own compression in scalar amd64 code (compress_amd64.s):
// under full-system TCG three times as fast as the library's generic Go
// (see docs/benchmarks.md), on a real CPU about as fast (1.08 times on a
// Xeon). Vector code would not help: TCG emulates SSE and AVX
// instructions one helper call at a time, and there
// github.com/zeebo/blake3's SSE4.1 code ran slower than its generic Go.
//
// Both compute the same function; the tests check this package's own
// code against the published test vectors and against the library on
// every tree shape up to many chunks. A difference could only make a PE
// refuse a package (a chunk that does not match), never accept one.
package blake3

import (
	"encoding/binary"
	"hash"
	"runtime"

	"golang.org/x/sys/cpu"
	lc "lukechampine.com/blake3"
)

// scalar is whether this package's own code hashes (see the package doc).
var scalar = runtime.GOARCH == "amd64" && !cpu.X86.HasAVX2

// Size is the size of a sum in bytes.
const Size = 32

const (
	blockSize  = 64
	chunkSize  = 1024
	chunkStart = 1 << 0
	chunkEnd   = 1 << 1
	parent     = 1 << 2
	root       = 1 << 3
)

var iv = [8]uint32{0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19}

var permutation = [16]int{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}

// Sum256 is the BLAKE3 hash of b.
func Sum256(b []byte) [Size]byte {
	if !scalar {
		return lc.Sum256(b)
	}
	var d digest
	d.Reset()
	d.Write(b)
	return d.sum256()
}

// New returns a hash.Hash computing Sum256 of what is written to it.
func New() hash.Hash {
	if !scalar {
		return lc.New(Size, nil)
	}
	d := new(digest)
	d.Reset()
	return d
}

// digest is BLAKE3's tree as its paper's reference code builds it: each
// 1 KiB chunk is compressed block by block into a chaining value, and a
// finished chunk's value is merged with the stack of subtree roots for as
// many levels as the chunk count has trailing zeros. The last block
// written stays in block until more arrives, because the last block of
// the input is compressed with other flags (and, for a one-chunk input,
// as the root).
type digest struct {
	cv       [8]uint32 // of the current chunk so far
	block    [blockSize]byte
	blockLen int    // bytes in block
	blocks   int    // blocks of the current chunk compressed
	chunks   uint64 // chunks finished: the current chunk's counter
	stack    [54][8]uint32
	depth    int
}

func (d *digest) Reset() {
	*d = digest{cv: iv}
}

func (d *digest) Size() int      { return Size }
func (d *digest) BlockSize() int { return blockSize }

func (d *digest) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.blockLen == blockSize {
			d.absorb(&d.block)
			d.blockLen = 0
		}
		for d.blockLen == 0 && len(p) > blockSize {
			d.absorb((*[blockSize]byte)(p))
			p = p[blockSize:]
		}
		k := copy(d.block[d.blockLen:], p)
		d.blockLen += k
		p = p[k:]
	}
	return n, nil
}

// absorb compresses a whole block that is known not to be the input's
// last.
func (d *digest) absorb(b *[blockSize]byte) {
	var flags uint32
	if d.blocks == 0 {
		flags = chunkStart
	}
	if d.blocks < chunkSize/blockSize-1 {
		compress(&d.cv, b, d.chunks, blockSize, flags)
		d.blocks++
		return
	}
	compress(&d.cv, b, d.chunks, blockSize, flags|chunkEnd)
	cv := d.cv
	d.chunks++
	for t := d.chunks; t&1 == 0; t >>= 1 {
		d.depth--
		cv = parentCV(&d.stack[d.depth], &cv, 0)
	}
	d.stack[d.depth] = cv
	d.depth++
	d.cv, d.blocks = iv, 0
}

func parentCV(left, right *[8]uint32, flags uint32) [8]uint32 {
	var b [blockSize]byte
	for i := range 8 {
		binary.LittleEndian.PutUint32(b[4*i:], left[i])
		binary.LittleEndian.PutUint32(b[32+4*i:], right[i])
	}
	cv := iv
	compress(&cv, &b, 0, blockSize, parent|flags)
	return cv
}

func (d *digest) Sum(b []byte) []byte {
	s := d.sum256()
	return append(b, s[:]...)
}

// sum256 finishes the current chunk and merges it up the stack, the last
// merge as the root, leaving d as it is.
func (d *digest) sum256() (out [Size]byte) {
	var block [blockSize]byte
	copy(block[:], d.block[:d.blockLen])
	var flags uint32 = chunkEnd
	if d.blocks == 0 {
		flags |= chunkStart
	}
	cv, counter, n := d.cv, d.chunks, uint32(d.blockLen)
	for i := d.depth - 1; i >= 0; i-- {
		compress(&cv, &block, counter, n, flags)
		for j := range 8 {
			binary.LittleEndian.PutUint32(block[4*j:], d.stack[i][j])
			binary.LittleEndian.PutUint32(block[32+4*j:], cv[j])
		}
		cv, counter, n, flags = iv, 0, blockSize, parent
	}
	compress(&cv, &block, counter, n, flags|root)
	for i := range 8 {
		binary.LittleEndian.PutUint32(out[4*i:], cv[i])
	}
	return out
}
