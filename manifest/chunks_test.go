package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// TestChunkHashVectors: the two chunk hashes give the published digests
// (BLAKE3's from its reference implementation), whole and written in
// pieces, also across BLAKE3's 1 KiB chunks and the widths its vector
// code takes at once.
func TestChunkHashVectors(t *testing.T) {
	for _, c := range []struct{ hash, in, want string }{
		{ChunkSHA256, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{ChunkSHA256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{ChunkBLAKE3, "", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{ChunkBLAKE3, "abc", "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"},
	} {
		e := &Entry{ChunkHash: c.hash}
		if c.hash == ChunkSHA256 {
			e.ChunkHash = "" // how a manifest spells it
		}
		if s := e.SumChunk([]byte(c.in)); hex.EncodeToString(s[:]) != c.want {
			t.Errorf("%s(%q) = %x, want %s", c.hash, c.in, s, c.want)
		}
	}
	data := make([]byte, 5<<20+1234)
	for i := range data {
		data[i] = byte(i % 251)
	}
	for _, name := range []string{"", ChunkBLAKE3} {
		e := &Entry{ChunkHash: name}
		for _, n := range []int{1023, 1024, 1025, 16 << 10, 100000, len(data)} {
			h := e.NewChunkHash()
			for off := 0; off < n; off += 7777 {
				h.Write(data[off:min(off+7777, n)])
			}
			if s := e.SumChunk(data[:n]); !bytes.Equal(h.Sum(nil), s[:]) {
				t.Errorf("%s of %d bytes: in pieces %x, whole %x", e.ChunkHashName(), n, h.Sum(nil), s)
			}
		}
	}
	if (&Entry{}).SumChunk(data) == (&Entry{ChunkHash: ChunkBLAKE3}).SumChunk(data) {
		t.Error("SHA-256 and BLAKE3 agree")
	}
}

// TestBuildChunkHash: Build hashes chunks with BLAKE3 unless told SHA-256,
// which it leaves unnamed for older PEs; the reader checks the hash the
// entry names, so a list read with the other one matches nothing.
func TestBuildChunkHash(t *testing.T) {
	p, e, data := chunked(t, 200000)
	dir := filepath.Dir(p)
	old, _, err := Build(dir, []string{"image.wim"}, BuildOptions{ChunkSize: 64 << 10, ChunkHash: ChunkSHA256})
	if err != nil {
		t.Fatal(err)
	}
	o := &old.Files[0]
	if e.ChunkHash != ChunkBLAKE3 || o.ChunkHash != "" {
		t.Fatalf("chunk_hash %q and %q, want blake3 and none", e.ChunkHash, o.ChunkHash)
	}
	first := data[:64<<10]
	if b3, s2 := (&Entry{ChunkHash: ChunkBLAKE3}).SumChunk(first), sha256.Sum256(first); e.Chunks[0] != hex.EncodeToString(b3[:]) || o.Chunks[0] != hex.EncodeToString(s2[:]) {
		t.Errorf("first chunk hashes %s and %s", e.Chunks[0], o.Chunks[0])
	}
	for _, x := range []*Entry{e, o} {
		if err := VerifyChunks(context.Background(), p, x, nil); err != nil {
			t.Errorf("%s: %v", x.ChunkHashName(), err)
		}
		swapped := *x
		swapped.ChunkHash = map[string]string{"": ChunkBLAKE3, ChunkBLAKE3: ""}[x.ChunkHash]
		if err := VerifyChunks(context.Background(), p, &swapped, nil); !errors.Is(err, ErrChecksum) {
			t.Errorf("%s chunks checked as %s: %v", x.ChunkHashName(), swapped.ChunkHashName(), err)
		}
	}
	if _, _, err := Build(dir, []string{"image.wim"}, BuildOptions{ChunkHash: "md5"}); err == nil || !strings.Contains(err.Error(), `chunk hash "md5"`) {
		t.Errorf("Build with md5: %v", err)
	}
}
