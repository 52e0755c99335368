package xpress

import (
	"crypto/sha1"
	"errors"
	"testing"

	"github.com/minint/minint/wim/internal/codectest"
)

// TestDecompressWimlib decompresses every chunk of a WIM written by
// wimlib-imagex and checks each blob's SHA-1 against wimlib's blob table.
func TestDecompressWimlib(t *testing.T) {
	for _, cs := range []int{32768, 65536} {
		w := codectest.WimlibCapture(t, "XPRESS", cs)
		d := NewDecompressor()
		buf := make([]byte, w.ChunkSize)
		var compressedChunks int
		for _, b := range w.Blobs {
			h := sha1.New()
			for i, c := range b.Chunks {
				if c.Raw {
					h.Write(c.Stored)
					continue
				}
				compressedChunks++
				out := buf[:c.Size]
				if err := d.Decompress(out, c.Stored); err != nil {
					t.Fatalf("chunk size %d: blob %x chunk %d: %v", cs, b.SHA1, i, err)
				}
				h.Write(out)
			}
			if got := h.Sum(nil); string(got) != string(b.SHA1[:]) {
				t.Fatalf("chunk size %d: blob %x: decompressed SHA-1 %x", cs, b.SHA1, got)
			}
		}
		if compressedChunks < 100 {
			t.Fatalf("only %d compressed chunks in wimlib's WIM; the test proves little", compressedChunks)
		}
		t.Logf("chunk size %d: %d blobs, %d compressed chunks verified", cs, len(w.Blobs), compressedChunks)
	}
}

func TestDecompressRejects(t *testing.T) {
	d := NewDecompressor()
	dst := make([]byte, 100)
	if err := d.Decompress(dst, make([]byte, 255)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short header: got %v", err)
	}
	// All lengths 1: oversubscribed code.
	hdr := make([]byte, 300)
	for i := range 256 {
		hdr[i] = 0x11
	}
	if err := d.Decompress(dst, hdr); !errors.Is(err, ErrCorrupt) {
		t.Errorf("oversubscribed code: got %v", err)
	}
	// Literal 0 and symbol 256 (match, offset 1, length 3) get 1-bit
	// codewords 0 and 1; the first bit is 1, so the stream starts with a
	// match that reaches before the start of the data.
	src := make([]byte, 260)
	src[0] = 0x01   // lens[0] = 1
	src[128] = 0x01 // lens[256] = 1
	src[257] = 0x80 // first coding unit 0x8000
	if err := d.Decompress(dst, src); !errors.Is(err, ErrCorrupt) {
		t.Errorf("match before data: got %v", err)
	}
}

func FuzzDecompress(f *testing.F) {
	f.Add([]byte{}, uint16(10))
	d := NewDecompressor()
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		// Guard bytes after dst catch writes past the end.
		buf := make([]byte, int(size)+16)
		for i := range buf {
			buf[i] = 0xA5
		}
		_ = d.Decompress(buf[:size:size], src)
		for _, b := range buf[size:] {
			if b != 0xA5 {
				t.Fatal("wrote past dst")
			}
		}
	})
}
