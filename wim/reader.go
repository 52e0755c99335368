package wim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Limits that keep corrupt or hostile headers and tables from causing huge
// allocations. Besides these, no resource read whole may expand more than
// 512 times (see resource.readAll), metadata resources may not overlap (so
// all images' metadata together is at most 512 times the file), and the
// parsed tree is bounded by its metadata (see treeParser).
const (
	maxBlobTableSize = 1 << 30
	// XML data is a few KB per image; parsed, each element costs about
	// 200 bytes, hence a bound on elements too.
	maxXMLSize      = 16 << 20
	maxXMLElements  = 1 << 18
	maxMetadataSize = 1 << 31
)

// Info holds the header facts of a WIM.
type Info struct {
	Version      uint32
	Flags        uint32
	Compression  Compression
	ChunkSize    int
	GUID         [16]byte
	PartNumber   int
	TotalParts   int
	ImageCount   int
	BootIndex    int
	HasIntegrity bool
	// RPFix is set when the WIM was captured with reparse-point fixups
	// (absolute links inside the tree made relative to its root).
	RPFix bool
	// Size is the size of the WIM (all parts of a split WIM).
	Size int64
	// XML is the XML data of the (first) part, decoded to UTF-8.
	XML string
}

// Reader reads a WIM (or all parts of a split WIM).
type Reader struct {
	parts   []*part
	hdr     *header
	blobs   map[[20]byte]*blob
	images  []*Image
	xmlRoot *xmlNode
	xmlText string
}

// Image is one image of a WIM with the facts of its XML data.
type Image struct {
	Index       int // 1-based
	Name        string
	Description string
	// DisplayName, DisplayDescription and Flags are optional XML fields.
	DisplayName        string
	DisplayDescription string
	Flags              string
	DirCount           uint64
	FileCount          uint64
	TotalBytes         uint64
	HardLinkBytes      uint64
	CreationTime       Filetime
	ModTime            Filetime
	// Fields holds every other simple XML element of the image (for
	// example WINDOWS/VERSION/BUILD as "WINDOWS/VERSION/BUILD").
	Fields map[string]string

	r        *Reader
	meta     *blob
	xml      *xmlNode
	once     sync.Once
	root     *File
	security [][]byte
	err      error
}

// ReadCloser is a Reader over files it opened itself.
type ReadCloser struct {
	Reader
	files []*os.File
}

// Close closes the underlying files.
func (rc *ReadCloser) Close() error {
	var first error
	for _, f := range rc.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func openPart(r io.ReaderAt, size int64, name string) (*part, error) {
	buf := make([]byte, headerSize)
	if size < headerSize {
		return nil, fmt.Errorf("%s: %w", name, formatErr("%d bytes is too short for a WIM", size))
	}
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("wim: %s: reading header: %w", name, noEOF(err))
	}
	h, err := parseHeader(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c, err := h.compression()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// wimlib sets the flag in the header it writes first and clears it in
	// the final one (and in the header of a WIM it appends to in place).
	if h.flags&hdrFlagWriteInProgres != 0 {
		return nil, fmt.Errorf("%s: %w: its header says it is still being written (or its writer was interrupted)", name, ErrIncomplete)
	}
	// What wimlib calls WIMLIB_ERR_WIM_IS_INCOMPLETE: the header of a
	// WIM whose tables were never written.
	if h.blobTable.uncompSize == 0 && h.xml.uncompSize == 0 {
		return nil, fmt.Errorf("%s: %w: it has neither blob table nor XML data", name, ErrIncomplete)
	}
	p := &part{r: r, size: size, hdr: h, comp: c, chunkSize: int(h.chunkSize), name: name}
	if c == CompressionNone {
		p.chunkSize = 32768
	}
	for _, x := range []struct {
		what string
		rh   reshdr
	}{{"blob table", h.blobTable}, {"XML data", h.xml}, {"integrity table", h.integrity}} {
		if err := p.checkResource(x.what, x.rh); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return p, nil
}

// NewReader reads the WIM of the given size from r. For split WIMs use
// OpenSplit or NewSplitReader.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	p, err := openPart(r, size, "WIM")
	if err != nil {
		return nil, err
	}
	if p.hdr.totalParts != 1 {
		return nil, fmt.Errorf("%w: part %d of a %d-part split WIM; open all parts with OpenSplit", ErrUnsupported, p.hdr.partNumber, p.hdr.totalParts)
	}
	return newReader([]*part{p})
}

// SplitPart is one part of a split WIM for NewSplitReader.
type SplitPart struct {
	R    io.ReaderAt
	Size int64
	Name string
}

// NewSplitReader reads a split WIM from all its parts, in any order.
func NewSplitReader(parts []SplitPart) (*Reader, error) {
	var ps []*part
	for _, sp := range parts {
		p, err := openPart(sp.R, sp.Size, sp.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sp.Name, err)
		}
		ps = append(ps, p)
	}
	return newReader(ps)
}

