package wim

import (
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	dentrySize      = 102 // fixed part of an on-disk directory entry
	streamEntrySize = 38  // fixed part of an extra stream entry

	tagObjectID  = 0x00000001
	tagXattrs    = 0x00000002
	tagUnixData  = 0x337DD873
	tagXattrsOld = 0x337DD874
	// tagReparseLink is minint's extension: the hard link group of a
	// reparse point (a hard-linked symlink), which the dentry cannot hold
	// because the reparse tag occupies the group id field. Other readers
	// keep unknown tagged items and see separate symlinks.
	tagReparseLink = 0x6D6E7401
	maxDirDepth    = 16384
	maxXattrName   = 255
	maxXattrValue  = 65535
)

var zeroHash [20]byte

// parsedMetadata is the result of parsing a metadata resource.
type parsedMetadata struct {
	security [][]byte
	root     *File
}

func align8(n int64) int64 { return (n + 7) &^ 7 }

func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

func encodeUTF16(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// parseSecurity reads the security data block at the start of a metadata
// resource and returns the descriptors and the block's length.
func parseSecurity(buf []byte) ([][]byte, int64, error) {
	if len(buf) < 8 {
		return nil, 0, formatErr("metadata resource of %d bytes has no security data", len(buf))
	}
	total := align8(int64(binary.LittleEndian.Uint32(buf)))
	num := int64(binary.LittleEndian.Uint32(buf[4:]))
	if total == 0 {
		total = 8
	}
	if total > int64(len(buf)) {
		return nil, 0, formatErr("security data length %d exceeds metadata resource (%d bytes)", total, len(buf))
	}
	if 8+num*8 > total {
		return nil, 0, formatErr("%d security descriptors do not fit in %d bytes", num, total)
	}
	sds := make([][]byte, num)
	p := 8 + num*8
	for i := int64(0); i < num; i++ {
		sz := binary.LittleEndian.Uint64(buf[8+i*8:])
		if sz > uint64(total-p) {
			return nil, 0, formatErr("security descriptor %d (%d bytes) overflows the security data", i, sz)
		}
		sds[i] = append([]byte(nil), buf[p:p+int64(sz)]...)
		p += int64(sz)
	}
	return sds, total, nil
}

// parseMetadata parses an uncompressed metadata resource. Names are not
// validated here (Walk shows what is stored); Apply validates them.
func parseMetadata(buf []byte, img *Image) (*parsedMetadata, error) {
	sds, off, err := parseSecurity(buf)
	if err != nil {
		return nil, err
	}
	pm := &parsedMetadata{security: sds}
	root, next, err := parseDentry(buf, off)
	if err != nil {
		return nil, err
	}
	if root == nil {
		// wimlib treats a metadata resource without entries as an empty image.
		root = &File{Attributes: AttrDirectory, SecurityID: -1}
		pm.root = root
		root.img = img
		return pm, nil
	}
	if root.Attributes&AttrDirectory == 0 {
		return nil, formatErr("root of the image is not a directory (attributes 0x%x)", root.Attributes)
	}
	root.Name, root.ShortName = "", ""
	root.img = img
	pm.root = root
	t := &treeParser{buf: buf, img: img, used: make([]uint64, len(buf)/512+1)}
	if err := t.claim(off, next); err != nil {
		return nil, err
	}
	if err := t.children(root, 0, 0); err != nil {
		return nil, err
	}
	return pm, nil
}

// Limits on the directory tree, against metadata crafted to make the
// parsed tree (or the paths Walk builds) far larger than the resource.
const (
	// maxPathLen is Windows' longest path, in UTF-16 units.
	maxPathLen = 32767
	// maxPathsPerByte bounds the total length of all paths (UTF-16
	// units) by the size of the metadata resource: real trees stay below
	// 2 (a path is about as long as its entry), hostile deep trees of long
	// names would make a listing gigabytes long.
	maxPathsPerByte = 16
)

// treeParser reads the directory tree of a metadata resource. Every byte
// of the resource belongs to at most one directory entry: child lists that
// overlap or repeat (which would make the tree quadratic, or cyclic, in
// the resource's size) are refused, so the tree has at most one File per
// 104 bytes of metadata.
type treeParser struct {
	buf     []byte
	img     *Image
	used    []uint64 // bitmap of the 8-byte units that hold an entry
	pathSum int64    // total length of the paths so far
}

// claim marks the bytes [from, to) as one entry's, failing if any of them
// already belongs to another.
func (t *treeParser) claim(from, to int64) error {
	for u := from / 8; u <= (to-1)/8; u++ {
		w, b := u/64, uint64(1)<<(u%64)
		if t.used[w]&b != 0 {
			return formatErr("directory entry at %d overlaps another entry (directories share a child list)", from)
		}
		t.used[w] |= b
	}
	return nil
}

// children reads dir's child list (and theirs, depth first); pathLen is
// the length of dir's path in UTF-16 units.
func (t *treeParser) children(dir *File, depth, pathLen int) error {
	off := dir.subdirOffset
	if off == 0 {
		return nil
	}
	if depth >= maxDirDepth {
		return formatErr("directory tree deeper than %d at %q", maxDirDepth, dir.Path())
	}
	for {
		child, next, err := parseDentry(t.buf, off)
		if err != nil {
			return formatErr("in directory %q: %v", dir.Path(), err)
		}
		if child == nil {
			break
		}
		if err := t.claim(off, next); err != nil {
			return fmt.Errorf("in directory %q: %w", dir.Path(), err)
		}
		off = next
		child.Parent = dir
		child.img = t.img
		dir.Children = append(dir.Children, child)
		n := pathLen + 1 + utf16Len(child.Name)
		if n > maxPathLen {
			return formatErr("%q: path longer than %d characters", child.Path(), maxPathLen)
		}
		if t.pathSum += int64(n); t.pathSum > maxPathsPerByte*int64(len(t.buf)) {
			return formatErr("in directory %q: the paths of the image are %d times longer than its metadata (hostile?)", dir.Path(), maxPathsPerByte)
		}
		if child.subdirOffset != 0 && isDirAttr(child.Attributes) {
			if err := t.children(child, depth+1, n); err != nil {
				return err
			}
		}
		child.subdirOffset = 0
	}
	return nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// parseDentry reads one directory entry and its extra stream entries. A nil
// File means end of directory.
func parseDentry(buf []byte, off int64) (*File, int64, error) {
	le := binary.LittleEndian
	if off < 0 || off+8 > int64(len(buf)) || off+8 < off {
		return nil, 0, formatErr("directory entry at %d is outside the metadata resource (%d bytes)", off, len(buf))
	}
	length := align8(int64(le.Uint64(buf[off:])))
	if length <= 8 {
		return nil, off + 8, nil
	}
	if length < dentrySize || off+length > int64(len(buf)) || off+length < off {
		return nil, 0, formatErr("directory entry at %d has bad length %d", off, length)
	}
	d := buf[off : off+length]
	f := &File{
		Attributes:   le.Uint32(d[8:]),
		SecurityID:   int32(le.Uint32(d[12:])),
		subdirOffset: int64(le.Uint64(d[16:])),
		CreationTime: Filetime(le.Uint64(d[40:])),
		AccessTime:   Filetime(le.Uint64(d[48:])),
		ModTime:      Filetime(le.Uint64(d[56:])),
		unknown54:    le.Uint32(d[84:]),
	}
	var mainHash [20]byte
	copy(mainHash[:], d[64:84])
	if f.Attributes&AttrReparsePoint != 0 {
		f.ReparseTag = le.Uint32(d[88:])
		f.rpReserved = le.Uint16(d[92:])
		f.ReparseFlags = le.Uint16(d[94:])
	} else {
		f.HardLinkGroup = le.Uint64(d[88:])
	}
	numExtra := int(le.Uint16(d[96:]))
	shortLen := int64(le.Uint16(d[98:]))
	nameLen := int64(le.Uint16(d[100:]))
	if shortLen&1 != 0 || nameLen&1 != 0 {
		return nil, 0, formatErr("directory entry at %d has odd name length", off)
	}
	need := int64(dentrySize)
	if nameLen > 0 {
		need += nameLen + 2
	}
	if shortLen > 0 {
		need += shortLen + 2
	}
	if need > length {
		return nil, 0, formatErr("directory entry at %d: names (%d bytes) do not fit in length %d", off, need, length)
	}
	p := int64(dentrySize)
	if nameLen > 0 {
		f.Name = decodeUTF16(d[p : p+nameLen])
		p += nameLen + 2
	}
	if shortLen > 0 {
		f.ShortName = decodeUTF16(d[p : p+shortLen])
		p += shortLen + 2
	}
	p = align8(off+p) - off
	if p < length {
		if err := f.parseTaggedItems(d[p:length]); err != nil {
			return nil, 0, formatErr("directory entry %q at %d: %v", f.Name, off, err)
		}
	}
	next := off + length

	// Streams: main_hash first, then the extra entries (see wimlib's
	// assign_stream_types_unencrypted).
	type rawStream struct {
		name string
		hash [20]byte
	}
	streams := []rawStream{{hash: mainHash}}
	for i := 0; i < numExtra; i++ {
		if next+streamEntrySize > int64(len(buf)) {
			return nil, 0, formatErr("stream entry %d of %q is outside the metadata resource", i, f.Name)
		}
		e := buf[next:]
		sl := align8(int64(le.Uint64(e)))
		if sl < streamEntrySize || next+sl > int64(len(buf)) || next+sl < next {
			return nil, 0, formatErr("stream entry %d of %q has bad length %d", i, f.Name, sl)
		}
		var rs rawStream
		copy(rs.hash[:], e[16:36])
		nl := int64(le.Uint16(e[36:]))
		if nl > 0 {
			if nl&1 != 0 || streamEntrySize+nl > sl {
				return nil, 0, formatErr("stream entry %d of %q has bad name length %d", i, f.Name, nl)
			}
			rs.name = decodeUTF16(e[streamEntrySize : streamEntrySize+nl])
			if rs.name == "" {
				rs.name = "\x00"
			}
		}
		streams = append(streams, rs)
		next += sl
	}
	foundReparse, foundData := false, false
	for i, s := range streams {
		switch {
		case s.name != "":
			f.Streams = append(f.Streams, Stream{Name: s.name, Hash: s.hash})
		case i != 0 || s.hash != zeroHash:
			if f.Attributes&AttrReparsePoint != 0 && !foundReparse {
				foundReparse = true
				f.reparseHash = s.hash
			} else if !foundData {
				foundData = true
				f.Hash = s.hash
			}
		}
	}
	return f, next, nil
}

func (f *File) parseTaggedItems(b []byte) error {
	le := binary.LittleEndian
	for len(b) >= 8 {
		tag := le.Uint32(b)
		n := int64(le.Uint32(b[4:]))
		full := 8 + align8(n)
		if full > int64(len(b)) {
			// wimlib stops at a corrupt item list; so do we, keeping what
			// was valid.
			return nil
		}
		data := b[8 : 8+n]
		switch {
		case tag == tagUnixData && n >= 16 && !f.HasUnixData:
			f.HasUnixData = true
			f.UID = le.Uint32(data)
			f.GID = le.Uint32(data[4:])
			f.Mode = le.Uint32(data[8:])
			f.Rdev = le.Uint32(data[12:])
		case tag == tagReparseLink && n >= 8 && f.Attributes&AttrReparsePoint != 0:
			f.HardLinkGroup = le.Uint64(data)
		case tag == tagXattrs && f.Xattrs == nil:
			xs, err := parseXattrs(data)
			if err != nil {
				return err
			}
			f.Xattrs = xs
		case tag == tagXattrsOld && f.Xattrs == nil:
			xs, err := parseOldXattrs(data)
			if err != nil {
				return err
			}
			f.Xattrs = xs
		default:
			f.extra = append(f.extra, b[:full]...)
		}
		b = b[full:]
	}
	return nil
}

func parseXattrs(b []byte) ([]Xattr, error) {
	var xs []Xattr
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, formatErr("truncated xattr entry")
		}
		vl := int(binary.LittleEndian.Uint16(b))
		nl := int(b[2])
		flags := b[3]
		if nl == 0 || 4+nl+1+vl > len(b) || b[4+nl] != 0 {
			return nil, formatErr("malformed xattr entry")
		}
		name := b[4 : 4+nl]
		for _, c := range name {
			if c == 0 {
				return nil, formatErr("xattr name contains NUL")
			}
		}
		xs = append(xs, Xattr{Name: string(name), Value: append([]byte{}, b[5+nl:5+nl+vl]...), Flags: flags})
		b = b[5+nl+vl:]
	}
	return xs, nil
}

