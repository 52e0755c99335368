package wim

import (
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// CaptureAction is what an ImageOptions.Filter decides for one path.
type CaptureAction int

const (
	// CaptureKeep stores the path as it is on disk.
	CaptureKeep CaptureAction = iota
	// CaptureOmit leaves the path (a directory with everything below it)
	// out of the image.
	CaptureOmit
	// CaptureEmpty stores a regular file with its metadata but no content,
	// as if it had been truncated; it is taken out of any hard-link group.
	// On anything but a regular file it acts like CaptureKeep.
	CaptureEmpty
)

// ImageOptions describes an image being added to a Writer.
type ImageOptions struct {
	Name        string
	Description string
	// Config excludes paths from capture (nil: capture everything).
	Config *CaptureConfig
	// NoUnixData leaves out owners, modes, device numbers and xattrs, as
	// wimlib-imagex does without --unix-data; device nodes, FIFOs and
	// sockets are then skipped.
	NoUnixData bool
	// Progress, if set, is called with bytes of file data stored so far and
	// the total to store.
	Progress func(done, total int64)
	// Filter, if set, is called for every path below the root that Config
	// does not exclude ("/etc/machine-id") with its type and permission
	// bits, and decides what the image holds there. It changes only what
	// is stored, never the source tree: a capture can leave out or empty
	// files of a read-only source (e.g. to generalize a system).
	Filter func(path string, mode fs.FileMode) CaptureAction
	// Fields are extra simple elements of the image's XML, name -> text
	// ("MININT_OS" -> "Debian"); "A/B" nests B inside A, as Image.Fields
	// reads them back. Names must be XML names and not the standard
	// fields (NAME, DIRCOUNT, ...). Used by AddImage only.
	Fields map[string]string
}

// checkFields refuses extra XML fields that would clash with the standard
// ones or not be well-formed XML.
func checkFields(fields map[string]string) error {
	for k := range fields {
		parts := strings.Split(k, "/")
		if standardXMLField[parts[0]] {
			return fmt.Errorf("wim: XML field %q is a standard field", k)
		}
		for _, p := range parts {
			if !validXMLName(p) {
				return fmt.Errorf("wim: XML field %q: %q is not a valid element name", k, p)
			}
		}
	}
	return nil
}

func validXMLName(s string) bool {
	if s == "" || strings.HasPrefix(strings.ToLower(s), "xml") {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z':
		case i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

// addFields sets the extra fields in sorted order, so equal options give
// equal XML.
func addFields(n *xmlNode, fields map[string]string) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts := strings.Split(k, "/")
		cur := n
		for _, p := range parts[:len(parts)-1] {
			c := cur.child(p)
			if c == nil {
				c = &xmlNode{}
				c.XMLName.Local = p
				cur.Nodes = append(cur.Nodes, c)
			}
			cur = c
		}
		cur.set(parts[len(parts)-1], fields[k])
	}
}

// AddImage captures the directory tree at dir as a new image. Identical
// data is stored once (by SHA-1), also across images; chunks are compressed
// on opts.Threads goroutines. Any error, and cancelling ctx, fails the
// Writer (Close returns the error and removes a new file or restores an
// appended one).
func (w *Writer) AddImage(ctx context.Context, dir string, opts ImageOptions) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("wim: AddImage after Close")
	}
	if err := checkFields(opts.Fields); err != nil {
		return w.fail(err)
	}
	if err := w.nameFree(opts.Name); err != nil {
		return w.fail(err)
	}
	sc := &scanner{unix: !opts.NoUnixData, cfg: opts.Config, filter: opts.Filter, links: map[devIno]*File{}, skip: fileDevIno(w.file)}
	root, err := sc.scanRoot(ctx, dir)
	if err != nil {
		// A failed AddImage fails the Writer: Close then reports the
		// error and removes (or, appending, restores) the file.
		return w.fail(err)
	}
	if err := w.storeTree(ctx, root, opts); err != nil {
		return w.fail(err)
	}
	x := imageXML(root, opts.Name, opts.Description)
	addFields(x, opts.Fields)
	return w.addImage(ctx, root, metadataSource(root, nil), x)
}

