package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
)

// ChunkReader reads a local file (a package image on the boot medium)
// through its entry's chunk hashes, so that the file can be used while it
// is being verified instead of after a pass of its own: the apply reads
// the image once, and hashes each byte once.
//
// Fail-closed argument. ReadAt returns bytes of a chunk only from a copy
// in memory whose SHA-256 matched the manifest's chunk hash; the file is
// never read twice for one handed-out byte, so a medium that changes
// under the reader cannot slip in other bytes. A chunk that does not match
// fails the read with ErrChecksum naming its byte range, before the
// caller sees any of it. Complete then hashes the chunks no read needed
// (a WIM's unused images, its integrity table): once it returns nil every
// chunk matched, and a file of the signed size whose every chunk matches
// the signed chunk list is the file the signer hashed (SHA-256 collisions
// aside), so the whole-file SHA-256 would prove nothing more and is not
// computed again. The caller lets nothing after the apply run before
// Complete succeeded.
type ChunkReader struct {
	f    *os.File
	name string // the file's path, for errors
	e    *Entry
	sums [][sha256.Size]byte
	max  int // verified chunks kept in memory

	ahead sync.WaitGroup // read-ahead goroutines

	mu      sync.Mutex
	closed  bool
	checked []bool                // matched at least once
	loading map[int]chan struct{} // chunks being read and hashed
	cache   map[int][]byte
	lru     []int // cached chunks, least recently used first
	hashed  int64
}

// OpenChunks opens the file at name, which must have e's size (ErrSize
// otherwise) and e must carry chunk hashes (ErrFormat otherwise).
// cacheBytes bounds the verified chunks kept in memory (at least one): a
// chunk read again after it left the cache is read and hashed again.
func OpenChunks(name string, e *Entry, cacheBytes int64) (*ChunkReader, error) {
	if e.ChunkSize <= 0 || len(e.Chunks) == 0 && e.Size > 0 {
		return nil, fmt.Errorf("%w: %s has no per-chunk hashes, so it cannot be verified while it is read", ErrFormat, e.Path)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != e.Size {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrSize, name, fi.Size(), e.Size)
	}
	c := &ChunkReader{f: f, name: name, e: e, max: max(1, int(cacheBytes/e.ChunkSize)),
		checked: make([]bool, len(e.Chunks)), loading: map[int]chan struct{}{}, cache: map[int][]byte{}}
	for _, h := range e.Chunks {
		var s [sha256.Size]byte
		b, _ := hex.DecodeString(h) // validated with the manifest
		copy(s[:], b)
		c.sums = append(c.sums, s)
	}
	return c, nil
}

// Size is the file's size.
func (c *ChunkReader) Size() int64 { return c.e.Size }

// Hashed is how many bytes have been hashed so far: the file's size once
// every chunk was checked, more when chunks had to be read again.
func (c *ChunkReader) Hashed() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hashed
}

// Close waits for a read-ahead under way and releases the file.
func (c *ChunkReader) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.ahead.Wait()
	return c.f.Close()
}

// ReadAt implements io.ReaderAt with verified bytes only (see
// ChunkReader). Safe for concurrent use.
func (c *ChunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", c.name)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= c.e.Size {
			return n, io.EOF
		}
		i := int(pos / c.e.ChunkSize)
		data, err := c.chunk(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[pos-int64(i)*c.e.ChunkSize:])
	}
	return n, nil
}

// Complete checks every chunk no read has checked yet. nil means the whole
// file matches the manifest (see ChunkReader); progress, if not nil, is
// called with the bytes checked and the file's size.
func (c *ChunkReader) Complete(ctx context.Context, progress func(done, total int64)) error {
	var done int64
	for i := range c.sums {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		checked := c.checked[i]
		c.mu.Unlock()
		if !checked {
			if _, err := c.chunk(i); err != nil {
				return err
			}
		}
		done += c.chunkLen(i)
		if progress != nil {
			progress(done, c.e.Size)
		}
	}
	return nil
}

func (c *ChunkReader) chunkLen(i int) int64 {
	return min(c.e.ChunkSize, c.e.Size-int64(i)*c.e.ChunkSize)
}

// chunk returns the verified bytes of chunk i, from the cache or read and
// hashed now; concurrent readers of one chunk wait for a single load.
func (c *ChunkReader) chunk(i int) ([]byte, error) {
	for {
		c.mu.Lock()
		if b, ok := c.cache[i]; ok {
			c.touch(i)
			c.readAhead(i + 1)
			c.mu.Unlock()
			return b, nil
		}
		if ch, ok := c.loading[i]; ok {
			c.mu.Unlock()
			<-ch
			continue // cached now, or failed: then this reader tries itself
		}
		ch := make(chan struct{})
		c.loading[i] = ch
		c.mu.Unlock()
		b, err := c.load(i)
		c.mu.Lock()
		c.loaded(i, ch, b, err)
		if err == nil {
			c.readAhead(i + 1)
		}
		c.mu.Unlock()
		return b, err
	}
}

// readAhead starts loading chunk n in the background unless it was
// checked already or is being loaded; c.mu is held. A reader that needed
// chunk n-1 will most likely need n next (an apply reads blobs in file
// order), and every chunk is hashed once anyway (Complete), so reading
// and hashing it now, while the caller decompresses, costs nothing extra
// and overlaps the medium's I/O (and, with more than one CPU, the
// hashing) with the apply. With room for one chunk only it would evict
// the chunk being read: no read-ahead then.
func (c *ChunkReader) readAhead(n int) {
	if n >= len(c.sums) || c.max < 2 || c.closed || c.checked[n] || c.loading[n] != nil {
		return
	}
	ch := make(chan struct{})
	c.loading[n] = ch
	c.ahead.Add(1)
	go func() {
		defer c.ahead.Done()
		b, err := c.load(n)
		c.mu.Lock()
		c.loaded(n, ch, b, err)
		c.mu.Unlock()
	}()
}

// loaded records the end of loading chunk i (announced on ch): cached if
// it matched; a failure is not kept, a reader that needs the chunk loads
// it again and gets the error itself. c.mu is held.
func (c *ChunkReader) loaded(i int, ch chan struct{}, b []byte, err error) {
	delete(c.loading, i)
	close(ch)
	if err != nil {
		return
	}
	c.checked[i] = true
	c.cache[i] = b
	c.lru = append(c.lru, i)
	if len(c.lru) > c.max {
		delete(c.cache, c.lru[0])
		c.lru = c.lru[1:]
	}
}

// touch marks cached chunk i as the most recently used; c.mu is held.
func (c *ChunkReader) touch(i int) {
	for k, j := range c.lru {
		if j == i {
			copy(c.lru[k:], c.lru[k+1:])
			c.lru[len(c.lru)-1] = i
			return
		}
	}
}

// load reads chunk i whole and checks it against its hash.
func (c *ChunkReader) load(i int) ([]byte, error) {
	start := int64(i) * c.e.ChunkSize
	b := make([]byte, c.chunkLen(i))
	if n, err := c.f.ReadAt(b, start); n < len(b) {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: %s ends at byte %d, the manifest says %d bytes", ErrSize, c.name, start+int64(n), c.e.Size)
		}
		return nil, fmt.Errorf("reading %s: %w", c.name, err)
	}
	c.mu.Lock()
	c.hashed += int64(len(b))
	c.mu.Unlock()
	if sha256.Sum256(b) != c.sums[i] {
		return nil, fmt.Errorf("%w: %s bytes %d-%d do not match the signed manifest's chunk hash (the file is damaged or was changed)", ErrChecksum, c.name, start, start+int64(len(b))-1)
	}
	return b, nil
}
