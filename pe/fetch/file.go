package fetch

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/redact"
	"github.com/minint/minint/manifest"
)

// File is an io.ReaderAt over HTTP Range requests for applying an image
// without staging it. Every chunk is checked against the manifest's
// per-chunk hash before any of its bytes are returned (see the package
// doc), and recently used chunks are cached.
type File struct {
	ctx    context.Context
	c      *Client
	url    string
	shown  string // url redacted
	e      *manifest.Entry
	chunks [][32]byte

	mu    sync.Mutex
	cache map[int64]*list.Element
	lru   *list.List // of *chunk, most recent first
	max   int

	// Requests counts Range requests made (for tests and logs).
	Requests int
}

type chunk struct {
	n    int64
	data []byte
}

// OpenFile returns a File for url described by e, which must carry chunk
// hashes. cacheBytes bounds the chunk cache (at least one chunk is kept).
// It reads the first chunk (the WIM header, needed first anyway), so
// that a server that cannot serve Range requests (httpx.ErrNoRange), a
// missing file or one of the wrong size is reported here.
func (c *Client) OpenFile(ctx context.Context, url string, e *manifest.Entry, cacheBytes int64) (*File, error) {
	if e.ChunkSize <= 0 || len(e.Chunks) == 0 && e.Size > 0 {
		return nil, fmt.Errorf("%w: %s has no per-chunk hashes, so it cannot be applied straight from HTTP; stage it (or rebuild the package with chunk hashes)", manifest.ErrFormat, e.Path)
	}
	f := &File{ctx: ctx, c: c, url: url, shown: redact.URL(url), e: e, chunks: e.ChunkSums(), cache: map[int64]*list.Element{}, lru: list.New()}
	f.max = int(cacheBytes / e.ChunkSize)
	if f.max < 1 {
		f.max = 1
	}
	if e.Size > 0 {
		if _, err := f.chunk(0); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Size is the file's size from the manifest.
func (f *File) Size() int64 { return f.e.Size }

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", f.e.Path)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= f.e.Size {
			return n, io.EOF
		}
		ci := pos / f.e.ChunkSize
		data, err := f.chunk(ci)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[pos-ci*f.e.ChunkSize:])
	}
	return n, nil
}

func (f *File) chunk(i int64) ([]byte, error) {
	f.mu.Lock()
	if el, ok := f.cache[i]; ok {
		f.lru.MoveToFront(el)
		f.mu.Unlock()
		return el.Value.(*chunk).data, nil
	}
	f.mu.Unlock()
	start := i * f.e.ChunkSize
	end := min(start+f.e.ChunkSize, f.e.Size)
	var data []byte
	err := f.c.Retry(f.ctx, fmt.Sprintf("GET %s bytes %d-%d", f.shown, start, end-1), func() error {
		f.mu.Lock()
		f.Requests++
		f.mu.Unlock()
		resp, ranged, err := f.c.open(f.ctx, f.url, start, end, f.e.Size)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if !ranged {
			return fmt.Errorf("GET %s: %w", f.shown, httpx.ErrNoRange)
		}
		b := make([]byte, end-start)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			// A short read is retried; the chunk hash decides in the end.
			return fmt.Errorf("GET %s bytes %d-%d: %w", f.shown, start, end-1, err)
		}
		if f.e.SumChunk(b) != f.chunks[i] {
			return fmt.Errorf("%w: %s bytes %d-%d do not match the manifest's chunk hash", manifest.ErrChecksum, f.e.Path, start, end-1)
		}
		data = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cache[i]; !ok {
		f.cache[i] = f.lru.PushFront(&chunk{i, data})
		for f.lru.Len() > f.max {
			old := f.lru.Remove(f.lru.Back()).(*chunk)
			delete(f.cache, old.n)
		}
	}
	return data, nil
}
