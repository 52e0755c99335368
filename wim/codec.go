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
	// result would not be smaller than src (the chunk is then stored raw,
	// and dst is untouched). dst may be src.
	Compress(dst, src []byte) int
}

var (
	codecMu          sync.RWMutex
	decompressorFors = map[Compression]func(chunkSize int) (decompressor, error){}
	compressorFors   = map[Compression]func(maxChunk int) compressor{}
)

func registerCodec(c Compression, d func(chunkSize int) (decompressor, error), e func(maxChunk int) compressor) {
	codecMu.Lock()
	defer codecMu.Unlock()
	if d != nil {
		decompressorFors[c] = d
	}
	if e != nil {
		compressorFors[c] = e
	}
}

func newDecompressor(c Compression, chunkSize int) (decompressor, error) {
	codecMu.RLock()
	f := decompressorFors[c]
	codecMu.RUnlock()
	if f == nil {
		return nil, unsupportedErr("%s decompression", c)
	}
	return f(chunkSize)
}

// haveCompressor checks that c can be written without making a compressor,
// which holds up to megabytes of tables.
func haveCompressor(c Compression) error {
	codecMu.RLock()
	f := compressorFors[c]
	codecMu.RUnlock()
	if f == nil {
		return unsupportedErr("%s compression", c)
	}
	return nil
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

// decompressorPool keeps decompressors per format and chunk size; they hold
// large tables and are not safe for concurrent use.
type decompressorPool struct {
	pools sync.Map // poolKey -> *sync.Pool
}

type poolKey struct {
	c         Compression
	chunkSize int
}

func (p *decompressorPool) pool(c Compression, chunkSize int) *sync.Pool {
	k := poolKey{c, chunkSize}
	if v, ok := p.pools.Load(k); ok {
		return v.(*sync.Pool)
	}
	v, _ := p.pools.LoadOrStore(k, &sync.Pool{})
	return v.(*sync.Pool)
}

func (p *decompressorPool) get(c Compression, chunkSize int) (decompressor, error) {
	if d, ok := p.pool(c, chunkSize).Get().(decompressor); ok {
		return d, nil
	}
	return newDecompressor(c, chunkSize)
}

func (p *decompressorPool) put(c Compression, chunkSize int, d decompressor) {
	p.pool(c, chunkSize).Put(d)
}

var decompressors decompressorPool
