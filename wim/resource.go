package wim

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/minint/minint/wim/internal/ordered"
)

// part is one file of a (possibly split) WIM.
type part struct {
	r         io.ReaderAt
	size      int64
	hdr       *header
	comp      Compression
	chunkSize int
	name      string // file name when known, for error messages
}

// resource is a run of bytes in a part holding one blob (or the blob table,
// XML data, a metadata resource, the integrity table).
type resource struct {
	p  *part
	rh reshdr
}

func (p *part) checkResource(what string, rh reshdr) error {
	if rh.sizeInWim < 0 || rh.offset < 0 || rh.uncompSize < 0 {
		return formatErr("%s: negative size or offset", what)
	}
	end := rh.offset + rh.sizeInWim
	if end < rh.offset {
		return formatErr("%s: resource at %d+%d overflows", what, rh.offset, rh.sizeInWim)
	}
	if end > p.size {
		return incompleteErr("%s: resource at %d+%d is past the end of the file (%d bytes)", what, rh.offset, rh.sizeInWim, p.size)
	}
	if rh.offset < headerSize && rh.sizeInWim > 0 {
		return formatErr("%s: resource at offset %d overlaps the header", what, rh.offset)
	}
	if rh.flags&reshdrFlagCompressed == 0 {
		if rh.sizeInWim != rh.uncompSize {
			return formatErr("%s: uncompressed resource has stored size %d != size %d", what, rh.sizeInWim, rh.uncompSize)
		}
	} else if rh.uncompSize > 0 && rh.sizeInWim == 0 {
		return formatErr("%s: compressed resource of %d bytes stored in 0 bytes", what, rh.uncompSize)
	}
	return nil
}

// chunkTable returns the offset of each compressed chunk relative to the
// start of the chunk data, plus one final entry for the end.
func (res resource) chunkTable() (offs []int64, dataStart int64, err error) {
	return res.chunkTableFrom(res.p.r)
}

func (res resource) chunkTableFrom(r io.ReaderAt) (offs []int64, dataStart int64, err error) {
	p := res.p
	rh := res.rh
	cs := int64(p.chunkSize)
	n := (rh.uncompSize + cs - 1) / cs
	entSize := int64(4)
	if rh.uncompSize > 0xffffffff {
		entSize = 8
	}
	tableSize := (n - 1) * entSize
	if n == 0 {
		tableSize = 0
	}
	if tableSize > rh.sizeInWim || n > rh.sizeInWim {
		return nil, 0, formatErr("chunk table of %d chunks does not fit in %d bytes", n, rh.sizeInWim)
	}
	raw := make([]byte, tableSize)
	if _, err := r.ReadAt(raw, rh.offset); err != nil {
		return nil, 0, fmt.Errorf("wim: reading chunk table at %d: %w", rh.offset, noEOF(err))
	}
	offs = make([]int64, n+1)
	for i := int64(1); i < n; i++ {
		if entSize == 4 {
			offs[i] = int64(binary.LittleEndian.Uint32(raw[(i-1)*4:]))
		} else {
			offs[i] = int64(binary.LittleEndian.Uint64(raw[(i-1)*8:]))
		}
	}
	offs[n] = rh.sizeInWim - tableSize
	for i := int64(0); i < n; i++ {
		usize := cs
		if i == n-1 && rh.uncompSize%cs != 0 {
			usize = rh.uncompSize % cs
		}
		c := offs[i+1] - offs[i]
		if c <= 0 || c > usize {
			return nil, 0, formatErr("chunk %d of resource at %d has compressed size %d for %d bytes", i, rh.offset, c, usize)
		}
	}
	return offs, rh.offset + tableSize, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkIter streams a resource's uncompressed bytes chunk by chunk.
type chunkIter struct {
	res       resource
	offs      []int64
	dataStart int64
	next      int64 // next chunk index (compressed) or byte offset (raw)
	dec       decompressor
	cbuf      []byte
	ubuf      []byte
	src       io.ReaderAt // the part, or whole when set
	whole     []byte
}

const (
	wholeResourceMax = 1 << 20
	readWindow       = 1 << 20
)

// memReaderAt serves reads of [base, base+len(b)) of the file from b.
type memReaderAt struct {
	b    []byte
	base int64
}

func (m *memReaderAt) ReadAt(p []byte, off int64) (int, error) {
	off -= m.base
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, io.ErrUnexpectedEOF
	}
	return copy(p, m.b[off:]), nil
}