// nameFree refuses a name that an image of the WIM already has, as wimlib
// does: images are selected by name, so a name must pick one. Unnamed
// images may repeat.
func (w *Writer) nameFree(name string) error {
	if name == "" {
		return nil
	}
	for i, img := range w.images {
		if img.xml.text("NAME") == name {
			return fmt.Errorf("%w: image %d is already named %q", ErrDuplicateName, i+1, name)
		}
	}
	return nil
}

type devIno struct{ dev, ino uint64 }

// storeTree writes every blob of a scanned tree (reparse data and file
// contents) that the WIM does not hold yet, and fills in the hashes.
func (w *Writer) storeTree(ctx context.Context, root *File, opts ImageOptions) error {
	// One file per hard-link group is read; reparse data is small and in
	// memory.
	var files []*File
	var srcs []*blobSource
	scheduled := map[[20]byte]bool{}
	seenGroup := map[uint64]bool{}
	walkTree(root, func(f *File) {
		if f.reparse != nil && f.src != nil && f.src.reparseData != nil {
			if h := f.reparseHash; w.blobs[h] == nil && !scheduled[h] {
				scheduled[h] = true
				s := memSource(f.src.reparseData, false, nil)
				s.other.hash, s.other.hashKnown = h, true
				srcs = append(srcs, s)
			}
		}
		if f.captured && f.Size > 0 && f.unixType() == unixRegular && !seenGroup[f.HardLinkGroup] {
			if f.HardLinkGroup != 0 {
				seenGroup[f.HardLinkGroup] = true
			}
			files = append(files, f)
		}
	})

	// Only files whose size occurs more than once (in this tree or in the
	// WIM already) can be duplicates: hash those first, in parallel, so
	// duplicates are never read twice or stored at all.
	count := map[int64]int{}
	for _, f := range files {
		count[f.Size]++
	}
	var cands []*File
	for _, f := range files {
		if count[f.Size] > 1 || w.sizes[f.Size] {
			cands = append(cands, f)
		}
	}
	count = nil
	if err := hashFiles(ctx, cands, w.opts.Threads); err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		known := f.Hash != zeroHash // hashed above
		if known {
			if w.blobs[f.Hash] != nil || scheduled[f.Hash] {
				continue
			}
			scheduled[f.Hash] = true
		}
		// The writer sets f.Hash once it is stored.
		srcs = append(srcs, &blobSource{size: f.Size, file: f})
		total += f.Size
	}
	var done int64
	var progress func(int64)
	if opts.Progress != nil {
		progress = func(n int64) {
			done += n
			opts.Progress(min(done, total), total)
		}
		opts.Progress(0, total)
	}
	if err := w.writeBlobs(ctx, srcs, progress); err != nil {
		return err
	}
	// The other names of a hard-linked file get its hash.
	group := map[uint64][20]byte{}
	for _, f := range files {
		if f.HardLinkGroup != 0 {
			group[f.HardLinkGroup] = f.Hash
		}
	}
	walkTree(root, func(f *File) {
		if h, ok := group[f.HardLinkGroup]; ok && f.HardLinkGroup != 0 && f.captured && f.unixType() == unixRegular && f.Size > 0 {
			f.Hash = h
		}
	})
	return nil
}

// walkTree calls fn for f and everything below it, parents first.
func walkTree(f *File, fn func(*File)) {
	fn(f)
	for _, c := range f.Children {
		walkTree(c, fn)
	}
}

// hashFiles computes the SHA-1 of files on threads goroutines.
func hashFiles(ctx context.Context, files []*File, threads int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(threads)
	bufs := sync.Pool{New: func() any { return new([256 << 10]byte) }}
	for _, f := range files {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			path := f.diskPath()
			r, err := openNoFollow(path)
			if err != nil {
				return err
			}
			defer r.Close()
			buf := bufs.Get().(*[256 << 10]byte)
			defer bufs.Put(buf)
			h := sha1.New()
			// Hide the file's WriteTo: io.CopyBuffer would use it and
			// allocate a fresh buffer for every file.
			n, err := io.CopyBuffer(h, struct{ io.Reader }{r}, buf[:])
			if err != nil {
				return fmt.Errorf("wim: reading %s: %w", path, err)
			}
			if n != f.Size {
				return fmt.Errorf("wim: %s changed size during capture", path)
			}
			h.Sum(f.Hash[:0])
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

func sortChildren(f *File) {
	sort.Slice(f.Children, func(i, j int) bool { return f.Children[i].Name < f.Children[j].Name })
}