func parseOldXattrs(b []byte) ([]Xattr, error) {
	var xs []Xattr
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, formatErr("truncated xattr entry")
		}
		nl := int64(binary.LittleEndian.Uint16(b))
		vl := int64(binary.LittleEndian.Uint32(b[4:]))
		sz := (8 + nl + vl + 3) &^ 3
		if nl == 0 || nl > maxXattrName || vl > maxXattrValue || sz > int64(len(b)) {
			return nil, formatErr("malformed xattr entry")
		}
		xs = append(xs, Xattr{Name: string(b[8 : 8+nl]), Value: append([]byte{}, b[8+nl:8+nl+vl]...)})
		b = b[sz:]
	}
	return xs, nil
}

// --- serialisation ---

func (f *File) taggedItems() []byte {
	var out []byte
	put := func(tag uint32, data []byte) {
		var h [8]byte
		binary.LittleEndian.PutUint32(h[:], tag)
		binary.LittleEndian.PutUint32(h[4:], uint32(len(data)))
		out = append(out, h[:]...)
		out = append(out, data...)
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
	}
	if f.HasUnixData {
		var u [16]byte
		binary.LittleEndian.PutUint32(u[:], f.UID)
		binary.LittleEndian.PutUint32(u[4:], f.GID)
		binary.LittleEndian.PutUint32(u[8:], f.Mode)
		binary.LittleEndian.PutUint32(u[12:], f.Rdev)
		put(tagUnixData, u[:])
	}
	if len(f.Xattrs) > 0 {
		var x []byte
		for _, a := range f.Xattrs {
			var h [4]byte
			binary.LittleEndian.PutUint16(h[:], uint16(len(a.Value)))
			h[2] = uint8(len(a.Name))
			h[3] = a.Flags
			x = append(x, h[:]...)
			x = append(x, a.Name...)
			x = append(x, 0)
			x = append(x, a.Value...)
		}
		put(tagXattrs, x)
	}
	if f.Attributes&AttrReparsePoint != 0 && f.HardLinkGroup != 0 {
		var g [8]byte
		binary.LittleEndian.PutUint64(g[:], f.HardLinkGroup)
		put(tagReparseLink, g[:])
	}
	out = append(out, f.extra...)
	return out
}

