package xpress

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
	d := NewDecompressor()
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
	if n := roundTrip(t, c, d, make([]byte, 65536)); n > 400 {
		t.Errorf("64 KiB of zeros compressed to %d bytes", n)
	}
	// Random slices of real data, at every size class.
	for range 300 {
		size := 1 + rng.IntN(65536)
		off := rng.IntN(len(corpus) - size)
		roundTrip(t, c, d, corpus[off:off+size])
	}
}

// TestExpandingChunk feeds chunks that pass the incompressibility probe
// (a repetitive start) and then expand: the whole bitstream is written to
// the compressor's own buffer before its size is checked, so the buffer
// must hold the worst case, and the result must be "store raw" (0), or a
// correct round trip when the chunk still shrinks.
func TestExpandingChunk(t *testing.T) {
	c := NewCompressor(65536)
	d := NewDecompressor()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{8192, 32768, 65536} {
		for _, alphabet := range []int{256, 200, 17} {
			// 128 repetitive bytes are enough matches to pass the
			// probe; uniformly random bytes then cost 8 bits each plus
			// the code table: the chunk expands.
			data := make([]byte, size)
			for i := range data {
				if i < 128 {
					data[i] = byte(i % 7)
				} else {
					data[i] = byte(rng.IntN(alphabet))
				}
			}
			n := roundTrip(t, c, d, data)
			if alphabet == 256 && n != size {
				t.Errorf("%d bytes, random after 128: compressed to %d, want stored raw", size, n)
			}
		}
	}
	// A full-size chunk with Huffman lengths at their 15-bit limit for
	// many symbols: exponentially skewed byte frequencies, no matches.
	data := make([]byte, 0, 65536)
	for b := 0; len(data) < 65536; b = (b + 1) % 256 {
		n := 1
		if b < 16 {
			n = 1 << (15 - b)
		}
		for range n {
			data = append(data, byte(b), byte(rng.Uint32()))
		}
	}
	roundTrip(t, c, d, data[:65536])
}

// TestCompareWimlib recompresses the blobs of a wimlib-captured WIM and
// reports the size relative to wimlib's own XPRESS output.
func TestCompareWimlib(t *testing.T) {
	w := codectest.WimlibCapture(t, "XPRESS", 32768)
	c := NewCompressor(w.ChunkSize)
	d := NewDecompressor()
	theirs, ours := codectest.CompareWithWimlib(t, w, codectest.Codec{Compress: c.Compress, Decompress: d.Decompress})
	t.Logf("XPRESS chunk bytes: wimlib %d, ours %d, ratio %.4f", theirs, ours, float64(ours)/float64(theirs))
	if float64(ours) > 1.05*float64(theirs) {
		t.Errorf("output %.3fx wimlib's", float64(ours)/float64(theirs))
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("abcabcabcabcabcabcabcabcabcabc"))
	f.Add(bytes.Repeat([]byte{0xE8, 0, 0, 0, 0, 1}, 100))
	c := NewCompressor(65536)
	d := NewDecompressor()
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

func TestCompressInPlace(t *testing.T) {
	codectest.InPlace(t, 32768, NewCompressor(32768).Compress)
}