func newReader(ps []*part) (*Reader, error) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].hdr.partNumber < ps[j].hdr.partNumber })
	first := ps[0].hdr
	if int(first.totalParts) != len(ps) {
		return nil, fmt.Errorf("%w: split WIM has %d parts, got %d", ErrNotFound, first.totalParts, len(ps))
	}
	for i, p := range ps {
		if p.hdr.partNumber != uint16(i+1) || p.hdr.totalParts != first.totalParts {
			return nil, formatErr("%s: part %d/%d does not fit a set of %d parts", p.name, p.hdr.partNumber, p.hdr.totalParts, len(ps))
		}
		if p.hdr.guid != first.guid {
			return nil, formatErr("%s: GUID differs from part 1 (not the same split WIM)", p.name)
		}
		if p.comp != ps[0].comp || p.chunkSize != ps[0].chunkSize {
			return nil, formatErr("%s: compression differs from part 1", p.name)
		}
	}
	r := &Reader{parts: ps, hdr: first, blobs: map[[20]byte]*blob{}}
	var metas []*blob
	for _, p := range ps {
		bt := resource{p: p, rh: p.hdr.blobTable}
		buf, err := bt.readAll(maxBlobTableSize)
		if err != nil {
			return nil, fmt.Errorf("wim: %s: blob table: %w", p.name, err)
		}
		blobs, m, err := parseBlobTable(buf, p)
		if err != nil {
			return nil, fmt.Errorf("wim: %s: %w", p.name, err)
		}
		for h, b := range blobs {
			if _, dup := r.blobs[h]; !dup {
				r.blobs[h] = b
			}
		}
		if p.hdr.partNumber == 1 {
			metas = m
		}
	}
	if len(metas) != int(first.imageCount) {
		return nil, formatErr("header says %d images but the blob table has %d metadata resources", first.imageCount, len(metas))
	}
	if err := disjoint(metas); err != nil {
		return nil, err
	}
	if first.xml.uncompSize > 0 {
		xb, err := resource{p: ps[0], rh: first.xml}.readAll(maxXMLSize)
		if err != nil {
			return nil, fmt.Errorf("wim: XML data: %w", err)
		}
		if r.xmlText, err = decodeXMLData(xb); err != nil {
			return nil, err
		}
	}
	root, err := parseXML(r.xmlText)
	if err != nil {
		return nil, err
	}
	r.xmlRoot = root
	byIndex := map[int]*xmlNode{}
	for _, n := range root.Nodes {
		if n.XMLName.Local == "IMAGE" {
			var idx int
			fmt.Sscan(n.attr("INDEX"), &idx)
			if idx > 0 {
				byIndex[idx] = n
			}
		}
	}
	for i, m := range metas {
		img := &Image{Index: i + 1, r: r, meta: m}
		n := byIndex[i+1]
		if n == nil {
			n = &xmlNode{}
			n.XMLName.Local = "IMAGE"
			n.setAttr("INDEX", fmt.Sprint(i+1))
		}
		img.setXML(n)
		r.images = append(r.images, img)
	}
	return r, nil
}

// disjoint refuses metadata resources that share bytes: each image's
// metadata is decompressed and kept on its own, so images sharing one
// resource would multiply what a small file makes the reader hold.
func disjoint(metas []*blob) error {
	s := append([]*blob(nil), metas...)
	sort.Slice(s, func(i, j int) bool { return s[i].res.rh.offset < s[j].res.rh.offset })
	for i := 1; i < len(s); i++ {
		if prev := s[i-1].res.rh; prev.offset+prev.sizeInWim > s[i].res.rh.offset {
			return formatErr("the metadata resources of two images overlap at offset %d", s[i].res.rh.offset)
		}
	}
	return nil
}

// standardXMLField names the image XML elements Image has its own fields for.
var standardXMLField = map[string]bool{"NAME": true, "DESCRIPTION": true, "DISPLAYNAME": true, "DISPLAYDESCRIPTION": true,
	"FLAGS": true, "DIRCOUNT": true, "FILECOUNT": true, "TOTALBYTES": true, "HARDLINKBYTES": true,
	"CREATIONTIME": true, "LASTMODIFICATIONTIME": true}