// dentryStreams returns the main hash and extra stream entries following
// wimlib's DISM-compatible rules (write_dentry_streams).
func (f *File) dentryStreams() (main [20]byte, extra []rawStreamOut) {
	var unnamed [][20]byte
	if f.Attributes&AttrReparsePoint != 0 {
		unnamed = append(unnamed, f.reparseHash)
	}
	if f.Attributes&AttrDirectory == 0 {
		unnamed = append(unnamed, f.Hash)
	}
	if len(unnamed) <= 1 && len(f.Streams) == 0 {
		if len(unnamed) == 1 {
			main = unnamed[0]
		}
		return main, nil
	}
	for _, h := range unnamed {
		extra = append(extra, rawStreamOut{hash: h})
	}
	for _, s := range f.Streams {
		extra = append(extra, rawStreamOut{name: encodeUTF16(s.Name), hash: s.Hash})
	}
	return main, extra
}

type rawStreamOut struct {
	name []byte
	hash [20]byte
}

func (f *File) encodedNames() (name, short []byte) {
	return encodeUTF16(f.Name), encodeUTF16(f.ShortName)
}

func (f *File) dentryLen() int64 {
	name, short := f.encodedNames()
	n := int64(dentrySize)
	if len(name) > 0 {
		n += int64(len(name)) + 2
	}
	if len(short) > 0 {
		n += int64(len(short)) + 2
	}
	n = align8(n)
	n += align8(int64(len(f.taggedItems())))
	_, extra := f.dentryStreams()
	for _, e := range extra {
		l := int64(streamEntrySize)
		if len(e.name) > 0 {
			l += int64(len(e.name)) + 2
		}
		n += align8(l)
	}
	return n
}

