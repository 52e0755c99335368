package wim

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/minint/minint/wim/internal/ordered"
)

// blobSource is data to store as one blob: a captured file, a blob of
// another WIM, or bytes in memory. A captured file's source is 24 bytes:
// capturing a tree makes one for every file, so it holds no closures and
// keeps what the other kinds need apart.
type blobSource struct {
	size int64
	// file is a captured file: read from its diskPath, its Hash set when
	// stored (and known before if it was hashed to find duplicates).
	file  *File
	other *otherSource // any other kind of source
}

type otherSource struct {
	blob      *blob     // a blob of another WIM, recompressed
	data      []byte    // in memory (metadata, reparse data)
	stream    io.Reader // produced as it is read (a metadata resource)
	hash      [20]byte
	hashKnown bool
	metadata  bool
	// done, if set, is called by the writing goroutine once the blob is
	// stored.
	done func(b *outBlob)
}

// knownHash is the source's SHA-1 if it is known before it is read.
func (s *blobSource) knownHash() ([20]byte, bool) {
	if s.file != nil {
		return s.file.Hash, s.file.Hash != zeroHash
	}
	return s.other.hash, s.other.hashKnown
}

func (s *blobSource) isMetadata() bool { return s.other != nil && s.other.metadata }

func (s *blobSource) open() (io.ReadCloser, error) {
	if s.file != nil {
		return openNoFollow(s.file.diskPath())
	}
	switch o := s.other; {
	case o.blob != nil:
		return newBlobReader(o.blob, s.path())
	case o.stream != nil:
		return io.NopCloser(o.stream), nil
	default:
		return io.NopCloser(byteReader(o.data)), nil
	}
}

// path names the source in errors.
func (s *blobSource) path() string {
	if s.file != nil {
		return s.file.diskPath()
	}
	switch o := s.other; {
	case o.blob != nil:
		return fmt.Sprintf("blob %x", o.blob.hash)
	case o.metadata:
		return "metadata resource"
	}
	return "reparse data"
}

// chunkTask is one chunk of a source on its way through writeBlobs.
type chunkTask struct {
	src     *blobSource
	idx     int
	nchunks int
	data    []byte   // compressed in place: data[:clen] once compressed
	clen    int      // compressed length, 0 = store raw
	hash    [20]byte // the source's SHA-1, on its last chunk
}

// writeBlobs stores the sources in order: one goroutine reads and hashes
// them, opts.Threads goroutines compress chunks, and the calling goroutine
// writes chunks in order (ordered.Run), so memory is bounded by the
// pipeline's window.
func (w *Writer) writeBlobs(ctx context.Context, srcs []*blobSource, progress func(int64)) error {
	if len(srcs) == 0 {
		return nil
	}
	comp := w.opts.Compression
	cs := w.opts.ChunkSize
	if comp == CompressionNone {
		cs = 256 << 10
	}
	threads := w.opts.Threads
	pool := &sync.Pool{New: func() any { return make([]byte, cs) }}
	put := func(b []byte) {
		if b != nil {
			pool.Put(b[:cap(b)])
		}
	}
	release := func(t *chunkTask) { put(t.data) }
	rw := &resourceWriter{w: w, compressed: comp != CompressionNone, progress: progress}
	st := ordered.Stages[*chunkTask]{
		Workers: threads,
		Window:  4*threads + 4,
		Produce: func(ctx context.Context, emit func(*chunkTask) error) error {
			return readSources(ctx, srcs, cs, max(4, 2*threads), pool, emit)
		},
		Consume: func(t *chunkTask) error {
			defer release(t)
			return rw.write(t)
		},
		Discard: release,
	}
	if comp != CompressionNone {
		comps := make([]compressor, threads)
		defer func() {
			for _, c := range comps {
				if c != nil {
					w.idle.put(c)
				}
			}
		}()
		st.Work = func(i int, t *chunkTask) error {
			if comps[i] == nil {
				c, err := w.compressor(comp, cs)
				if err != nil {
					return err
				}
				comps[i] = c
			}
			t.clen = comps[i].Compress(t.data, t.data)
			if t.clen >= len(t.data) {
				t.clen = 0
			}
			return nil
		}
	}
	if err := ordered.Run(ctx, st); err != nil {
		return err
	}
	return w.out.err
}

