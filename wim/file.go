package wim

import (
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Windows file attributes used by this package.
const (
	AttrReadOnly     = 0x00000001
	AttrHidden       = 0x00000002
	AttrSystem       = 0x00000004
	AttrDirectory    = 0x00000010
	AttrArchive      = 0x00000020
	AttrNormal       = 0x00000080
	AttrSparseFile   = 0x00000200
	AttrReparsePoint = 0x00000400
	AttrCompressed   = 0x00000800
	AttrEncrypted    = 0x00004000
)

// Reparse tags of the reparse points this package understands.
const (
	ReparseTagSymlink    = 0xA000000C
	ReparseTagMountPoint = 0xA0000003
)

// Unix file type bits of File.Mode (as in st_mode).
const (
	unixTypeMask = 0o170000
	unixSocket   = 0o140000
	unixSymlink  = 0o120000
	unixRegular  = 0o100000
	unixBlock    = 0o060000
	unixDir      = 0o040000
	unixChar     = 0o020000
	unixFIFO     = 0o010000
)

// Filetime is a WIM timestamp: 100 ns intervals since 1601-01-01 UTC. It is
// kept raw so that timestamps round-trip exactly.
type Filetime uint64

const filetimeUnixEpoch = 116444736000000000 // 1970-01-01 in Filetime units

// Time converts t to a time.Time (UTC).
func (t Filetime) Time() time.Time {
	d := int64(t) - filetimeUnixEpoch
	return time.Unix(d/10_000_000, (d%10_000_000)*100).UTC()
}

// FiletimeOf converts a time to a Filetime, truncating to 100 ns.
func FiletimeOf(t time.Time) Filetime {
	return Filetime(t.Unix()*10_000_000 + int64(t.Nanosecond()/100) + filetimeUnixEpoch)
}

func filetimeFromUnix(sec, nsec int64) Filetime {
	return Filetime(sec*10_000_000 + nsec/100 + filetimeUnixEpoch)
}

// unix returns seconds and nanoseconds since the Unix epoch.
func (t Filetime) unix() (int64, int64) {
	d := int64(t) - filetimeUnixEpoch
	s, ns := d/10_000_000, (d%10_000_000)*100
	if ns < 0 {
		s--
		ns += 1_000_000_000
	}
	return s, ns
}

// Xattr is one Linux extended attribute (wimlib's xattr tagged item).
type Xattr struct {
	Name  string
	Value []byte
	Flags uint8 // 0x80 = FILE_NEED_EA on Windows; kept for round-trips
}

// Stream is a named data stream (NTFS alternate data stream). Kept so that
// Windows images survive a read→write cycle; not applied on Linux.
type Stream struct {
	Name string
	Size int64
	Hash [20]byte
	b    *blob
}

// File is one directory entry of an image. Hard links are separate Files
// with the same nonzero HardLinkGroup.
type File struct {
	Name      string // "" for the root
	ShortName string // DOS 8.3 name (Windows images)

	Attributes uint32
	// SecurityID indexes the image's security descriptors, -1 for none.
	SecurityID int32

	CreationTime Filetime
	AccessTime   Filetime
	ModTime      Filetime

	// HardLinkGroup is nonzero for files with more than one name.
	HardLinkGroup uint64

	// HasUnixData reports whether the entry carries wimlib's UNIX data
	// (UID, GID, Mode, Rdev); without it the mode is synthesised.
	HasUnixData bool
	UID, GID    uint32
	// Mode is the Unix st_mode: file type and permission bits.
	Mode uint32
	// Rdev is the device number of device nodes (glibc dev_t truncated to
	// 32 bits, as wimlib stores it).
	Rdev      uint32
	unknown54 uint32 // in the padding of the public fields, as rpReserved and captured
	Xattrs    []Xattr

	// Size and Hash describe the unnamed data stream (zero hash = empty).
	Size int64
	Hash [20]byte

	// ReparseTag is set for reparse points; LinkTarget is the Unix target
	// of symlinks (and junctions).
	ReparseTag   uint32
	ReparseFlags uint16
	rpReserved   uint16
	captured     bool // scanned from disk (AddImage)
	LinkTarget   string

	// Streams lists named data streams.
	Streams []Stream

	Children []*File
	Parent   *File

	img          *Image
	data         *blob
	reparse      *blob
	reparseHash  [20]byte
	extra        []byte // tagged items other than UNIX data and xattrs
	subdirOffset int64  // parse only
	// src is set for the few captured files that need more than their
	// name: a File is 320 bytes, not 384, for every file of a tree.
	src *captureSource
}

// captureSource is what only some captured files need.
type captureSource struct {
	path        string // the capture root's path on disk (see diskPath)
	reparseData []byte // a symlink's reparse blob contents
}

// diskPath is where a captured file is read from: the capture root's path
// and the names below it, joined as the scanner joined them. A path kept
// for every file was the largest part of a scanned tree after the Files
// themselves (64-80 bytes a file), so it is rebuilt when the file is opened.
func (f *File) diskPath() string {
	n, g := 0, f
	for ; g.Parent != nil && (g.src == nil || g.src.path == ""); g = g.Parent {
		n += 1 + len(g.Name)
	}
	var root string
	if g.src != nil {
		root = g.src.path
	}
	b := make([]byte, len(root)+n)
	i := len(b)
	for h := f; h != g; h = h.Parent {
		i -= len(h.Name)
		copy(b[i:], h.Name)
		i--
		b[i] = '/'
	}
	copy(b, root)
	return string(b)
}

// IsDir reports whether f is a directory (and not a symlink to one).
func (f *File) IsDir() bool {
	return f.unixType() == unixDir
}

// IsSymlink reports whether f is a symbolic link (or junction).
func (f *File) IsSymlink() bool {
	if f.HasUnixData && f.Mode&unixTypeMask != 0 {
		return f.Mode&unixTypeMask == unixSymlink
	}
	return f.Attributes&AttrReparsePoint != 0 &&
		(f.ReparseTag == ReparseTagSymlink || f.ReparseTag == ReparseTagMountPoint)
}

// unixType returns the S_IFMT bits, synthesised when there is no UNIX data.
func (f *File) unixType() uint32 {
	if f.HasUnixData && f.Mode&unixTypeMask != 0 {
		return f.Mode & unixTypeMask
	}
	switch {
	case f.IsSymlink():
		return unixSymlink
	case f.Attributes&AttrDirectory != 0:
		return unixDir
	}
	return unixRegular
}

// Perm returns the permission bits (including setuid/setgid/sticky) to
// apply: the stored ones, or 0755/0644 for entries without UNIX data.
func (f *File) Perm() uint32 {
	if f.HasUnixData {
		return f.Mode & 0o7777
	}
	switch f.unixType() {
	case unixDir:
		return 0o755
	case unixSymlink:
		return 0o777
	}
	return 0o644
}

// FileMode returns the entry's type and permissions as an fs.FileMode.
func (f *File) FileMode() fs.FileMode {
	perm := f.Perm()
	m := fs.FileMode(perm & 0o777)
	if perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch f.unixType() {
	case unixDir:
		m |= fs.ModeDir
	case unixSymlink:
		m |= fs.ModeSymlink
	case unixFIFO:
		m |= fs.ModeNamedPipe
	case unixSocket:
		m |= fs.ModeSocket
	case unixChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unixBlock:
		m |= fs.ModeDevice
	}
	return m
}

// Open returns the file's unnamed data stream. Reading it to EOF checks the
// SHA-1 and fails with ErrChecksum on mismatch.
func (f *File) Open() (io.ReadCloser, error) {
	if f.Hash != zeroHash && f.data == nil {
		return nil, f.missing(f.Hash)
	}
	return newBlobReader(f.data, f.Path())
}

// OpenStream returns the named data stream name.
func (f *File) OpenStream(name string) (io.ReadCloser, error) {
	for _, s := range f.Streams {
		if s.Name == name {
			if s.Hash != zeroHash && s.b == nil {
				return nil, f.missing(s.Hash)
			}
			return newBlobReader(s.b, f.Path()+":"+name)
		}
	}
	return nil, &fs.PathError{Op: "open stream", Path: f.Path() + ":" + name, Err: ErrNotFound}
}

// SecurityDescriptor returns the file's Windows security descriptor, or nil.
func (f *File) SecurityDescriptor() []byte {
	if f.img == nil || f.SecurityID < 0 || int(f.SecurityID) >= len(f.img.security) {
		return nil
	}
	return f.img.security[f.SecurityID]
}

// Path returns the file's path in the image, "/" for the root.
func (f *File) Path() string {
	if f.Parent == nil {
		return "/"
	}
	n := 0
	for p := f; p.Parent != nil; p = p.Parent {
		n++
	}
	parts := make([]string, n)
	for p := f; p.Parent != nil; p = p.Parent {
		n--
		parts[n] = p.Name
	}
	s := ""
	for _, x := range parts {
		s += "/" + x
	}
	return s
}

// Child returns the direct child called name, or nil.
func (f *File) Child(name string) *File {
	for _, c := range f.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (f *File) missing(h [20]byte) error {
	return fmt.Errorf("%w: %s: data %x is not in the blob table", ErrFormat, f.Path(), h)
}
