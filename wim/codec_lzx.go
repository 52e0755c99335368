package wim

import "github.com/minint/minint/wim/internal/lzx"

func init() {
	registerCodec(CompressionLZX, func(chunkSize int) (decompressor, error) {
		d, err := lzx.NewDecompressorChunkSize(chunkSize)
		if err != nil {
			return nil, unsupportedErr("LZX with chunk size %d: %v", chunkSize, err)
		}
		return d, nil
	}, func(maxChunk int) compressor {
		return lzx.NewCompressor(maxChunk)
	})
}
