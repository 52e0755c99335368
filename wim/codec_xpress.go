package wim

import "github.com/minint/minint/wim/internal/xpress"

func init() {
	registerCodec(CompressionXPRESS, func(int) (decompressor, error) {
		return xpress.NewDecompressor(), nil
	}, func(maxChunk int) compressor {
		return xpress.NewCompressor(maxChunk)
	})
}