func (res resource) chunks() (*chunkIter, error) {
	it := &chunkIter{res: res, src: res.p.r}
	if res.rh.flags&reshdrFlagSolid != 0 {
		return nil, unsupportedErr("solid resource at offset %d", res.rh.offset)
	}
	if res.rh.flags&reshdrFlagCompressed != 0 {
		if res.p.comp == CompressionNone {
			return nil, formatErr("compressed resource at %d in a WIM without compression", res.rh.offset)
		}
		// Small resources (most files) are read with one call: one
		// pread, or one HTTP range request, instead of one per chunk.
		if res.rh.sizeInWim <= wholeResourceMax {
			it.whole = getBuf(int(res.rh.sizeInWim))
			if _, err := res.p.r.ReadAt(it.whole, res.rh.offset); err != nil {
				putBuf(it.whole)
				return nil, fmt.Errorf("wim: reading resource at %d: %w", res.rh.offset, noEOF(err))
			}
			it.src = &memReaderAt{b: it.whole, base: res.rh.offset}
		}
		offs, ds, err := res.chunkTableFrom(it.src)
		if err != nil {
			putBuf(it.whole)
			return nil, err
		}
		it.offs, it.dataStart = offs, ds
		it.ubuf = getBuf(res.p.chunkSize)
		it.cbuf = getBuf(res.p.chunkSize)
	} else {
		it.ubuf = getBuf(int(min(readWindow, res.rh.uncompSize)))
	}
	return it, nil
}

// next returns the next piece of uncompressed data (valid until the next
// call) or io.EOF.
func (it *chunkIter) nextChunk() ([]byte, error) {
	rh := it.res.rh
	p := it.res.p
	if rh.flags&reshdrFlagCompressed == 0 {
		if it.next >= rh.uncompSize {
			return nil, io.EOF
		}
		n := min(int64(len(it.ubuf)), rh.uncompSize-it.next)
		b := it.ubuf[:n]
		if _, err := p.r.ReadAt(b, rh.offset+it.next); err != nil {
			return nil, fmt.Errorf("wim: reading resource at %d: %w", rh.offset+it.next, noEOF(err))
		}
		it.next += n
		return b, nil
	}
	i := it.next
	if i >= int64(len(it.offs)-1) {
		return nil, io.EOF
	}
	it.next++
	cs := int64(p.chunkSize)
	usize := cs
	if i == int64(len(it.offs)-2) && rh.uncompSize%cs != 0 {
		usize = rh.uncompSize % cs
	}
	csize := it.offs[i+1] - it.offs[i]
	if csize == usize {
		b := it.ubuf[:usize]
		if _, err := it.src.ReadAt(b, it.dataStart+it.offs[i]); err != nil {
			return nil, fmt.Errorf("wim: reading chunk at %d: %w", it.dataStart+it.offs[i], noEOF(err))
		}
		return b, nil
	}
	c, err := it.compressed(it.dataStart+it.offs[i], csize)
	if err != nil {
		return nil, err
	}
	if it.dec == nil {
		d, err := decompressors.get(p.comp, p.chunkSize)
		if err != nil {
			return nil, err
		}
		it.dec = d
	}
	b := it.ubuf[:usize]
	if err := it.dec.Decompress(b, c); err != nil {
		return nil, fmt.Errorf("%w: chunk %d of resource at offset %d: %v", ErrFormat, i, rh.offset, err)
	}
	return b, nil
}

