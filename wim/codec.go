package wim

import "sync"

// decompressor and compressor are the chunk codecs of wim/internal/xpress and
// wim/internal/lzx. They are looked up through registries filled by
// codec_*.go so that the container code does not care which codecs exist.
type decompressor interface {
	// Decompress fills dst (exactly the chunk's uncompressed size) from src.
	Decompress(dst, src []byte) error
}

type compressor interface {
	// Compress returns the compressed size written to dst, or 0 when the
	// result would not be smaller than src (the chunk is then stored raw).
	Compress(dst, src []byte) int
}

var (
	codecMu          sync.RWMutex
	decompressorFors = map[Compression]func() decompressor{}
	compressorFors   = map[Compression]func(maxChunk int) compressor{}
)

func registerCodec(c Compression, d func() decompressor, e func(maxChunk int) compressor) {
	codecMu.Lock()
	defer codecMu.Unlock()
	if d != nil {
		decompressorFors[c] = d
	}
	if e != nil {
		compressorFors[c] = e
	}
}

func newDecompressor(c Compression) (decompressor, error) {
	codecMu.RLock()
	f := decompressorFors[c]
	codecMu.RUnlock()
	if f == nil {
		return nil, unsupportedErr("%s decompression", c)
	}
	return f(), nil
}

func newCompressor(c Compression, maxChunk int) (compressor, error) {
	codecMu.RLock()
	f := compressorFors[c]
	codecMu.RUnlock()
	if f == nil {
		return nil, unsupportedErr("%s compression", c)
	}
	return f(maxChunk), nil
}

// decompressorPool keeps per-format decompressors; they hold large tables
// and are not safe for concurrent use.
type decompressorPool struct {
	pools [4]sync.Pool
}

func (p *decompressorPool) get(c Compression) (decompressor, error) {
	if int(c) < len(p.pools) {
		if d, ok := p.pools[c].Get().(decompressor); ok {
			return d, nil
		}
	}
	return newDecompressor(c)
}

func (p *decompressorPool) put(c Compression, d decompressor) {
	if int(c) < len(p.pools) {
		p.pools[c].Put(d)
	}
}

var decompressors decompressorPool