// readSources emits the chunks of every source in order, hashing each
// source on the way and checking that it did not change since it was
// scanned (or hashed).
func readSources(ctx context.Context, srcs []*blobSource, cs, ahead int, pool *sync.Pool, emit func(*chunkTask) error) error {
	pctx, cancel := context.WithCancel(ctx)
	pf := newPrefetcher(pctx, srcs, ahead, cs, pool)
	defer pf.stop(cancel, pool)
	for si, s := range srcs {
		n := int((s.size + int64(cs) - 1) / int64(cs))
		pre, err := pf.take(ctx, si)
		if err != nil {
			return err
		}
		if pre != nil {
			// Read ahead: the chunks are already in pool buffers.
			if err := emitPrefetched(s, pre, n, pool, emit); err != nil {
				return err
			}
			continue
		}
		if err := emitStreamed(s, n, cs, pool, emit); err != nil {
			return err
		}
	}
	return nil
}

// changed checks a source's size and hash after it was read whole.
func (s *blobSource) changed(hash [20]byte, grew bool) error {
	switch {
	case grew:
		return fmt.Errorf("wim: %s grew during capture", s.path())
	case s.changedHash(hash):
		return fmt.Errorf("wim: %s changed during capture", s.path())
	}
	return nil
}

func (s *blobSource) changedHash(hash [20]byte) bool {
	h, known := s.knownHash()
	return known && h != hash
}

// emitStreamed reads a source chunk by chunk.
func emitStreamed(s *blobSource, n, cs int, pool *sync.Pool, emit func(*chunkTask) error) error {
	rc, err := s.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha1.New()
	for i := 0; i < n; i++ {
		t := &chunkTask{src: s, idx: i, nchunks: n}
		usize := int64(cs)
		if i == n-1 && s.size%int64(cs) != 0 {
			usize = s.size % int64(cs)
		}
		t.data = pool.Get().([]byte)[:usize]
		if _, err := io.ReadFull(rc, t.data); err != nil {
			pool.Put(t.data[:cap(t.data)])
			return fmt.Errorf("wim: reading %s: %w (file changed during capture?)", s.path(), noEOF(err))
		}
		h.Write(t.data)
		if i == n-1 {
			h.Sum(t.hash[:0])
			var one [1]byte
			k, _ := rc.Read(one[:])
			if err := s.changed(t.hash, k != 0); err != nil {
				pool.Put(t.data[:cap(t.data)])
				return err
			}
		}
		if err := emit(t); err != nil {
			return err
		}
	}
	return nil
}

// emitPrefetched queues the n chunks of a read-ahead source, hashing them
// on the way.
func emitPrefetched(s *blobSource, pre *prefetched, n int, pool *sync.Pool, emit func(*chunkTask) error) error {
	if pre.err != nil {
		pre.release(pool, 0)
		return pre.err
	}
	h := sha1.New()
	for i, b := range pre.chunks {
		t := &chunkTask{src: s, idx: i, nchunks: n, data: b}
		h.Write(b)
		if i == n-1 {
			h.Sum(t.hash[:0])
			if err := s.changed(t.hash, pre.grew); err != nil {
				pre.release(pool, i)
				return err
			}
		}
		if err := emit(t); err != nil {
			pre.release(pool, i+1)
			return err
		}
	}
	return nil
}

// resourceWriter is the consuming end of writeBlobs: it writes each
// source's chunks, in order, as one resource (chunk table, chunks) and
// records the blob.
type resourceWriter struct {
	w          *Writer
	compressed bool
	progress   func(int64)

	// The resource being written.
	start, tableOff, dataStart int64
	entSize                    int64
	offsets                    []int64
}

