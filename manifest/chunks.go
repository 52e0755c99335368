package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/minint/minint/internal/blockcache"
	"golang.org/x/sync/errgroup"
)

// ChunkReader reads a local file (a package image on the boot medium)
// through its entry's chunk hashes, so that the file can be used while it
// is being verified instead of after a pass of its own: the apply reads
// the image once, and hashes each byte once.
//
// Fail-closed argument. ReadAt returns bytes of a chunk only from a copy
// in memory whose hash matched the manifest's chunk hash; the file is
// never read twice for one handed-out byte, so a medium that changes
// under the reader cannot slip in other bytes. A chunk that does not match
// fails the read with ErrChecksum naming its byte range, before the
// caller sees any of it. Complete then hashes the chunks no read needed
// (a WIM's unused images, its integrity table): once it returns nil every
// chunk matched, and a file of the signed size whose every chunk matches
// the signed chunk list is the file the signer hashed (collisions of the
// chunk hash aside), so the whole-file SHA-256 would prove nothing more
// and is not computed again. The caller lets nothing after the apply run
// before Complete succeeded.
type ChunkReader struct {
	blocks *blockcache.Reader // chunks, each loaded and checked by load
	read   func(i int) ([]byte, error)
	f      *os.File
	name   string // the file's path, for errors
	e      *Entry
	sums   [][32]byte

	mu     sync.Mutex
	hashed int64
}

// OpenChunks opens the file at name, which must have e's size (ErrSize
// otherwise) and e must carry chunk hashes (ErrFormat otherwise).
// cacheBytes bounds the verified chunks kept in memory (at least one): a
// chunk read again after it left the cache is read and hashed again.
// Reading a chunk reads and hashes the next one in the background
// (package blockcache).
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
	c := &ChunkReader{f: f, name: name, e: e, sums: e.ChunkSums()}
	c.read = blockcache.ReaderAt(f, e.Size, e.ChunkSize)
	c.blocks = blockcache.New(e.Size, blockcache.Options{BlockSize: e.ChunkSize, CacheBytes: cacheBytes, Load: c.load})
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
	c.blocks.Close()
	return c.f.Close()
}

// ReadAt implements io.ReaderAt with verified bytes only (see
// ChunkReader). Safe for concurrent use.
func (c *ChunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", c.name)
	}
	return c.blocks.ReadAt(p, off) // load's errors name the file
}

// Complete checks every chunk no read has checked yet, as many at once as
// there are CPUs (on a CPU without SHA instructions hashing is what a
// check costs; nothing reads these chunks after, so they bypass the
// cache). nil means the whole file matches the manifest (see
// ChunkReader); progress, if not nil, is called with the bytes checked and
// the file's size.
func (c *ChunkReader) Complete(ctx context.Context, progress func(done, total int64)) error {
	var mu sync.Mutex
	var done int64
	count := func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		done += n
		if progress != nil {
			progress(done, c.e.Size)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range c.sums {
		if gctx.Err() != nil {
			break
		}
		if c.blocks.Seen(i) {
			count(c.blocks.BlockLen(i))
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if _, err := c.load(i); err != nil {
				return err
			}
			count(c.blocks.BlockLen(i))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// VerifyChunks checks every chunk of the file at p against e's chunk
// hashes (ErrFormat if it has none): nil means the file is the one the
// signer hashed (see ChunkReader), with the work spread over every CPU,
// where one whole-file SHA-256 runs on one.
func VerifyChunks(ctx context.Context, p string, e *Entry, progress func(done, total int64)) error {
	c, err := OpenChunks(p, e, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Complete(ctx, progress)
}

// Check verifies the file at p as the PE does before using it: by its
// chunk hashes when e has them (VerifyChunks), else by its whole-file
// SHA-256 (VerifyFile).
func Check(ctx context.Context, p string, e *Entry, progress func(done, total int64)) error {
	if e.ChunkSize > 0 && len(e.Chunks) > 0 {
		return VerifyChunks(ctx, p, e, progress)
	}
	return VerifyFile(p, e, progress)
}

// load reads chunk i whole and checks it against its hash.
func (c *ChunkReader) load(i int) ([]byte, error) {
	b, err := c.read(i)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: %s is shorter than the manifest's %d bytes (%v)", ErrSize, c.name, c.e.Size, err)
	} else if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.name, err)
	}
	c.mu.Lock()
	c.hashed += int64(len(b))
	c.mu.Unlock()
	if c.e.SumChunk(b) != c.sums[i] {
		start := int64(i) * c.e.ChunkSize
		return nil, fmt.Errorf("%w: %s bytes %d-%d do not match the signed manifest's chunk hash (the file is damaged or was changed)", ErrChecksum, c.name, start, start+int64(len(b))-1)
	}
	return b, nil
}
