package wim

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
)

// ExportImage copies an image of another WIM (or of the WIM being appended
// to) into w, with all the data it references that w does not hold yet.
// Resources are copied without recompression when both WIMs use the same
// compression and chunk size; otherwise they are decompressed (checking
// SHA-1) and compressed again. The metadata resource is copied unchanged,
// so security descriptors, named streams, short names and unknown fields
// survive. Non-empty opts.Name/Description replace the image's. Like
// AddImage, any error (and cancelling ctx) fails the Writer.
func (w *Writer) ExportImage(ctx context.Context, img *Image, opts ImageOptions) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("wim: ExportImage after Close")
	}
	if err := w.exportImage(ctx, img, opts); err != nil {
		return w.fail(err)
	}
	return nil
}

func (w *Writer) exportImage(ctx context.Context, img *Image, opts ImageOptions) error {
	if err := w.nameFree(firstNonEmpty(opts.Name, img.Name)); err != nil {
		return err
	}
	root, err := img.Root()
	if err != nil {
		return err
	}
	// Every blob the image references.
	var need []*blob
	seen := map[[20]byte]bool{}
	add := func(path string, h [20]byte, b *blob) error {
		if h == zeroHash || seen[h] || w.blobs[h] != nil {
			return nil
		}
		if b == nil {
			return fmt.Errorf("%w: %s: data %x is not in the blob table", ErrFormat, path, h)
		}
		seen[h] = true
		need = append(need, b)
		return nil
	}
	err = img.Walk(func(path string, f *File) error {
		if err := add(path, f.Hash, f.data); err != nil {
			return err
		}
		if f.Attributes&AttrReparsePoint != 0 {
			b := f.reparse
			if b == nil {
				b = img.r.blob(f.reparseHash)
			}
			if err := add(path, f.reparseHash, b); err != nil {
				return err
			}
		}
		for _, s := range f.Streams {
			if err := add(path+":"+s.Name, s.Hash, s.b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(need, func(i, j int) bool {
		if need[i].partNum != need[j].partNum {
			return need[i].partNum < need[j].partNum
		}
		return need[i].res.rh.offset < need[j].res.rh.offset
	})
	var total, done int64
	for _, b := range need {
		total += b.size
	}
	progress := func(n int64) {
		if opts.Progress != nil {
			done += n
			opts.Progress(min(done, total), total)
		}
	}
	progress(0)
	var recompress []*blobSource
	for _, b := range need {
		if b.solid {
			return unsupportedErr("image %d: blob %x is in a solid resource", img.Index, b.hash)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.canRawCopy(b.res) {
			if err := w.rawCopy(b); err != nil {
				return err
			}
			progress(b.size)
			continue
		}
		recompress = append(recompress, &blobSource{size: b.size, other: &otherSource{blob: b, hash: b.hash, hashKnown: true}})
	}
	if err := w.writeBlobs(ctx, recompress, progress); err != nil {
		return err
	}
	meta, err := img.meta.res.readAll(maxMetadataSize)
	if err != nil {
		return err
	}
	if sha1Sum(meta) != img.meta.hash {
		return fmt.Errorf("%w: image %d metadata resource", ErrChecksum, img.Index)
	}
	x := img.xml.clone()
	x.set("NAME", firstNonEmpty(opts.Name, img.Name))
	if opts.Description != "" {
		x.set("DESCRIPTION", opts.Description)
	}
	return w.addImage(ctx, root, memSource(meta, true, nil), x)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (w *Writer) canRawCopy(res resource) bool {
	if res.rh.flags&reshdrFlagCompressed == 0 {
		return true
	}
	return res.p.comp == w.opts.Compression && res.p.chunkSize == w.opts.ChunkSize
}

// rawCopy copies a resource byte for byte.
func (w *Writer) rawCopy(b *blob) error {
	rh := b.res.rh
	start := w.out.offset()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < rh.sizeInWim; {
		n := min(int64(len(buf)), rh.sizeInWim-off)
		if _, err := b.res.p.r.ReadAt(buf[:n], rh.offset+off); err != nil {
			return fmt.Errorf("wim: copying blob %x: %w", b.hash, noEOF(err))
		}
		if _, err := w.out.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
	nrh := rh
	nrh.offset = start
	nrh.flags &= reshdrFlagCompressed
	ob := &outBlob{hash: b.hash, size: b.size, rh: nrh}
	w.blobs[b.hash] = ob
	w.order = append(w.order, ob)
	w.sizes[b.size] = true
	return nil
}

// OpenAppend opens an existing (non-split) WIM to add images to it with
// AddImage or ExportImage. The WIM keeps its compression and chunk size
// (opts.Compression and opts.ChunkSize are ignored); an integrity table is
// written if opts.Integrity is set or the WIM had one. New data is written
// after the existing end of the file and the header is replaced last, so an
// interrupted append leaves the original WIM valid; a failed Close truncates
// the file back to its original size.
func OpenAppend(name string, opts WriterOptions) (*Writer, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	w, err := openAppend(f, name, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func openAppend(f *os.File, name string, opts WriterOptions) (*Writer, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	r, err := NewReader(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	info := r.Info()
	opts.Compression = info.Compression
	opts.ChunkSize = info.ChunkSize
	if opts.Compression == CompressionNone {
		opts.ChunkSize = 0
	}
	opts.Integrity = opts.Integrity || info.HasIntegrity
	if err := opts.normalize(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return nil, err
	}
	w := &Writer{
		opts:     opts,
		ws:       f,
		out:      newOutFile(f, size),
		file:     f,
		blobs:    map[[20]byte]*outBlob{},
		sizes:    map[int64]bool{},
		xml:      r.xmlRoot.clone(),
		base:     r,
		origSize: size,
	}
	w.hdr = *r.hdr
	w.hdr.flags &^= hdrFlagWriteInProgres
	var old []*blob
	for _, b := range r.blobs {
		old = append(old, b)
	}
	sort.Slice(old, func(i, j int) bool { return old[i].res.rh.offset < old[j].res.rh.offset })
	for _, b := range old {
		ob := &outBlob{hash: b.hash, size: b.size, rh: b.res.rh, refcnt: b.refcnt}
		w.blobs[b.hash] = ob
		w.order = append(w.order, ob)
		w.sizes[b.size] = true
	}
	for _, img := range r.images {
		m := img.meta
		w.images = append(w.images, &outImage{
			meta: &outBlob{hash: m.hash, size: m.size, rh: m.res.rh, refcnt: 1},
			xml:  img.xml.clone(),
		})
	}
	return w, nil
}

// Append captures dir as a new image at the end of the WIM file path (see
// OpenAppend for what is kept and how failures are handled).
func Append(ctx context.Context, path, dir string, wopts WriterOptions, iopts ImageOptions) error {
	w, err := OpenAppend(path, wopts)
	if err != nil {
		return err
	}
	if err := w.AddImage(ctx, dir, iopts); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// Export copies img into the WIM file dest: appended if dest exists (its
// compression is kept; see OpenAppend for how failures are handled),
// otherwise a new WIM with wopts (see Create: nothing is left at dest if the
// export fails).
func Export(ctx context.Context, img *Image, dest string, wopts WriterOptions, iopts ImageOptions) error {
	var w *Writer
	var err error
	if _, serr := os.Stat(dest); serr == nil {
		w, err = OpenAppend(dest, wopts)
	} else {
		w, err = Create(dest, wopts)
	}
	if err != nil {
		return err
	}
	if err := w.ExportImage(ctx, img, iopts); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
