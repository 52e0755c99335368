package wim

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
)

// WriterOptions controls a Writer.
type WriterOptions struct {
	// Compression of file data and metadata resources.
	Compression Compression
	// ChunkSize is the compression chunk size, a power of two from 32 KiB
	// to 2 MiB (LZX) or 64 KiB (XPRESS); 0 means 32768.
	ChunkSize int
	// Threads compress chunks in parallel; 0 means GOMAXPROCS.
	Threads int
	// Integrity writes an integrity table (SHA-1 of every 10 MiB of the
	// file) that Verify and wimlib-imagex verify check.
	Integrity bool
}

// Writer writes a WIM. Resources are written as images are added (header
// placeholder first, like wimlib), so memory stays bounded; Close writes the
// blob table, XML data, optional integrity table and the final header.
type Writer struct {
	opts   WriterOptions
	ws     io.WriteSeeker
	out    *outFile
	file   *os.File // set when the Writer opened the file itself
	remove bool     // remove file if Close fails (new files only)
	hdr    header
	blobs  map[[20]byte]*outBlob
	order  []*outBlob
	sizes  map[int64]bool
	images []*outImage
	xml    *xmlNode // WIM-level XML (kept from an appended WIM)
	err    error
	closed bool
	// idle keeps the compressors between writeBlobs calls (every image
	// and every metadata resource), instead of allocating new ones.
	idle compressorCache
	// When appending, where the old WIM's blobs are read from (for export
	// of an image of the same file).
	base     *Reader
	origSize int64 // appending: size of the WIM before, restored on failure
}

type outBlob struct {
	hash   [20]byte
	size   int64
	rh     reshdr
	refcnt uint32
}

type outImage struct {
	meta *outBlob
	xml  *xmlNode
}