func (f *File) appendDentry(out []byte, subdir int64) []byte {
	le := binary.LittleEndian
	start := len(out)
	out = append(out, make([]byte, dentrySize)...)
	d := out[start:]
	le.PutUint32(d[8:], f.Attributes)
	le.PutUint32(d[12:], uint32(f.SecurityID))
	le.PutUint64(d[16:], uint64(subdir))
	le.PutUint64(d[40:], uint64(f.CreationTime))
	le.PutUint64(d[48:], uint64(f.AccessTime))
	le.PutUint64(d[56:], uint64(f.ModTime))
	le.PutUint32(d[84:], f.unknown54)
	if f.Attributes&AttrReparsePoint != 0 {
		le.PutUint32(d[88:], f.ReparseTag)
		le.PutUint16(d[92:], f.rpReserved)
		le.PutUint16(d[94:], f.ReparseFlags)
	} else {
		le.PutUint64(d[88:], f.HardLinkGroup)
	}
	name, short := f.encodedNames()
	le.PutUint16(d[98:], uint16(len(short)))
	le.PutUint16(d[100:], uint16(len(name)))
	if len(name) > 0 {
		out = append(out, name...)
		out = append(out, 0, 0)
	}
	if len(short) > 0 {
		out = append(out, short...)
		out = append(out, 0, 0)
	}
	for (len(out)-start)%8 != 0 {
		out = append(out, 0)
	}
	out = append(out, f.taggedItems()...)
	for (len(out)-start)%8 != 0 {
		out = append(out, 0)
	}
	d = out[start:]
	le.PutUint64(d[0:], uint64(len(out)-start))
	main, extra := f.dentryStreams()
	copy(d[64:84], main[:])
	le.PutUint16(d[96:], uint16(len(extra)))
	for _, e := range extra {
		es := len(out)
		out = append(out, make([]byte, streamEntrySize)...)
		copy(out[es+16:], e.hash[:])
		le.PutUint16(out[es+36:], uint16(len(e.name)))
		if len(e.name) > 0 {
			out = append(out, e.name...)
			out = append(out, 0, 0)
		}
		for (len(out)-es)%8 != 0 {
			out = append(out, 0)
		}
		le.PutUint64(out[es:], uint64(len(out)-es))
	}
	return out
}