// compressed returns the n compressed bytes at off: a slice of the whole
// resource when it was read at once (copying it out cost 1% of an apply),
// else read into it.cbuf.
func (it *chunkIter) compressed(off, n int64) ([]byte, error) {
	if m, ok := it.src.(*memReaderAt); ok {
		if o := off - m.base; o >= 0 && o+n <= int64(len(m.b)) {
			return m.b[o : o+n : o+n], nil
		}
	}
	c := it.cbuf[:n]
	if _, err := it.src.ReadAt(c, off); err != nil {
		return nil, fmt.Errorf("wim: reading chunk at %d: %w", off, noEOF(err))
	}
	return c, nil
}

func (it *chunkIter) close() {
	putBuf(it.ubuf)
	putBuf(it.cbuf)
	putBuf(it.whole)
	it.ubuf, it.cbuf, it.whole = nil, nil, nil
	if it.dec != nil {
		decompressors.put(it.res.p.comp, it.res.p.chunkSize, it.dec)
		it.dec = nil
	}
}

// readAll reads a whole resource into memory; limit guards against absurd
// sizes from corrupt headers.
func (res resource) readAll(limit int64) ([]byte, error) {
	// Like wimlib, refuse sizes that are implausible (no real table or
	// metadata resource expands more than 512 times).
	if res.rh.uncompSize > limit || res.rh.uncompSize/512 > res.rh.sizeInWim {
		return nil, formatErr("resource at %d claims %d bytes (limit %d)", res.rh.offset, res.rh.uncompSize, limit)
	}
	it, err := res.chunks()
	if err != nil {
		return nil, err
	}
	defer it.close()
	// Grow with the data actually produced: a corrupt size must not
	// allocate up front.
	out := make([]byte, 0, min(res.rh.uncompSize, 16<<20))
	for {
		b, err := it.nextChunk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// blobReader is the io.ReadCloser returned by File.Open: it streams a blob
// and fails with ErrChecksum at EOF if the data does not match its SHA-1.
type blobReader struct {
	it   *chunkIter
	buf  []byte
	h    hash.Hash
	want [20]byte
	name string
	err  error
}

func newBlobReader(b *blob, name string) (io.ReadCloser, error) {
	if b == nil {
		return io.NopCloser(eofReader{}), nil
	}
	if b.res.p == nil {
		return nil, fmt.Errorf("%w: %s: blob %x is not in this WIM (missing split part?)", ErrNotFound, name, b.hash)
	}
	if b.solid {
		return nil, unsupportedErr("%s: data is in a solid resource", name)
	}
	it, err := b.res.chunks()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &blobReader{it: it, h: sha1.New(), want: b.hash, name: name}, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func (r *blobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.buf) == 0 {
		b, err := r.it.nextChunk()
		if err == io.EOF {
			var got [20]byte
			r.h.Sum(got[:0])
			if got != r.want {
				r.err = fmt.Errorf("%w: %s: data has SHA-1 %x, want %x", ErrChecksum, r.name, got, r.want)
			} else {
				r.err = io.EOF
			}
			r.it.close()
			return 0, r.err
		}
		if err != nil {
			r.err = fmt.Errorf("%s: %w", r.name, err)
			r.it.close()
			return 0, r.err
		}
		r.h.Write(b)
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *blobReader) Close() error {
	r.it.close()
	if r.err == nil {
		r.err = errors.New("wim: read after close")
	}
	return nil
}

// Chunk buffers are pooled by power-of-two size class: applying an image
// opens one iterator per file, and allocating (and clearing) fresh chunk
// buffers each time costs more than the small files' I/O.
var bufPools [32]sync.Pool

func sizeClass(n int) int {
	c := 0
	for 1<<c < n {
		c++
	}
	return c
}

func getBuf(n int) []byte {
	if n <= 0 {
		return nil
	}
	c := sizeClass(n)
	if c >= len(bufPools) {
		return make([]byte, n)
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<c)
}

func putBuf(b []byte) {
	if cap(b) == 0 || cap(b)&(cap(b)-1) != 0 {
		return
	}
	c := sizeClass(cap(b))
	if c < len(bufPools) {
		b = b[:cap(b)]
		bufPools[c].Put(&b)
	}
}

// parallelMinChunks is the size from which one blob's chunks are
// decompressed on several goroutines: below it, parallelism across blobs
// is enough.
const parallelMinChunks = 16

// eachChunk calls fn with the blob's uncompressed data in order. Large
// compressed resources are decompressed on up to threads goroutines while
// fn consumes the chunks in order, so a single big file does not leave
// cores idle.
func (res resource) eachChunk(ctx context.Context, threads int, fn func([]byte) error) error {
	rh := res.rh
	cs := int64(res.p.chunkSize)
	n := (rh.uncompSize + cs - 1) / cs
	if threads < 2 || rh.flags&reshdrFlagCompressed == 0 || n < parallelMinChunks || rh.flags&reshdrFlagSolid != 0 {
		it, err := res.chunks()
		if err != nil {
			return err
		}
		defer it.close()
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := it.nextChunk()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	if res.p.comp == CompressionNone {
		return formatErr("compressed resource at %d in a WIM without compression", rh.offset)
	}
	offs, dataStart, err := res.chunkTable()
	if err != nil {
		return err
	}
	type chunk struct {
		idx  int64
		c, u []byte
	}
	decs := make([]decompressor, threads)
	defer func() {
		for _, d := range decs {
			if d != nil {
				decompressors.put(res.p.comp, res.p.chunkSize, d)
			}
		}
	}()
	release := func(t *chunk) {
		putBuf(t.c)
		putBuf(t.u)
	}
	return ordered.Run(ctx, ordered.Stages[*chunk]{
		Workers: threads,
		Window:  2 * threads,
		// Compressed data is read in windows of about 1 MiB so that a
		// remote source sees few, large requests.
		Produce: func(ctx context.Context, emit func(*chunk) error) error {
			win := getBuf(readWindow)[:0]
			defer func() { putBuf(win) }()
			var winStart int64
			for i := int64(0); i < n; i++ {
				if offs[i] < winStart || offs[i+1] > winStart+int64(len(win)) {
					winStart = offs[i]
					end := offs[i+1]
					for j := i + 1; j < n && offs[j+1]-winStart <= readWindow; j++ {
						end = offs[j+1]
					}
					if need := int(end - winStart); cap(win) < need {
						putBuf(win)
						win = getBuf(need)
					} else {
						win = win[:need]
					}
					if _, err := res.p.r.ReadAt(win, dataStart+winStart); err != nil {
						return fmt.Errorf("wim: reading chunks at %d: %w", dataStart+winStart, noEOF(err))
					}
				}
				usize := cs
				if i == n-1 && rh.uncompSize%cs != 0 {
					usize = rh.uncompSize % cs
				}
				t := &chunk{idx: i, c: getBuf(int(offs[i+1] - offs[i])), u: getBuf(int(usize))}
				copy(t.c, win[offs[i]-winStart:])
				if err := emit(t); err != nil {
					return err
				}
			}
			return nil
		},
		Work: func(w int, t *chunk) error {
			if len(t.c) == len(t.u) {
				copy(t.u, t.c) // stored raw
				return nil
			}
			if decs[w] == nil {
				d, err := decompressors.get(res.p.comp, res.p.chunkSize)
				if err != nil {
					return err
				}
				decs[w] = d
			}
			if err := decs[w].Decompress(t.u, t.c); err != nil {
				return fmt.Errorf("%w: chunk %d of resource at offset %d: %v", ErrFormat, t.idx, rh.offset, err)
			}
			return nil
		},
		Consume: func(t *chunk) error {
			defer release(t)
			return fn(t.u)
		},
		Discard: release,
	})
}