func (o *WriterOptions) normalize() error {
	if o.ChunkSize == 0 {
		o.ChunkSize = 32768
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	switch o.Compression {
	case CompressionNone:
	case CompressionXPRESS, CompressionLZX:
		max := 1 << 21
		if o.Compression == CompressionXPRESS {
			max = 1 << 16
		}
		if o.ChunkSize < 32768 || o.ChunkSize > max || o.ChunkSize&(o.ChunkSize-1) != 0 {
			return fmt.Errorf("wim: chunk size %d for %s must be a power of two from 32768 to %d", o.ChunkSize, o.Compression, max)
		}
		if _, err := newCompressor(o.Compression, o.ChunkSize); err != nil {
			return err
		}
	case CompressionLZMS:
		return unsupportedErr("writing LZMS")
	default:
		return fmt.Errorf("wim: unknown compression %d", o.Compression)
	}
	return nil
}

// NewWriter starts a new WIM on w. If opts.Integrity is set, w must also be
// an io.ReaderAt (an *os.File is).
func NewWriter(w io.WriteSeeker, opts WriterOptions) (*Writer, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if _, ok := w.(io.ReaderAt); opts.Integrity && !ok {
		return nil, errors.New("wim: an integrity table needs a writer that is also an io.ReaderAt")
	}
	start, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	if start != 0 {
		return nil, fmt.Errorf("wim: writer is at offset %d, want 0", start)
	}
	wr := &Writer{
		opts:  opts,
		ws:    w,
		out:   newOutFile(w, 0),
		blobs: map[[20]byte]*outBlob{},
		sizes: map[int64]bool{},
		xml:   &xmlNode{},
	}
	wr.xml.XMLName.Local = "WIM"
	wr.hdr = header{version: versionDefault, flags: compressionFlags(opts.Compression), partNumber: 1, totalParts: 1}
	if opts.Compression != CompressionNone {
		wr.hdr.chunkSize = uint32(opts.ChunkSize)
	}
	if _, err := rand.Read(wr.hdr.guid[:]); err != nil {
		return nil, err
	}
	ph := wr.hdr
	ph.flags |= hdrFlagWriteInProgres
	if _, err := wr.out.Write(ph.bytes()); err != nil {
		return nil, err
	}
	return wr, nil
}

// Create creates (or truncates) the file name and starts a WIM in it. If
// Close fails, the partial file is removed.
func Create(name string, opts WriterOptions) (*Writer, error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, opts)
	if err != nil {
		f.Close()
		os.Remove(name)
		return nil, err
	}
	w.file, w.remove = f, true
	return w, nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// blobSource is data to store as one blob.
type blobSource struct {
	size      int64
	open      func() (io.ReadCloser, error)
	hash      [20]byte
	hashKnown bool
	path      string
	metadata  bool
	// done is called by the writing goroutine once the blob is stored.
	done func(b *outBlob)
}

type chunkTask struct {
	src     *blobSource
	idx     int
	nchunks int
	data    []byte
	out     []byte
	clen    int // compressed length, 0 = store raw
	hash    [20]byte
	err     error
	done    chan struct{}
}

// writeBlobs stores the sources in order: one goroutine reads and hashes
// them, opts.Threads goroutines compress chunks, and the calling goroutine
// writes chunks in order, so memory is bounded by the queue length.
func (w *Writer) writeBlobs(srcs []*blobSource, progress func(int64)) error {
	if len(srcs) == 0 {
		return nil
	}
	comp := w.opts.Compression
	cs := w.opts.ChunkSize
	if comp == CompressionNone {
		cs = 256 << 10
	}
	threads := w.opts.Threads
	bufPool := sync.Pool{New: func() any { return make([]byte, cs) }}
	queue := make(chan *chunkTask, 4*threads+4)
	work := make(chan *chunkTask, 4*threads+4)
	cancel := make(chan struct{})
	var wg sync.WaitGroup
	if comp != CompressionNone {
		for i := 0; i < threads; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := w.compressor(comp, cs)
				if err == nil {
					defer w.idle.put(c)
				}
				for t := range work {
					if err != nil {
						t.err = err
					} else if t.err == nil {
						t.out = bufPool.Get().([]byte)
						t.clen = c.Compress(t.out[:cs], t.data)
						if t.clen >= len(t.data) {
							t.clen = 0
						}
					}
					close(t.done)
				}
			}()
		}
	}
	go func() {
		defer close(queue)
		defer close(work)
		send := func(t *chunkTask) bool {
			failed := t.err != nil
			select {
			case queue <- t:
			case <-cancel:
				return false
			}
			if comp == CompressionNone || failed {
				close(t.done)
				return true
			}
			select {
			case work <- t:
			case <-cancel:
				return false
			}
			return true
		}
		pf := newPrefetcher(srcs, max(4, 2*threads), cs, &bufPool, cancel)
		for si, s := range srcs {
			n := int((s.size + int64(cs) - 1) / int64(cs))
			if pre := pf.take(si); pre != nil {
				// Read ahead: the chunks are already in pool buffers.
				if !sendPrefetched(s, pre, n, send) {
					return
				}
				continue
			}
			rc, err := s.open()
			if err != nil {
				send(&chunkTask{src: s, err: err, done: make(chan struct{})})
				return
			}
			h := sha1.New()
			for i := 0; i < n; i++ {
				t := &chunkTask{src: s, idx: i, nchunks: n, done: make(chan struct{})}
				usize := int64(cs)
				if i == n-1 && s.size%int64(cs) != 0 {
					usize = s.size % int64(cs)
				}
				t.data = bufPool.Get().([]byte)[:usize]
				if _, err := io.ReadFull(rc, t.data); err != nil {
					t.err = fmt.Errorf("wim: reading %s: %w (file changed during capture?)", s.path, noEOF(err))
				}
				h.Write(t.data)
				if i == n-1 && t.err == nil {
					h.Sum(t.hash[:0])
					var one [1]byte
					if k, _ := rc.Read(one[:]); k != 0 {
						t.err = fmt.Errorf("wim: %s grew during capture", s.path)
					} else if s.hashKnown && t.hash != s.hash {
						t.err = fmt.Errorf("wim: %s changed during capture", s.path)
					}
				}
				failed := t.err != nil // workers may write t.err once sent
				if !send(t) || failed {
					rc.Close()
					return
				}
			}
			rc.Close()
		}
	}()

	var err error
	var start, tableOff, dataStart int64
	var offsets []int64
	entSize := int64(4)
	for t := range queue {
		<-t.done
		if err != nil {
			continue // draining after a failure
		}
		if t.err != nil {
			err = t.err
			close(cancel)
			continue
		}
		s := t.src
		compressed := comp != CompressionNone
		if t.idx == 0 {
			start = w.out.offset()
			offsets = offsets[:0]
			entSize = 4
			if s.size > 0xffffffff {
				entSize = 8
			}
			tableOff = start
			if compressed && t.nchunks > 1 {
				w.out.Write(make([]byte, int64(t.nchunks-1)*entSize))
			}
			dataStart = w.out.offset()
		}
		offsets = append(offsets, w.out.offset()-dataStart)
		if t.clen > 0 {
			w.out.Write(t.out[:t.clen])
		} else {
			w.out.Write(t.data)
		}
		if t.out != nil {
			bufPool.Put(t.out[:cap(t.out)])
		}
		if progress != nil {
			progress(int64(len(t.data)))
		}
		bufPool.Put(t.data[:cap(t.data)])
		if t.idx == t.nchunks-1 {
			end := w.out.offset()
			rh := reshdr{sizeInWim: end - start, offset: start, uncompSize: s.size}
			if s.metadata {
				rh.flags |= reshdrFlagMetadata
			}
			// A resource whose chunks were all stored raw is written
			// uncompressed, as wimlib does, when its chunk table can
			// still be cut out of the buffer; once that has gone to the
			// file (a resource larger than the buffer) it stays a
			// compressed resource whose chunks happen to be raw, which
			// readers take as such (stored size == chunk size).
			allRaw := end-dataStart == s.size
			cut := compressed && allRaw && t.nchunks > 1 && w.out.cut(tableOff, dataStart)
			if compressed && (!allRaw || (t.nchunks > 1 && !cut)) {
				rh.flags |= reshdrFlagCompressed
				if t.nchunks > 1 {
					tb := make([]byte, int64(t.nchunks-1)*entSize)
					for i := 1; i < t.nchunks; i++ {
						if entSize == 4 {
							binary.LittleEndian.PutUint32(tb[(i-1)*4:], uint32(offsets[i]))
						} else {
							binary.LittleEndian.PutUint64(tb[(i-1)*8:], uint64(offsets[i]))
						}
					}
					if e := w.out.patch(tb, tableOff); e != nil {
						err = e
						close(cancel)
						continue
					}
				}
			} else if cut {
				rh.sizeInWim = s.size
			}
			ob := &outBlob{hash: t.hash, size: s.size, rh: rh}
			if !s.metadata {
				if old := w.blobs[t.hash]; old != nil {
					// Same data appeared under a size we did not expect
					// to repeat (file changed while scanning): keep one.
					ob = old
				} else {
					w.blobs[t.hash] = ob
					w.order = append(w.order, ob)
					w.sizes[s.size] = true
				}
			}
			if s.done != nil {
				s.done(ob)
			}
		}
	}
	wg.Wait()
	if err == nil {
		err = w.out.err
	}
	return err
}