func (rw *resourceWriter) write(t *chunkTask) error {
	out := rw.w.out
	if t.idx == 0 {
		rw.begin(t)
	}
	rw.offsets = append(rw.offsets, out.offset()-rw.dataStart)
	if t.clen > 0 {
		out.Write(t.data[:t.clen])
	} else {
		out.Write(t.data)
	}
	if rw.progress != nil {
		rw.progress(int64(len(t.data)))
	}
	if t.idx == t.nchunks-1 {
		return rw.end(t)
	}
	return out.err
}

// begin starts a resource, leaving room for its chunk table.
func (rw *resourceWriter) begin(t *chunkTask) {
	out := rw.w.out
	rw.start = out.offset()
	rw.offsets = rw.offsets[:0]
	rw.entSize = 4
	if t.src.size > 0xffffffff {
		rw.entSize = 8
	}
	rw.tableOff = rw.start
	if rw.compressed && t.nchunks > 1 {
		out.Write(make([]byte, int64(t.nchunks-1)*rw.entSize))
	}
	rw.dataStart = out.offset()
}

// end finishes a resource after its last chunk: fills in the chunk table
// (or drops it) and records the blob.
func (rw *resourceWriter) end(t *chunkTask) error {
	w, s := rw.w, t.src
	end := w.out.offset()
	rh := reshdr{sizeInWim: end - rw.start, offset: rw.start, uncompSize: s.size}
	if s.isMetadata() {
		rh.flags |= reshdrFlagMetadata
	}
	// A resource whose chunks were all stored raw is written uncompressed,
	// as wimlib does, when its chunk table can still be cut out of the
	// buffer; once that has gone to the file (a resource larger than the
	// buffer) it stays a compressed resource whose chunks happen to be
	// raw, which readers take as such (stored size == chunk size).
	allRaw := end-rw.dataStart == s.size
	cut := rw.compressed && allRaw && t.nchunks > 1 && w.out.cut(rw.tableOff, rw.dataStart)
	if rw.compressed && (!allRaw || (t.nchunks > 1 && !cut)) {
		rh.flags |= reshdrFlagCompressed
		if t.nchunks > 1 {
			tb := make([]byte, int64(t.nchunks-1)*rw.entSize)
			for i := 1; i < t.nchunks; i++ {
				if rw.entSize == 4 {
					binary.LittleEndian.PutUint32(tb[(i-1)*4:], uint32(rw.offsets[i]))
				} else {
					binary.LittleEndian.PutUint64(tb[(i-1)*8:], uint64(rw.offsets[i]))
				}
			}
			if err := w.out.patch(tb, rw.tableOff); err != nil {
				return err
			}
		}
	} else if cut {
		rh.sizeInWim = s.size
	}
	ob := &outBlob{hash: t.hash, size: s.size, rh: rh}
	if !s.isMetadata() {
		if old := w.blobs[t.hash]; old != nil {
			// Same data appeared under a size we did not expect to
			// repeat (file changed while scanning): keep one.
			ob = old
		} else {
			w.blobs[t.hash] = ob
			w.order = append(w.order, ob)
			w.sizes[s.size] = true
		}
	}
	if s.file != nil {
		s.file.Hash = ob.hash
	}
	if s.other != nil && s.other.done != nil {
		s.other.done(ob)
	}
	return w.out.err
}

// compressorCache holds idle compressors for one compression and chunk
// size, between writeBlobs calls (every image and every metadata
// resource), instead of allocating new ones.
type compressorCache struct {
	mu    sync.Mutex
	comp  Compression
	cs    int
	cache []compressor
}

func (c *compressorCache) put(x compressor) {
	c.mu.Lock()
	c.cache = append(c.cache, x)
	c.mu.Unlock()
}

