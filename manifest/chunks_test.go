package manifest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// chunked makes a package of size bytes (64 KiB chunks) and returns the
// image's path, its entry and its bytes.
func chunked(t *testing.T, size int) (string, *Entry, []byte) {
	t.Helper()
	dir, m, _, _ := pkg(t, size)
	p := filepath.Join(dir, "image.wim")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, &m.Files[0], data
}

// flip changes the byte at off of the file at p.
func flip(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestChunkReader: readers in parallel, in any order, get the file's
// bytes; with room for every chunk each byte is hashed exactly once, and
// Complete then has nothing left to hash.
func TestChunkReader(t *testing.T) {
	p, e, data := chunked(t, 1000000) // 15 full chunks and a short one
	c, err := OpenChunks(p, e, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Overlapping reads that cross chunk borders, from the end
			// backwards and from the start forwards.
			for k := 0; k < 40; k++ {
				off := int64((k*37000 + w*5000) % len(data))
				if w%2 == 1 {
					off = int64(len(data)) - 1 - off
				}
				buf := make([]byte, 100000)
				n, err := c.ReadAt(buf, off)
				if err != nil && err != io.EOF || err == io.EOF && off+int64(n) != int64(len(data)) {
					t.Errorf("ReadAt(%d): %d, %v", off, n, err)
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d): wrong bytes", off)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Complete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if c.Hashed() != int64(len(data)) {
		t.Errorf("hashed %d bytes of a %d-byte file: each byte once", c.Hashed(), len(data))
	}
}

// TestChunkReaderTampered: a changed byte fails the read of its chunk with
// ErrChecksum naming the chunk's range, and a read from the start returns
// only the bytes of the good chunks before it.
func TestChunkReaderTampered(t *testing.T) {
	p, e, data := chunked(t, 1000000)
	flip(t, p, 300000) // chunk 4: bytes 262144-327679
	c, err := OpenChunks(p, e, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, len(data))
	n, err := c.ReadAt(buf, 0)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "bytes 262144-327679") || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v", err)
	}
	if n != 262144 || !bytes.Equal(buf[:n], data[:n]) {
		t.Errorf("returned %d bytes before the bad chunk, want the 262144 good ones", n)
	}
	if _, err := c.ReadAt(buf[:10], 300000); !errors.Is(err, ErrChecksum) {
		t.Errorf("second read of the bad chunk: %v", err)
	}
	if err := c.Complete(context.Background(), nil); !errors.Is(err, ErrChecksum) {
		t.Errorf("Complete: %v", err)
	}
}

// TestChunkReaderComplete: a changed chunk that no read needed is found by
// Complete, which is what gates the steps after an apply.
func TestChunkReaderComplete(t *testing.T) {
	p, e, data := chunked(t, 1000000)
	flip(t, p, int64(len(data))-1) // the last, short chunk
	c, err := OpenChunks(p, e, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 500000)
	if _, err := c.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	var last int64
	err = c.Complete(context.Background(), func(done, total int64) { last = done })
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "bytes 983040-999999") {
		t.Fatalf("Complete: %v", err)
	}
	// Chunks are checked several at once, and a failure stops those not
	// yet started: progress counts good chunks only, never the bad one.
	if last > 983040 || last%(64<<10) != 0 {
		t.Errorf("progress reached %d, want whole good chunks, at most 983040", last)
	}
}

// TestChunkReaderNoSecondRead: bytes handed out come from the copy that
// was hashed. A file changed after its chunk was verified gives the
// verified bytes while the chunk is cached, and an error, not the new
// bytes, once it has to be read again.
func TestChunkReaderNoSecondRead(t *testing.T) {
	p, e, data := chunked(t, 200000)
	c, err := OpenChunks(p, e, 64<<10) // one chunk
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 10)
	if _, err := c.ReadAt(b, 100); err != nil {
		t.Fatal(err)
	}
	flip(t, p, 105)
	if _, err := c.ReadAt(b, 100); err != nil || !bytes.Equal(b, data[100:110]) {
		t.Fatalf("cached chunk: %v, %x", err, b)
	}
	if _, err := c.ReadAt(b, 70000); err != nil { // evicts chunk 0
		t.Fatal(err)
	}
	if _, err := c.ReadAt(b, 100); !errors.Is(err, ErrChecksum) {
		t.Errorf("changed chunk read again: %v", err)
	}
	if c.Hashed() != 3*64<<10 {
		t.Errorf("hashed %d bytes, want 3 chunks' worth", c.Hashed())
	}
}

func TestChunkReaderRefuses(t *testing.T) {
	p, e, _ := chunked(t, 200000)
	long := *e
	long.Size++
	if _, err := OpenChunks(p, &long, 0); !errors.Is(err, ErrSize) {
		t.Errorf("wrong size: %v", err)
	}
	plain := *e
	plain.ChunkSize, plain.Chunks = 0, nil
	if _, err := OpenChunks(p, &plain, 0); !errors.Is(err, ErrFormat) {
		t.Errorf("no chunk hashes: %v", err)
	}
	// Shrunk after it was opened.
	c, err := OpenChunks(p, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	os.Truncate(p, 150000)
	if _, err := c.ReadAt(make([]byte, 10), 140000); !errors.Is(err, ErrSize) {
		t.Errorf("truncated: %v", err)
	}
}

// TestChunkReaderReadAhead: reading a chunk reads and hashes the next one
// too (Close waits for it), and a later read of it hashes nothing more.
func TestChunkReaderReadAhead(t *testing.T) {
	p, e, data := chunked(t, 1000000)
	c, err := OpenChunks(p, e, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer c.f.Close()
	b := make([]byte, 100)
	if _, err := c.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	c.blocks.Close() // waits for the read-ahead; none after it
	if c.Hashed() != 2*64<<10 {
		t.Errorf("hashed %d bytes after reading chunk 0, want chunks 0 and 1", c.Hashed())
	}
	if _, err := c.ReadAt(b, 70000); err != nil || !bytes.Equal(b, data[70000:70100]) {
		t.Fatalf("chunk 1: %v", err)
	}
	if c.Hashed() != 2*64<<10 {
		t.Errorf("hashed %d bytes after reading chunk 1 too, want only chunks 0 and 1", c.Hashed())
	}
}
