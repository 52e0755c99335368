package wim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
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
	final  string   // Create: the name file gets once complete
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
	// headerDone: the final header is written (appending: the file is
	// not to be truncated back any more).
	headerDone bool
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
		if err := haveCompressor(o.Compression); err != nil {
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

// Create starts a new WIM that Close puts at name (replacing any file
// there). It is written to a temporary file in the same directory, which
// Close syncs and renames to name once the WIM is complete, so that name
// never holds a partial WIM; if anything fails (or the context of AddImage
// or ExportImage is cancelled) the temporary file is removed and name is
// left as it was.
func Create(name string, opts WriterOptions) (*Writer, error) {
	f, err := createTemp(name)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, opts)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	w.file, w.final = f, name
	return w, nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// addImage stores a finished tree: its metadata resource (meta, a
// metadataSource or a memSource) and XML entry.
func (w *Writer) addImage(ctx context.Context, root *File, meta *blobSource, xmlNode *xmlNode) error {
	var mb *outBlob
	meta.other.metadata, meta.other.done = true, func(b *outBlob) { mb = b }
	if err := w.writeBlobs(ctx, []*blobSource{meta}, nil); err != nil {
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
// and the header. If the Writer opened the file itself, Close also makes
// it durable: a new WIM (Create) is synced and renamed to its name, an
// appended one (OpenAppend) is synced; after a failure a new WIM's
// temporary file is removed and an appended WIM truncated back to its
// original size.
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
		err = w.closeFile(err)
	}
	w.err = err
	return err
}

func (w *Writer) closeFile(err error) error {
	if w.final != "" {
		if err != nil {
			w.file.Close()
			os.Remove(w.file.Name())
			return err
		}
		return commitTemp(w.file, w.final)
	}
	if err == nil {
		err = w.file.Sync()
	}
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	if err != nil && !w.headerDone {
		os.Truncate(w.file.Name(), w.origSize)
	}
	return err
}

func (w *Writer) finish() error {
	// Blob table: metadata resources in image order, then data blobs,
	// an entry at a time into the output buffer (built whole, it would be
	// 50 bytes a blob at the end of a capture).
	btOff := w.out.offset()
	var e []byte
	for _, img := range w.images {
		e = appendBlobEntry(e[:0], &blob{hash: img.meta.hash, partNum: 1, refcnt: 1}, img.meta.rh)
		w.out.Write(e)
	}
	for _, ob := range w.order {
		if ob.refcnt == 0 {
			continue
		}
		e = appendBlobEntry(e[:0], &blob{hash: ob.hash, partNum: 1, refcnt: ob.refcnt}, ob.rh)
		w.out.Write(e)
	}
	btLen := w.out.offset() - btOff
	w.hdr.blobTable = reshdr{sizeInWim: btLen, flags: reshdrFlagMetadata, offset: btOff, uncompSize: btLen}

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
		tab, err := integrityTable(ra, btOff+btLen, nil)
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
	if w.origSize > 0 && w.file != nil {
		// Appending in place: everything the new header points to must
		// be on disk before it, or a power cut could leave a header
		// pointing at data that never arrived. Until the header is
		// written, the file is still the old WIM (plus unused bytes).
		if err := w.file.Sync(); err != nil {
			return err
		}
	}
	if err := w.out.patch(w.hdr.bytes(), 0); err != nil {
		return err
	}
	w.headerDone = true
	return w.out.flush()
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