func (img *Image) setXML(n *xmlNode) {
	img.xml = n
	img.Name = n.text("NAME")
	img.Description = n.text("DESCRIPTION")
	img.DisplayName = n.text("DISPLAYNAME")
	img.DisplayDescription = n.text("DISPLAYDESCRIPTION")
	img.Flags = n.text("FLAGS")
	img.DirCount = n.uint("DIRCOUNT")
	img.FileCount = n.uint("FILECOUNT")
	img.TotalBytes = n.uint("TOTALBYTES")
	img.HardLinkBytes = n.uint("HARDLINKBYTES")
	img.CreationTime = n.time("CREATIONTIME")
	img.ModTime = n.time("LASTMODIFICATIONTIME")
	img.Fields = map[string]string{}
	known := standardXMLField
	var walk func(prefix string, n *xmlNode)
	walk = func(prefix string, n *xmlNode) {
		for _, c := range n.Nodes {
			k := prefix + c.XMLName.Local
			if prefix == "" && known[k] {
				continue
			}
			if len(c.Nodes) == 0 {
				img.Fields[k] = strings.TrimSpace(c.Text)
			} else {
				walk(k+"/", c)
			}
		}
	}
	walk("", n)
}

// OpenReader opens a WIM file. If it is the first part of a split WIM
// (x.swm), the other parts x2.swm, x3.swm, ... next to it are opened too.
func OpenReader(name string) (*ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	// openPart's and newReader's errors name the file already.
	p, err := openPart(f, fi.Size(), name)
	if err != nil {
		f.Close()
		return nil, err
	}
	if p.hdr.totalParts == 1 {
		r, err := newReader([]*part{p})
		if err != nil {
			f.Close()
			return nil, err
		}
		return &ReadCloser{Reader: *r, files: []*os.File{f}}, nil
	}
	f.Close()
	if p.hdr.partNumber != 1 {
		return nil, fmt.Errorf("%w: %s is part %d of a split WIM; open part 1", ErrUnsupported, name, p.hdr.partNumber)
	}
	names := []string{name}
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 2; i <= int(p.hdr.totalParts); i++ {
		names = append(names, fmt.Sprintf("%s%d%s", base, i, ext))
	}
	return OpenSplit(names)
}

// OpenSplit opens all parts of a split WIM.
func OpenSplit(names []string) (*ReadCloser, error) {
	rc := &ReadCloser{}
	var parts []SplitPart
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			rc.Close()
			return nil, err
		}
		rc.files = append(rc.files, f)
		fi, err := f.Stat()
		if err != nil {
			rc.Close()
			return nil, err
		}
		parts = append(parts, SplitPart{R: f, Size: fi.Size(), Name: n})
	}
	r, err := NewSplitReader(parts)
	if err != nil {
		rc.Close()
		return nil, err
	}
	rc.Reader = *r
	return rc, nil
}

// Info returns the header facts.
func (r *Reader) Info() Info {
	h := r.hdr
	var size int64
	for _, p := range r.parts {
		size += p.size
	}
	return Info{
		Version:      h.version,
		Flags:        h.flags,
		Compression:  r.parts[0].comp,
		ChunkSize:    int(h.chunkSize),
		GUID:         h.guid,
		PartNumber:   int(h.partNumber),
		TotalParts:   int(h.totalParts),
		ImageCount:   len(r.images),
		BootIndex:    int(h.bootIndex),
		HasIntegrity: h.integrity.offset != 0 && h.integrity.sizeInWim != 0,
		RPFix:        h.flags&hdrFlagRPFix != 0,
		Size:         size,
		XML:          r.xmlText,
	}
}

// Images returns the images in index order.
func (r *Reader) Images() []*Image { return r.images }

// Image returns the image with the 1-based index, or the image whose name
// is name when index is 0 (see FindImage).
func (r *Reader) Image(index int) (*Image, error) {
	if index < 1 || index > len(r.images) {
		return nil, fmt.Errorf("%w: image %d (the WIM has %d)", ErrNotFound, index, len(r.images))
	}
	return r.images[index-1], nil
}