// serializeMetadata builds a metadata resource for root and its security
// descriptors in memory.
func serializeMetadata(root *File, security [][]byte) []byte {
	r, size := newMetadataReader(root, security)
	out := append(make([]byte, 0, size), r.buf...)
	for r.fill() {
		out = append(out, r.buf...)
	}
	return out
}

// metadataSource is the metadata resource of root as a blob source that
// writes it as it is read, a directory entry at a time: built whole, it
// was the largest buffer of a capture (2 MB for 13,000 files), allocated at
// its end while the whole tree is still in memory, which made the peak.
func metadataSource(root *File, security [][]byte) *blobSource {
	r, size := newMetadataReader(root, security)
	return &blobSource{size: size, other: &otherSource{stream: r, metadata: true}}
}

// metadataReader produces a metadata resource: security data and the root's
// entry, then the children list of every directory in preorder, each
// ended by 8 zero bytes.
type metadataReader struct {
	dirs    []*File
	offsets map[*File]int64 // where each directory's children list starts
	buf     []byte          // produced, not yet read from off on
	off     int
	d, c    int // the next entry is dirs[d].Children[c]
}

func newMetadataReader(root *File, security [][]byte) (*metadataReader, int64) {
	le := binary.LittleEndian
	secLen := int64(8 + 8*len(security))
	for _, s := range security {
		secLen += int64(len(s))
	}
	secTotal := align8(secLen)
	head := make([]byte, 8+8*len(security), secTotal)
	le.PutUint32(head, uint32(secTotal))
	le.PutUint32(head[4:], uint32(len(security)))
	for i, s := range security {
		le.PutUint64(head[8+8*i:], uint64(len(s)))
	}
	for _, s := range security {
		head = append(head, s...)
	}
	for int64(len(head)) < secTotal {
		head = append(head, 0)
	}

	// Assign child-list offsets in the same preorder in which lists are
	// written.
	r := &metadataReader{}
	var collect func(d *File)
	collect = func(d *File) {
		if isDirAttr(d.Attributes) {
			r.dirs = append(r.dirs, d)
		}
		for _, c := range d.Children {
			collect(c)
		}
	}
	collect(root)
	r.offsets = make(map[*File]int64, len(r.dirs))
	next := secTotal + root.dentryLen() + 8
	for _, d := range r.dirs {
		r.offsets[d] = next
		for _, c := range d.Children {
			next += c.dentryLen()
		}
		next += 8
	}
	r.buf = root.appendDentry(head, r.offsets[root])
	r.buf = append(r.buf, make([]byte, 8)...)
	return r, next
}

// fill replaces buf with the next piece of the resource and reports
// whether there was one.
func (r *metadataReader) fill() bool {
	r.buf, r.off = r.buf[:0], 0
	if r.d == len(r.dirs) {
		return false
	}
	if d := r.dirs[r.d]; r.c < len(d.Children) {
		c := d.Children[r.c]
		r.c++
		r.buf = c.appendDentry(r.buf, r.offsets[c])
		return true
	}
	r.buf = append(r.buf, make([]byte, 8)...)
	r.d, r.c = r.d+1, 0
	return true
}

func (r *metadataReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.off == len(r.buf) && !r.fill() {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		k := copy(p[n:], r.buf[r.off:])
		r.off += k
		n += k
	}
	return n, nil
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// isDirAttr is wimlib's inode_is_directory: a directory that is not a
// reparse point (a symlink to a directory carries both attributes).
func isDirAttr(a uint32) bool {
	return a&(AttrDirectory|AttrReparsePoint) == AttrDirectory
}
