package treetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Entry is everything Snapshot records about one name in a tree.
type Entry struct {
	Path   string      // slash-separated, relative to the root; "." is the root
	Type   fs.FileMode // fs.ModeDir, fs.ModeSymlink, … ; 0 for regular files
	Perm   fs.FileMode // permission bits plus setuid, setgid, sticky
	UID    uint32
	GID    uint32
	Rdev   uint64 // device number of character and block devices
	Size   int64  // regular files and symlinks
	SHA256 [32]byte
	Target string            // symlink target, as stored
	Xattrs map[string]string // name → value (values may be binary)
	Mtime  time.Time
	Atime  time.Time
	// Links lists the other names in the same tree that share this entry's
	// inode, sorted. Empty when the entry has only one name in the tree.
	Links []string
	// Allocated is the space the file occupies on disk (st_blocks*512): a
	// sparse file shows fewer bytes than its size.
	Allocated int64

	dev, ino uint64
}

// Tree is a snapshot of a directory tree, keyed by Entry.Path.
type Tree struct {
	Root    string
	Entries map[string]*Entry
}

// Paths returns the tree's paths, sorted.
func (t Tree) Paths() []string {
	ps := make([]string, 0, len(t.Entries))
	for p := range t.Entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Snapshot records the tree under dir without following symlinks. It reads
// every regular file to hash its contents.
func Snapshot(dir string) (Tree, error) {
	t := Tree{Root: dir, Entries: map[string]*Entry{}}
	type inode struct{ dev, ino uint64 }
	byInode := map[inode][]*Entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		e, err := stat(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		t.Entries[e.Path] = e
		if e.Type != fs.ModeDir {
			k := inode{e.dev, e.ino}
			byInode[k] = append(byInode[k], e)
		}
		return nil
	})
	if err != nil {
		return Tree{}, fmt.Errorf("treetest: snapshot %s: %w", dir, err)
	}
	for _, group := range byInode {
		if len(group) < 2 {
			continue
		}
		for _, e := range group {
			for _, o := range group {
				if o != e {
					e.Links = append(e.Links, o.Path)
				}
			}
			sort.Strings(e.Links)
		}
	}
	return t, nil
}

func stat(p, rel string) (*Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	e := &Entry{
		Path:      rel,
		Perm:      fs.FileMode(st.Mode & 0o777),
		UID:       st.Uid,
		GID:       st.Gid,
		Mtime:     time.Unix(st.Mtim.Unix()).UTC(),
		Atime:     time.Unix(st.Atim.Unix()).UTC(),
		Allocated: st.Blocks * 512,
		dev:       st.Dev,
		ino:       st.Ino,
	}
	if st.Mode&unix.S_ISUID != 0 {
		e.Perm |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		e.Perm |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		e.Perm |= fs.ModeSticky
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Size = st.Size
		h, err := hashFile(p)
		if err != nil {
			return nil, err
		}
		e.SHA256 = h
	case unix.S_IFDIR:
		e.Type = fs.ModeDir
	case unix.S_IFLNK:
		e.Type = fs.ModeSymlink
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		e.Target, e.Size = target, int64(len(target))
	case unix.S_IFCHR:
		e.Type, e.Rdev = fs.ModeDevice|fs.ModeCharDevice, st.Rdev
	case unix.S_IFBLK:
		e.Type, e.Rdev = fs.ModeDevice, st.Rdev
	case unix.S_IFIFO:
		e.Type = fs.ModeNamedPipe
	case unix.S_IFSOCK:
		e.Type = fs.ModeSocket
	default:
		return nil, fmt.Errorf("%s: unknown file type %#o", p, st.Mode&unix.S_IFMT)
	}
	x, err := xattrs(p)
	if err != nil {
		return nil, err
	}
	e.Xattrs = x
	return e, nil
}

func hashFile(p string) ([32]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, fmt.Errorf("read %s: %w", p, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

func xattrs(p string) (map[string]string, error) {
	buf := make([]byte, 4096)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "llistxattr", Path: p, Err: err}
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		val := make([]byte, 256)
		for {
			k, err := unix.Lgetxattr(p, name, val)
			if errors.Is(err, unix.ERANGE) {
				val = make([]byte, 2*len(val))
				continue
			}
			if err != nil {
				return nil, &fs.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
			}
			m[name] = string(val[:k])
			break
		}
	}
	return m, nil
}
