package lzx

import (
	"testing"

	"github.com/minint/minint/wim/internal/codectest"
)

func BenchmarkDecompressWimlibChunks(b *testing.B) {
	w := codectest.WimlibCapture(b, "LZX", 32768)
	d := NewDecompressor()
	codectest.BenchDecompress(b, w, d.Decompress)
}

func BenchmarkCompress(b *testing.B) {
	c := NewCompressor(32768)
	codectest.BenchCompress(b, 32768, c.Compress)
}