// compressor returns an idle compressor for comp and chunk size cs, or a
// new one.
func (w *Writer) compressor(comp Compression, cs int) (compressor, error) {
	c := &w.idle
	c.mu.Lock()
	if c.comp != comp || c.cs != cs {
		c.comp, c.cs, c.cache = comp, cs, nil
	}
	if n := len(c.cache); n > 0 {
		x := c.cache[n-1]
		c.cache = c.cache[:n-1]
		c.mu.Unlock()
		return x, nil
	}
	c.mu.Unlock()
	return newCompressor(comp, cs)
}

func memSource(b []byte, metadata bool, done func(*outBlob)) *blobSource {
	return &blobSource{size: int64(len(b)), other: &otherSource{data: b, metadata: metadata, done: done}}
}

func byteReader(b []byte) io.Reader { r := &sliceReader{b: b}; return r }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// prefetchMax is the largest source read ahead whole; bigger ones are
// streamed by the reading goroutine itself (and their open and read
// latency matters less).
const prefetchMax = 256 << 10

// prefetcher reads the next small sources on several goroutines while the
// current one is being compressed: capture of many small files is bound by
// open/read latency, not by the single reading goroutine's CPU. Files are
// read straight into the pipeline's chunk buffers, so read-ahead neither
// allocates per file nor copies the data again; at most n files (each
// prefetchMax at most) are held at once, and nothing is allocated for a
// file before its turn comes.
type prefetcher struct {
	srcs  []*blobSource
	slots chan struct{}
	ready chan *prefetched // the read-ahead files, in order
	wg    sync.WaitGroup
}

type prefetched struct {
	chunks [][]byte // the file's data in chunk-size pool buffers
	grew   bool     // the file had more data than its size when scanned
	err    error
	done   chan struct{}
}

func newPrefetcher(ctx context.Context, srcs []*blobSource, n, cs int, pool *sync.Pool) *prefetcher {
	p := &prefetcher{srcs: srcs, slots: make(chan struct{}, n), ready: make(chan *prefetched, n)}
	p.wg.Go(func() {
		for _, s := range srcs {
			if s.size > prefetchMax {
				continue
			}
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			it := &prefetched{done: make(chan struct{})}
			p.ready <- it // room: one slot per item not yet taken
			p.wg.Go(func() {
				defer close(it.done)
				it.err = it.read(ctx, s, cs, pool)
			})
		}
	})
	return p
}

// stop ends read-ahead (cancel is the context's) and waits for the reading
// goroutines, returning what they read but nobody took to the pool.
func (p *prefetcher) stop(cancel func(), pool *sync.Pool) {
	cancel()
	p.wg.Wait()
	close(p.ready)
	for it := range p.ready {
		it.release(pool, 0)
	}
}

func (it *prefetched) read(ctx context.Context, s *blobSource, cs int, pool *sync.Pool) error {
	rc, err := s.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	for left := s.size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := pool.Get().([]byte)[:min(left, int64(cs))]
		it.chunks = append(it.chunks, b)
		if _, err := io.ReadFull(rc, b); err != nil {
			return fmt.Errorf("wim: reading %s: %w (file changed during capture?)", s.path(), noEOF(err))
		}
		left -= int64(len(b))
	}
	var one [1]byte
	k, err := rc.Read(one[:])
	it.grew = k != 0
	if err != nil && err != io.EOF {
		return fmt.Errorf("wim: reading %s: %w", s.path(), err)
	}
	return nil
}

// release returns the chunks from i on to the pool.
func (it *prefetched) release(pool *sync.Pool, i int) {
	for _, b := range it.chunks[i:] {
		pool.Put(b[:cap(b)])
	}
	it.chunks = nil
}

// take waits for source i if it is read ahead and returns it (nil if it
// is not), releasing its slot for the next file.
func (p *prefetcher) take(ctx context.Context, i int) (*prefetched, error) {
	if p.srcs[i].size > prefetchMax {
		return nil, nil
	}
	var it *prefetched
	select {
	case it = <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-it.done:
	case <-ctx.Done():
		p.ready <- it // for stop to release once read
		return nil, ctx.Err()
	}
	<-p.slots
	return it, nil
}