// compressorCache holds idle compressors for one compression and chunk
// size; the workers of writeBlobs take and return them concurrently.
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

func memSource(b []byte, path string, metadata bool, done func(*outBlob)) *blobSource {
	return &blobSource{
		size:     int64(len(b)),
		open:     func() (io.ReadCloser, error) { return io.NopCloser(byteReader(b)), nil },
		path:     path,
		metadata: metadata,
		done:     done,
	}
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
// streamed by the reading goroutine itself.
const prefetchMax = 1 << 20

// prefetcher reads the next small sources on several goroutines while the
// current one is being compressed: capture of many small files is bound by
// open/read latency, not by the single reading goroutine's CPU. Files are
// read straight into the pipeline's chunk buffers, so read-ahead neither
// allocates per file nor copies the data again; at most n files (each
// prefetchMax at most) are held at once.
type prefetcher struct {
	srcs  []*blobSource
	slots chan struct{}
	items []*prefetched
}

type prefetched struct {
	chunks [][]byte // the file's data in chunk-size pool buffers
	grew   bool     // the file had more data than its size when scanned
	err    error
	done   chan struct{}
}

func newPrefetcher(srcs []*blobSource, n, cs int, pool *sync.Pool, cancel chan struct{}) *prefetcher {
	p := &prefetcher{srcs: srcs, slots: make(chan struct{}, n), items: make([]*prefetched, len(srcs))}
	for i, s := range srcs {
		if s.size <= prefetchMax {
			p.items[i] = &prefetched{done: make(chan struct{})}
		}
	}
	go func() {
		for i, s := range srcs {
			it := p.items[i]
			if it == nil {
				continue
			}
			select {
			case p.slots <- struct{}{}:
			case <-cancel:
				return
			}
			go func() {
				defer close(it.done)
				it.err = it.read(s, cs, pool)
			}()
		}
	}()
	return p
}

func (it *prefetched) read(s *blobSource, cs int, pool *sync.Pool) error {
	rc, err := s.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	for left := s.size; left > 0; {
		b := pool.Get().([]byte)[:min(left, int64(cs))]
		it.chunks = append(it.chunks, b)
		if _, err := io.ReadFull(rc, b); err != nil {
			return fmt.Errorf("wim: reading %s: %w (file changed during capture?)", s.path, noEOF(err))
		}
		left -= int64(len(b))
	}
	var one [1]byte
	k, err := rc.Read(one[:])
	it.grew = k != 0
	if err != nil && err != io.EOF {
		return fmt.Errorf("wim: reading %s: %w", s.path, err)
	}
	return nil
}

// take waits for source i if it is read ahead and returns it (nil if it
// is not), releasing its slot for the next file.
func (p *prefetcher) take(i int) *prefetched {
	it := p.items[i]
	if it == nil {
		return nil
	}
	<-it.done
	<-p.slots
	// Forget the item: otherwise every small file read ahead stays
	// reachable until the last source is written, and capture's memory
	// grows with the tree.
	p.items[i] = nil
	return it
}

// sendPrefetched queues the n chunks of a read-ahead source, hashing them
// on the way, and reports whether the pipeline goes on.
func sendPrefetched(s *blobSource, pre *prefetched, n int, send func(*chunkTask) bool) bool {
	if pre.err != nil {
		send(&chunkTask{src: s, err: pre.err, done: make(chan struct{})})
		return false
	}
	h := sha1.New()
	for i, b := range pre.chunks {
		t := &chunkTask{src: s, idx: i, nchunks: n, data: b, done: make(chan struct{})}
		h.Write(b)
		if i == n-1 {
			h.Sum(t.hash[:0])
			if pre.grew {
				t.err = fmt.Errorf("wim: %s grew during capture", s.path)
			} else if s.hashKnown && t.hash != s.hash {
				t.err = fmt.Errorf("wim: %s changed during capture", s.path)
			}
		}
		failed := t.err != nil // workers may write t.err once sent
		if !send(t) || failed {
			return false
		}
	}
	return true
}

// addImage stores a finished tree: its metadata resource and XML entry.
func (w *Writer) addImage(root *File, meta []byte, xmlNode *xmlNode) error {
	var mb *outBlob
	if err := w.writeBlobs([]*blobSource{memSource(meta, "metadata resource", true, func(b *outBlob) { mb = b })}, nil); err != nil {
		return w.fail(err)
	}
	mb.refcnt = 1
	var walk func(f *File)
	walk = func(f *File) {
		for _, h := range [][20]byte{f.Hash, f.reparseHash} {
			if b := w.blobs[h]; h != zeroHash && b != nil {
				b.refcnt++
			}
		}
		for _, s := range f.Streams {
			if b := w.blobs[s.Hash]; s.Hash != zeroHash && b != nil {
				b.refcnt++
			}
		}
		for _, c := range f.Children {
			walk(c)
		}
	}
	walk(root)
	xmlNode.setAttr("INDEX", fmt.Sprint(len(w.images)+1))
	w.images = append(w.images, &outImage{meta: mb, xml: xmlNode})
	return nil
}

// imageXML builds the XML entry wimlib writes for a captured tree.
func imageXML(root *File, name, desc string) *xmlNode {
	var dirs, files, total, hardlink uint64
	seen := map[uint64]bool{}
	var walk func(f *File)
	walk = func(f *File) {
		if f.unixType() == unixDir {
			dirs++
		} else {
			files++
		}
		sz := uint64(f.Size)
		if f.reparse != nil {
			sz += uint64(f.reparse.size)
		}
		total += sz
		if f.HardLinkGroup != 0 && f.unixType() != unixDir {
			if seen[f.HardLinkGroup] {
				hardlink += uint64(f.Size)
			}
			seen[f.HardLinkGroup] = true
		}
		for _, c := range f.Children {
			walk(c)
		}
	}
	walk(root)
	n := &xmlNode{}
	n.XMLName.Local = "IMAGE"
	n.setAttr("INDEX", "0")
	n.set("NAME", name)
	n.set("DESCRIPTION", desc)
	n.set("DIRCOUNT", fmt.Sprint(dirs))
	n.set("FILECOUNT", fmt.Sprint(files))
	n.set("TOTALBYTES", fmt.Sprint(total))
	n.set("HARDLINKBYTES", fmt.Sprint(hardlink))
	now := FiletimeOf(time.Now())
	n.setTime("CREATIONTIME", now)
	n.setTime("LASTMODIFICATIONTIME", now)
	return n
}

// Close writes the blob table, XML data, integrity table (if requested)
// and the header. It closes the file if the Writer opened it.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.finish()
	}
	if w.file != nil {
		if err == nil {
			err = w.file.Sync()
		}
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
		if err != nil && w.remove {
			os.Remove(w.file.Name())
		}
		if err != nil && w.origSize > 0 {
			os.Truncate(w.file.Name(), w.origSize)
		}
	}
	w.err = err
	return err
}

