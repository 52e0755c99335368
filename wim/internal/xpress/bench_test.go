package xpress

import (
	"fmt"
	"testing"

	"github.com/minint/minint/wim/internal/codectest"
)

func BenchmarkDecompressWimlibChunks(b *testing.B) {
	w := codectest.WimlibCapture(b, "XPRESS", 32768)
	d := NewDecompressor()
	codectest.BenchDecompress(b, w, d.Decompress)
}

func BenchmarkCompress(b *testing.B) {
	c := NewCompressor(32768)
	codectest.BenchCompress(b, 32768, c.Compress)
}

// BenchmarkVsWimlib reports CPU-time speed and output size relative to
// wimlib-imagex on the same corpus, measured in the same run.
func BenchmarkVsWimlib(b *testing.B) {
	c := NewCompressor(32768)
	d := NewDecompressor()
	codectest.BenchVsWimlib(b, "XPRESS", codectest.Codec{Compress: c.Compress, Decompress: d.Decompress})
}

// BenchmarkDecompressSmallChunks measures chunks of small files, where the
// per-chunk work (reading and tabulating the Huffman codes) dominates.
func BenchmarkDecompressSmallChunks(b *testing.B) {
	corpus := codectest.Corpus(b)
	for _, n := range []int{1024, 4096, 32768} {
		src := corpus[len(corpus)-n:]
		comp := make([]byte, n)
		m := NewCompressor(32768).Compress(comp, src)
		if m == 0 {
			b.Fatalf("%d bytes of Go source did not compress", n)
		}
		d := NewDecompressor()
		out := make([]byte, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for range b.N {
				if err := d.Decompress(out, comp[:m]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
