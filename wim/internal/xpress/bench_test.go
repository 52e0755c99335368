package xpress

import (
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
	codectest.BenchSmallChunks(b, codectest.Codec{Compress: NewCompressor(32768).Compress, Decompress: NewDecompressor().Decompress})
}
