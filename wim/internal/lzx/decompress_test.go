package lzx

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/minint/minint/wim/internal/codectest"
)

// TestDecompressWimlib decompresses every chunk of a WIM written by
// wimlib-imagex and checks each blob's SHA-1 against wimlib's blob table.
func TestDecompressWimlib(t *testing.T) {
	for _, cs := range []int{32768, 65536, 1 << 20} {
		w := codectest.WimlibCapture(t, "LZX", cs)
		d, err := NewDecompressorChunkSize(cs)
		if err != nil {
			t.Fatal(err)
		}
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

// TestDecompressWimlibExact runs the wimlib interop check with only the
// exact (Reader-driven) decoding loop.
func TestDecompressWimlibExact(t *testing.T) {
	exactOnly = true
	defer func() { exactOnly = false }()
	TestDecompressWimlib(t)
}

func TestDecompressRejects(t *testing.T) {
	d := NewDecompressor()
	dst := make([]byte, 100)
	for _, tc := range []struct {
		name, want string
		src        []byte
	}{
		{"empty input", "block type 0", nil},
		// Block type 0 in the top three bits of the first unit.
		{"bad block type", "block type 0", []byte{0x00, 0x00, 0, 0}},
		// Uncompressed block (type 3, default size) bigger than dst.
		{"block too large", "block size 32768", []byte{0x00, 0x70, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}},
		// Uncompressed block, size 100, R0 = 0.
		{"zero recent offset", "recent offset 0", []byte{0x00, 0x60, 0x40, 0x06, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}},
	} {
		err := d.Decompress(dst, tc.src)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrCorrupt mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestWindowOrder(t *testing.T) {
	for _, tc := range []struct{ size, order, mainSyms int }{
		{1, 15, 256 + 30*8}, {32768, 15, 256 + 30*8}, {32769, 16, 256 + 32*8},
		{1 << 20, 20, 256 + 42*8}, {1 << 21, 21, 256 + 50*8}, {1<<21 + 1, 0, 0},
	} {
		o := windowOrder(tc.size)
		if int(o) != tc.order {
			t.Errorf("windowOrder(%d) = %d, want %d", tc.size, o, tc.order)
		}
		if o != 0 && numMainSyms(o) != tc.mainSyms {
			t.Errorf("numMainSyms(%d) = %d, want %d", o, numMainSyms(o), tc.mainSyms)
		}
	}
}

// FuzzDecompress checks that no input makes the decompressor panic or
// write outside dst, and that the fast and exact decoding loops agree.
func FuzzDecompress(f *testing.F) {
	f.Add([]byte{}, uint16(10))
	d := NewDecompressor()
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		// Guard bytes after dst catch writes past the end.
		buf := make([]byte, int(size)+16)
		for i := range buf {
			buf[i] = 0xA5
		}
		err := d.Decompress(buf[:size:size], src)
		for _, b := range buf[size:] {
			if b != 0xA5 {
				t.Fatal("wrote past dst")
			}
		}
		exactOnly = true
		defer func() { exactOnly = false }()
		ref := make([]byte, size)
		refErr := d.Decompress(ref, src)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("fast loop error %v, exact loop error %v", err, refErr)
		}
		if err == nil && !bytes.Equal(ref, buf[:size]) {
			t.Fatal("fast and exact loops decode differently")
		}
	})
}

// TestDecompressCorruptedChunks flips bits in wimlib's compressed chunks,
// which keeps the codes mostly valid and so reaches deep into the decoding
// loops (random fuzz inputs rarely get past the code lengths), and checks
// that the fast and exact loops agree and that nothing panics or writes
// past dst.
func TestDecompressCorruptedChunks(t *testing.T) {
	w := codectest.WimlibCapture(t, "LZX", 32768)
	d := NewDecompressor()
	rng := rand.New(rand.NewPCG(1, 2))
	var tried, failed int
	for range 4 {
		for _, b := range w.Blobs {
			for _, c := range b.Chunks {
				if c.Raw || len(c.Stored) < 64 {
					continue
				}
				tried++
				src := bytes.Clone(c.Stored)
				for range 1 + rng.IntN(3) {
					// Past the block header and code lengths, mostly.
					i := len(src)/4 + rng.IntN(len(src)-len(src)/4)
					src[i] ^= 1 << rng.IntN(8)
				}
				buf := bytes.Repeat([]byte{0xA5}, c.Size+16)
				err := d.Decompress(buf[:c.Size:c.Size], src)
				for _, x := range buf[c.Size:] {
					if x != 0xA5 {
						t.Fatal("wrote past dst")
					}
				}
				exactOnly = true
				ref := make([]byte, c.Size)
				refErr := d.Decompress(ref, src)
				exactOnly = false
				if (err == nil) != (refErr == nil) {
					t.Fatalf("fast loop error %v, exact loop error %v", err, refErr)
				}
				if err != nil {
					failed++
				} else if !bytes.Equal(ref, buf[:c.Size]) {
					t.Fatal("fast and exact loops decode differently")
				}
			}
		}
	}
	t.Logf("%d corrupted chunks, %d rejected", tried, failed)
}