func (w *Writer) finish() error {
	// Blob table: metadata resources in image order, then data blobs.
	var bt []byte
	for _, img := range w.images {
		b := &blob{hash: img.meta.hash, partNum: 1, refcnt: 1}
		bt = appendBlobEntry(bt, b, img.meta.rh)
	}
	for _, ob := range w.order {
		if ob.refcnt == 0 {
			continue
		}
		bt = appendBlobEntry(bt, &blob{hash: ob.hash, partNum: 1, refcnt: ob.refcnt}, ob.rh)
	}
	btOff := w.out.offset()
	w.out.Write(bt)
	w.hdr.blobTable = reshdr{sizeInWim: int64(len(bt)), flags: reshdrFlagMetadata, offset: btOff, uncompSize: int64(len(bt))}

	xmlOff := w.out.offset()
	xd := w.xmlData(xmlOff)
	w.out.Write(xd)
	w.hdr.xml = reshdr{sizeInWim: int64(len(xd)), flags: reshdrFlagMetadata, offset: xmlOff, uncompSize: int64(len(xd))}
	w.hdr.imageCount = uint32(len(w.images))
	w.hdr.bootMeta = reshdr{}
	if int(w.hdr.bootIndex) > len(w.images) {
		return fmt.Errorf("wim: boot index %d but only %d images", w.hdr.bootIndex, len(w.images))
	}
	if w.hdr.bootIndex > 0 {
		w.hdr.bootMeta = w.images[w.hdr.bootIndex-1].meta.rh
	}
	w.hdr.integrity = reshdr{}
	if err := w.out.flush(); err != nil {
		return err
	}
	if w.opts.Integrity {
		ra := w.ws.(io.ReaderAt)
		tab, err := integrityTable(ra, btOff+int64(len(bt)), nil)
		if err != nil {
			return err
		}
		off := w.out.offset()
		w.out.Write(tab)
		w.hdr.integrity = reshdr{sizeInWim: int64(len(tab)), offset: off, uncompSize: int64(len(tab))}
	}
	if err := w.out.flush(); err != nil {
		return err
	}
	if f, ok := w.ws.(interface{ Truncate(int64) error }); ok {
		if err := f.Truncate(w.out.offset()); err != nil {
			return err
		}
	}
	return w.out.patch(w.hdr.bytes(), 0)
}

func (w *Writer) xmlData(totalBytes int64) []byte {
	root := w.xml.clone()
	var keep []*xmlNode
	for _, n := range root.Nodes {
		if n.XMLName.Local != "IMAGE" && n.XMLName.Local != "TOTALBYTES" {
			keep = append(keep, n)
		}
	}
	root.Nodes = keep
	for _, img := range w.images {
		root.Nodes = append(root.Nodes, img.xml)
	}
	root.set("TOTALBYTES", fmt.Sprint(totalBytes))
	var b bytesBuffer
	root.write(&b.Buffer)
	return encodeXMLData(b.String())
}

// SetBootIndex marks image i (1-based, 0 for none) as the bootable image,
// as Windows PE's boot.wim needs. It may refer to an image added later;
// Close checks it.
func (w *Writer) SetBootIndex(i int) error {
	if i < 0 || i > 0xffff {
		return fmt.Errorf("wim: boot index %d out of range", i)
	}
	w.hdr.bootIndex = uint32(i)
	return nil
}
