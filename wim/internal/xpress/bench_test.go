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