// FindImage accepts a 1-based index or an image name, as wimlib-imagex does.
// A name that several images carry (a WIM written by a tool that allowed
// it) is refused with ErrDuplicateName rather than resolved to one of them.
func (r *Reader) FindImage(s string) (*Image, error) {
	var idx int
	if _, err := fmt.Sscanf(s, "%d", &idx); err == nil && fmt.Sprint(idx) == s {
		return r.Image(idx)
	}
	var found []*Image
	for _, img := range r.images {
		if s != "" && img.Name == s {
			found = append(found, img)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: no image named %q", ErrNotFound, s)
	case 1:
		return found[0], nil
	}
	idxs := make([]string, len(found))
	for i, img := range found {
		idxs[i] = fmt.Sprint(img.Index)
	}
	return nil, fmt.Errorf("%w: images %s are all named %q; select one by index", ErrDuplicateName, strings.Join(idxs, ", "), s)
}

// Root parses the image's metadata resource (once) and returns the root
// directory.
func (img *Image) Root() (*File, error) {
	img.once.Do(func() { img.err = img.load() })
	return img.root, img.err
}

func (img *Image) load() error {
	m := img.meta
	// Like wimlib, refuse metadata that decompresses to absurdly more than
	// the file holds: a fuzzed header must not allocate gigabytes.
	if m.size/512 > m.res.rh.sizeInWim || m.size > maxMetadataSize {
		return formatErr("image %d: metadata resource of %d bytes is implausible", img.Index, m.size)
	}
	buf, err := m.res.readAll(maxMetadataSize)
	if err != nil {
		return fmt.Errorf("wim: image %d metadata: %w", img.Index, err)
	}
	if sha1Sum(buf) != m.hash {
		return fmt.Errorf("%w: image %d metadata resource", ErrChecksum, img.Index)
	}
	pm, err := parseMetadata(buf, img)
	if err != nil {
		return fmt.Errorf("wim: image %d metadata: %w", img.Index, err)
	}
	img.security = pm.security
	img.root = pm.root
	return img.resolve(pm.root)
}

// resolve links files to their blobs and reads symlink targets (each
// reparse blob once, however many links share it).
func (img *Image) resolve(root *File) error {
	var firstErr error
	type linkKey struct {
		b   *blob
		tag uint32
	}
	targets := map[linkKey]string{}
	var walk func(f *File)
	walk = func(f *File) {
		if f.Hash != zeroHash {
			f.data = img.r.blob(f.Hash)
			if f.data != nil {
				f.Size = f.data.size
			}
		}
		for i := range f.Streams {
			s := &f.Streams[i]
			if s.Hash != zeroHash {
				s.b = img.r.blob(s.Hash)
				if s.b != nil {
					s.Size = s.b.size
				}
			}
		}
		if f.Attributes&AttrReparsePoint != 0 && f.reparseHash != zeroHash {
			f.reparse = img.r.blob(f.reparseHash)
			if f.ReparseTag == ReparseTagSymlink || f.ReparseTag == ReparseTagMountPoint {
				k := linkKey{f.reparse, f.ReparseTag}
				if t, ok := targets[k]; ok && k.b != nil {
					f.LinkTarget = t
				} else if err := f.readLinkTarget(); err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					targets[k] = f.LinkTarget
				}
			}
		}
		for _, c := range f.Children {
			walk(c)
		}
	}
	walk(root)
	return firstErr
}

func (f *File) readLinkTarget() error {
	if f.reparse == nil {
		return fmt.Errorf("%w: %s: reparse data %x missing from the blob table", ErrFormat, f.Path(), f.reparseHash)
	}
	if f.reparse.size > maxReparseSize {
		return formatErr("%s: reparse data of %d bytes", f.Path(), f.reparse.size)
	}
	rc, err := newBlobReader(f.reparse, f.Path())
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	t, err := parseLinkReparse(f.ReparseTag, data)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path(), err)
	}
	f.LinkTarget = t
	return nil
}

func (r *Reader) blob(h [20]byte) *blob {
	if b, ok := r.blobs[h]; ok {
		return b
	}
	return nil
}

// SkipDir can be returned by a Walk callback to skip a directory's children.
var SkipDir = errors.New("skip this directory")

// Walk calls fn for every file of the image in depth-first order, parents
// before children, with paths like "/etc/passwd" ("/" for the root).
func (img *Image) Walk(fn func(path string, f *File) error) error {
	root, err := img.Root()
	if err != nil {
		return err
	}
	var walk func(p string, f *File) error
	walk = func(p string, f *File) error {
		if err := fn(p, f); err != nil {
			if err == SkipDir {
				return nil
			}
			return err
		}
		for _, c := range f.Children {
			cp := p + "/" + c.Name
			if p == "/" {
				cp = "/" + c.Name
			}
			if err := walk(cp, c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("/", root)
}

// Lookup returns the file at path ("/a/b" or "a/b").
func (img *Image) Lookup(path string) (*File, error) {
	f, err := img.Root()
	if err != nil {
		return nil, err
	}
	for _, comp := range strings.Split(path, "/") {
		if comp == "" {
			continue
		}
		c := f.Child(comp)
		if c == nil {
			return nil, fmt.Errorf("%w: %s in image %d", ErrNotFound, path, img.Index)
		}
		f = c
	}
	return f, nil
}
