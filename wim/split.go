package wim

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SplitPartName returns the name of part n (1-based) of a split WIM whose
// first part is first: "x.swm" -> "x.swm", "x2.swm", "x3.swm", ...
func SplitPartName(first string, n int) string {
	if n == 1 {
		return first
	}
	ext := filepath.Ext(first)
	return fmt.Sprintf("%s%d%s", strings.TrimSuffix(first, ext), n, ext)
}

// Split writes the (non-split) WIM src as a split WIM whose parts are at
// most maxPartSize bytes (e.g. 4095 MiB for FAT32), except that a single
// resource larger than that gets a part of its own, as wimlib does. Part 1
// holds the metadata of all images. Resources are copied unchanged. It
// returns the names of the parts written (first, then first with 2, 3, ...
// before the extension). The parts are written under temporary names and
// renamed when all are complete, part 1 last, so that a split set is never
// found incomplete; on failure, or when ctx is cancelled, they are removed.
func Split(ctx context.Context, src, first string, maxPartSize int64) ([]string, error) {
	rc, err := OpenReader(src)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r := &rc.Reader
	if len(r.parts) != 1 {
		return nil, fmt.Errorf("wim: %s is already split", src)
	}
	p0 := r.parts[0]
	xmlLen := int64(len(encodeXMLData(r.xmlText))) + 64
	overhead := int64(headerSize) + xmlLen
	type partPlan struct {
		metas []*blob
		blobs []*blob
		size  int64
	}
	var metas []*blob
	for _, img := range r.images {
		metas = append(metas, img.meta)
	}
	blobs := make([]*blob, 0, len(r.blobs))
	for _, b := range r.blobs {
		if b.solid {
			return nil, unsupportedErr("splitting a WIM with solid resources")
		}
		blobs = append(blobs, b)
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].res.rh.offset < blobs[j].res.rh.offset })
	plans := []*partPlan{{metas: metas, size: overhead}}
	for _, m := range metas {
		plans[0].size += m.res.rh.sizeInWim + blobEntrySize
	}
	for _, b := range blobs {
		cur := plans[len(plans)-1]
		need := b.res.rh.sizeInWim + blobEntrySize
		if cur.size+need > maxPartSize && (len(cur.blobs) > 0 || len(cur.metas) > 0) {
			cur = &partPlan{size: overhead}
			plans = append(plans, cur)
		}
		cur.blobs = append(cur.blobs, b)
		cur.size += need
	}
	if len(plans) > 0xffff {
		return nil, fmt.Errorf("wim: splitting into %d parts is too many", len(plans))
	}
	var guid [16]byte
	if _, err := rand.Read(guid[:]); err != nil {
		return nil, err
	}
	var names []string
	var temps []*os.File
	defer func() {
		for _, f := range temps {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	for i, pl := range plans {
		name := SplitPartName(first, i+1)
		names = append(names, name)
		hdr := *p0.hdr
		hdr.guid = guid
		hdr.partNumber = uint16(i + 1)
		hdr.totalParts = uint16(len(plans))
		hdr.flags = hdr.flags&^hdrFlagWriteInProgres | hdrFlagSpanned
		f, err := createTemp(name)
		if err != nil {
			return nil, err
		}
		temps = append(temps, f)
		if err := writePart(ctx, f, &hdr, pl.metas, pl.blobs, r.xmlRoot); err != nil {
			return nil, err
		}
	}
	// Part 1 names the set: it goes in place last.
	for i := len(temps) - 1; i >= 0; i-- {
		if err := commitTemp(temps[i], names[i]); err != nil {
			for _, n := range names[i+1:] {
				os.Remove(n)
			}
			return nil, err
		}
		temps = temps[:i]
	}
	return names, nil
}

// writePart writes one part to f, header last.
func writePart(ctx context.Context, f *os.File, hdr *header, metas, blobs []*blob, xmlRoot *xmlNode) error {
	out := newOutFile(f, 0)
	ph := *hdr
	ph.flags |= hdrFlagWriteInProgres
	out.Write(ph.bytes())
	var bt []byte
	copyRes := func(b *blob, metadata bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rh := b.res.rh
		start := out.offset()
		buf := make([]byte, 1<<20)
		for off := int64(0); off < rh.sizeInWim; {
			n := min(int64(len(buf)), rh.sizeInWim-off)
			if _, err := b.res.p.r.ReadAt(buf[:n], rh.offset+off); err != nil {
				return fmt.Errorf("wim: copying blob %x: %w", b.hash, noEOF(err))
			}
			out.Write(buf[:n])
			off += n
		}
		nrh := rh
		nrh.offset = start
		nrh.flags &= reshdrFlagCompressed
		if metadata {
			nrh.flags |= reshdrFlagMetadata
		}
		bt = appendBlobEntry(bt, &blob{hash: b.hash, partNum: hdr.partNumber, refcnt: b.refcnt}, nrh)
		return nil
	}
	hdr.bootMeta = reshdr{}
	for i, m := range metas {
		start := out.offset()
		if err := copyRes(m, true); err != nil {
			return err
		}
		if uint32(i+1) == hdr.bootIndex {
			hdr.bootMeta = m.res.rh
			hdr.bootMeta.offset = start
		}
	}
	for _, b := range blobs {
		if err := copyRes(b, false); err != nil {
			return err
		}
	}
	btOff := out.offset()
	out.Write(bt)
	hdr.blobTable = reshdr{sizeInWim: int64(len(bt)), flags: reshdrFlagMetadata, offset: btOff, uncompSize: int64(len(bt))}
	xmlOff := out.offset()
	root := xmlRoot.clone()
	root.set("TOTALBYTES", fmt.Sprint(xmlOff))
	var b bytesBuffer
	root.write(&b.Buffer)
	xd := encodeXMLData(b.String())
	out.Write(xd)
	hdr.xml = reshdr{sizeInWim: int64(len(xd)), flags: reshdrFlagMetadata, offset: xmlOff, uncompSize: int64(len(xd))}
	hdr.integrity = reshdr{}
	if err := out.patch(hdr.bytes(), 0); err != nil {
		return err
	}
	return out.flush()
}
