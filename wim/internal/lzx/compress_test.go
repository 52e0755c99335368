package lzx

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/minint/minint/wim/internal/codectest"
)

func roundTrip(t testing.TB, c *Compressor, d *Decompressor, data []byte) int {
	comp := make([]byte, len(data))
	n := c.Compress(comp, data)
	if n == 0 {
		return len(data)
	}
	if n >= len(data) {
		t.Fatalf("Compress returned %d for %d bytes", n, len(data))
	}
	out := make([]byte, len(data))
	if err := d.Decompress(out, comp[:n]); err != nil {
		t.Fatalf("decompress: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("round trip mismatch for %d bytes", len(data))
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	c := NewCompressor(65536)
	d, _ := NewDecompressorChunkSize(65536)
	rng := rand.New(rand.NewPCG(3, 4))
	corpus := codectest.Corpus(t)
	cases := map[string][]byte{
		"zeros":      make([]byte, 65536),
		"one byte":   {7},
		"short text": []byte("hello hello hello hello hello hello hello hello"),
	}
	runs := make([]byte, 40000)
	for i := 0; i < len(runs); {
		n := 1 + rng.IntN(300)
		b := byte(rng.IntN(3))
		for ; n > 0 && i < len(runs); n-- {
			runs[i] = b
			i++
		}
	}
	cases["runs"] = runs
	random := make([]byte, 32768)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	cases["random"] = random
	for name, data := range cases {
		n := roundTrip(t, c, d, data)
		t.Logf("%s: %d -> %d", name, len(data), n)
	}
	if n := roundTrip(t, c, d, make([]byte, 65536)); n > 200 {
		t.Errorf("64 KiB of zeros compressed to %d bytes", n)
	}
	// Random slices of real data, at every size class.
	for range 300 {
		size := 1 + rng.IntN(65536)
		off := rng.IntN(len(corpus) - size)
		roundTrip(t, c, d, corpus[off:off+size])
	}
}

// TestCompareWimlib recompresses the blobs of a wimlib-captured WIM and
// reports the size relative to wimlib's own XPRESS output.
func TestCompareWimlib(t *testing.T) {
	for _, cs := range []int{32768, 1 << 20} {
		w := codectest.WimlibCapture(t, "LZX", cs)
		c := NewCompressor(w.ChunkSize)
		d, _ := NewDecompressorChunkSize(w.ChunkSize)
		theirs, ours := codectest.CompareWithWimlib(t, w, codectest.Codec{Compress: c.Compress, Decompress: d.Decompress})
		ratio := float64(ours) / float64(theirs)
		t.Logf("LZX chunk size %d: chunk bytes wimlib %d, ours %d, ratio %.4f", cs, theirs, ours, ratio)
		// The target is the default chunk size; larger chunks get a
		// single block (no block splitting yet), so only log them.
		if cs == 32768 && ratio > 1.03 {
			t.Errorf("output %.3fx wimlib's", ratio)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("abcabcabcabcabcabcabcabcabcabc"))
	f.Add(bytes.Repeat([]byte{0xE8, 0, 0, 0, 0, 1}, 100))
	c := NewCompressor(65536)
	d, _ := NewDecompressorChunkSize(65536)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 65536 {
			data = data[:65536]
		}
		// Repeat the input to make it compressible.
		data = bytes.Repeat(data, 1+300/(len(data)+1))
		if len(data) > 65536 {
			data = data[:65536]
		}
		roundTrip(t, c, d, data)
	})
}

// TestRoundTripChunkSizes covers the window sizes other than 32 KiB,
// including a short last chunk, which must use the resource's window.
func TestRoundTripChunkSizes(t *testing.T) {
	corpus := codectest.Corpus(t)
	for _, cs := range []int{1 << 16, 100000, 1 << 21} {
		c := NewCompressor(cs)
		d, err := NewDecompressorChunkSize(cs)
		if err != nil {
			t.Fatal(err)
		}
		data := corpus[:min(len(corpus), 2*cs+cs/3)]
		var total int
		for _, ch := range codectest.Chunks(data, cs) {
			total += roundTrip(t, c, d, ch)
		}
		t.Logf("chunk size %d: %d -> %d", cs, len(data), total)
	}
}

func TestOffsetSlot(t *testing.T) {
	for slot := numRecentOffsets; slot < maxOffsetSlots; slot++ {
		lo := uint32(offsetSlotBase[slot])
		hi := lo + 1<<extraOffsetBits[slot] - 1
		for _, off := range []uint32{lo, hi} {
			if got := offsetSlot(off); got != uint32(slot) {
				t.Errorf("offsetSlot(%d) = %d, want %d", off, got, slot)
			}
		}
	}
}

func TestCompressInPlace(t *testing.T) {
	codectest.InPlace(t, 32768, NewCompressor(32768).Compress)
}
