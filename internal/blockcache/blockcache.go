// Package blockcache serves reads of a file in large blocks kept in
// memory, loading the block after the one a reader needed in the
// background.
//
// An apply reads a WIM in many small reads, mostly in file order. Straight
// from a CD each of them is a system call and often a wait for the
// device; in a one-vCPU PE under TCG the apply took 23% longer that way
// (issue 16). Read in 4 MiB blocks with one block read ahead, the
// device's time overlaps the decompression, and most reads are a copy
// from memory. The same holds for a download under way, where each small
// read also takes the transfer's lock (11% longer with two vCPUs). (From a
// finished download in the page cache the copy into blocks measured no
// faster than reading in place.)
//
// How a block is loaded is the caller's: manifest.ChunkReader checks each
// one against its signed hash as it loads it, so the bytes a reader gets
// are always those of a copy that was checked.
package blockcache

import (
	"fmt"
	"io"
	"sync"
)

// Reader is an io.ReaderAt over size bytes in blocks of Options.BlockSize.
// Safe for concurrent use.
type Reader struct {
	size, block int64
	n           int // blocks
	max         int // blocks kept
	load        func(i int) ([]byte, error)

	ahead sync.WaitGroup // read-ahead goroutines

	mu      sync.Mutex
	closed  bool
	seen    []bool                // loaded at least once
	loading map[int]chan struct{} // blocks being loaded
	cache   map[int][]byte
	lru     []int // cached blocks, least recently used first
}

// Options configure a Reader.
type Options struct {
	// BlockSize is the size of every block but the last (> 0).
	BlockSize int64
	// CacheBytes bounds the blocks kept in memory (at least one; with
	// room for one only, nothing is read ahead).
	CacheBytes int64
	// Load returns block i whole: BlockSize bytes from i*BlockSize, fewer
	// for the last block. A block that fails is not kept: the next reader
	// that needs it loads it again and gets the error itself.
	Load func(i int) ([]byte, error)
}

// New returns a Reader of size bytes.
func New(size int64, o Options) *Reader {
	n := int((size + o.BlockSize - 1) / o.BlockSize)
	return &Reader{size: size, block: o.BlockSize, n: n, max: max(1, int(o.CacheBytes/o.BlockSize)), load: o.Load,
		seen: make([]bool, n), loading: map[int]chan struct{}{}, cache: map[int][]byte{}}
}

// ReaderAt is Options.Load for a plain source: block i read from r.
func ReaderAt(r io.ReaderAt, size, blockSize int64) func(i int) ([]byte, error) {
	return func(i int) ([]byte, error) {
		start := int64(i) * blockSize
		b := make([]byte, min(blockSize, size-start))
		if n, err := r.ReadAt(b, start); n < len(b) {
			if err == io.EOF || err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading bytes %d-%d: %w", start, start+int64(len(b))-1, err)
		}
		return b, nil
	}
}

// BlockLen is the length of block i.
func (r *Reader) BlockLen(i int) int64 {
	return min(r.block, r.size-int64(i)*r.block)
}

// Seen reports whether block i was ever loaded successfully.
func (r *Reader) Seen(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[i]
}

// Close waits for a read-ahead under way; reads after it still work but
// read nothing ahead.
func (r *Reader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.ahead.Wait()
	return nil
}

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("blockcache: negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.size {
			return n, io.EOF
		}
		i := int(pos / r.block)
		data, err := r.Block(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[pos-int64(i)*r.block:])
	}
	return n, nil
}

// Block returns block i, from memory or loaded now; concurrent readers of
// one block wait for a single load. The slice must not be changed.
func (r *Reader) Block(i int) ([]byte, error) {
	for {
		r.mu.Lock()
		if b, ok := r.cache[i]; ok {
			r.touch(i)
			r.readAhead(i + 1)
			r.mu.Unlock()
			return b, nil
		}
		if ch, ok := r.loading[i]; ok {
			r.mu.Unlock()
			<-ch
			continue // cached now, or failed: then this reader tries itself
		}
		ch := make(chan struct{})
		r.loading[i] = ch
		r.mu.Unlock()
		b, err := r.load(i)
		r.mu.Lock()
		r.loaded(i, ch, b, err)
		if err == nil {
			r.readAhead(i + 1)
		}
		r.mu.Unlock()
		return b, err
	}
}

// readAhead starts loading block n in the background unless it was loaded
// before or is being loaded; r.mu is held. A reader that needed block n-1
// will most likely need n next (an apply reads blobs in file order), so
// loading it now, while the caller decompresses, overlaps the device's
// time (and, with more than one CPU, a Load's hashing) with the apply. A
// block loaded before and evicted was left behind by the readers; with
// room for one block only, reading ahead would evict the block being read.
func (r *Reader) readAhead(n int) {
	if n >= r.n || r.max < 2 || r.closed || r.seen[n] || r.loading[n] != nil {
		return
	}
	ch := make(chan struct{})
	r.loading[n] = ch
	r.ahead.Add(1)
	go func() {
		defer r.ahead.Done()
		b, err := r.load(n)
		r.mu.Lock()
		r.loaded(n, ch, b, err)
		r.mu.Unlock()
	}()
}

// loaded records the end of loading block i (announced on ch); r.mu is
// held.
func (r *Reader) loaded(i int, ch chan struct{}, b []byte, err error) {
	delete(r.loading, i)
	close(ch)
	if err != nil {
		return
	}
	r.seen[i] = true
	r.cache[i] = b
	r.lru = append(r.lru, i)
	if len(r.lru) > r.max {
		delete(r.cache, r.lru[0])
		r.lru = r.lru[1:]
	}
}

// touch marks cached block i as the most recently used; r.mu is held.
func (r *Reader) touch(i int) {
	for k, j := range r.lru {
		if j == i {
			copy(r.lru[k:], r.lru[k+1:])
			r.lru[len(r.lru)-1] = i
			return
		}
	}
}
