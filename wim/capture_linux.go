//go:build linux

package wim

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

type scanner struct {
	ctx context.Context // checked once per directory
	// skip is the WIM being written, when it lies inside the tree.
	skip      devIno
	unix      bool
	cfg       *CaptureConfig
	filter    func(path string, mode fs.FileMode) CaptureAction
	links     map[devIno]*File
	nextGroup uint64
	rootDev   uint64
}

func openNoFollow(path string) (io.ReadCloser, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &fdReader{fd: fd, path: path}, nil
}

// fdReader reads a regular file through its descriptor: capture opens every
// file of the tree once, and an *os.File (with its finalizer) for each
// costs more than reading small files.
type fdReader struct {
	fd   int
	path string
}

func (r *fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &os.PathError{Op: "read", Path: r.path, Err: err}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (r *fdReader) Close() error { return unix.Close(r.fd) }

func (s *scanner) scanRoot(ctx context.Context, dir string) (*File, error) {
	s.ctx = ctx
	var st unix.Stat_t
	// Like wimlib, the capture root itself may be a symlink to a directory.
	if err := unix.Stat(dir, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("wim: capture source %s is not a directory", dir)
	}
	root := s.fileFromStat(&st, "")
	root.src, root.captured = &captureSource{path: dir}, true
	if err := s.xattrs(dir, root); err != nil {
		return nil, err
	}
	if err := s.scanDir(dir, "", root); err != nil {
		return nil, err
	}
	return root, nil
}

func (s *scanner) fileFromStat(st *unix.Stat_t, name string) *File {
	f := &File{
		Name:         name,
		SecurityID:   -1,
		CreationTime: filetimeFromUnix(st.Mtim.Sec, st.Mtim.Nsec),
		ModTime:      filetimeFromUnix(st.Mtim.Sec, st.Mtim.Nsec),
		AccessTime:   filetimeFromUnix(st.Atim.Sec, st.Atim.Nsec),
	}
	if s.unix {
		f.HasUnixData = true
		f.UID, f.GID, f.Mode, f.Rdev = st.Uid, st.Gid, st.Mode, uint32(st.Rdev)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		f.Attributes = AttrDirectory
	case unix.S_IFREG:
		f.Size = st.Size
		if st.Blocks < (st.Size+511)/512 {
			f.Attributes = AttrSparseFile
		} else {
			f.Attributes = AttrNormal
		}
	}
	return f
}

func (s *scanner) scanDir(path, imgPath string, dir *File) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("wim: reading directory %s: %w", path, err)
	}
	for _, name := range names {
		cpath := path + "/" + name
		cimg := imgPath + "/" + name
		if s.cfg.Excluded(cimg) {
			continue
		}
		if !validUTF8(name) {
			return fmt.Errorf("wim: %s: file name is not valid UTF-8 (not representable in a WIM)", cpath)
		}
		var st unix.Stat_t
		if err := unix.Lstat(cpath, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // vanished while scanning
			}
			return &os.PathError{Op: "lstat", Path: cpath, Err: err}
		}
		if (devIno{uint64(st.Dev), st.Ino}) == s.skip {
			continue // the WIM being written, inside the captured tree
		}
		typ := st.Mode & unix.S_IFMT
		if !s.unix && typ != unix.S_IFDIR && typ != unix.S_IFREG && typ != unix.S_IFLNK {
			continue // not representable without UNIX data
		}
		action := CaptureKeep
		if s.filter != nil {
			action = s.filter(cimg, statMode(&st))
		}
		if action == CaptureOmit {
			continue
		}
		if action == CaptureEmpty && typ == unix.S_IFREG {
			// Outside any hard-link group: the other names keep the data.
			f := s.fileFromStat(&st, name)
			f.Size, f.Attributes = 0, AttrNormal
			f.Parent, f.captured = dir, true
			if err := s.xattrs(cpath, f); err != nil {
				return err
			}
			dir.Children = append(dir.Children, f)
			continue
		}
		var f *File
		if typ != unix.S_IFDIR && st.Nlink > 1 {
			k := devIno{uint64(st.Dev), st.Ino}
			if first := s.links[k]; first != nil {
				if first.HardLinkGroup == 0 {
					s.nextGroup++
					first.HardLinkGroup = s.nextGroup
				}
				c := *first
				c.Name, c.Children, c.Parent = name, nil, dir
				dir.Children = append(dir.Children, &c)
				continue
			}
		}
		f = s.fileFromStat(&st, name)
		f.Parent, f.captured = dir, true
		if err := s.xattrs(cpath, f); err != nil {
			return err
		}
		switch typ {
		case unix.S_IFLNK:
			if err := s.symlink(cpath, f); err != nil {
				return err
			}
		case unix.S_IFDIR:
			if err := s.scanDir(cpath, cimg, f); err != nil {
				return err
			}
		}
		if typ != unix.S_IFDIR && st.Nlink > 1 {
			s.links[devIno{uint64(st.Dev), st.Ino}] = f
		}
		dir.Children = append(dir.Children, f)
	}
	sortChildren(dir)
	return nil
}

func (s *scanner) symlink(path string, f *File) error {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Readlink(path, buf)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		if n < len(buf) {
			f.LinkTarget = string(buf[:n])
			break
		}
		if len(buf) >= maxReparseSize {
			return fmt.Errorf("wim: %s: symlink target is too long", path)
		}
		buf = make([]byte, 2*len(buf))
	}
	if !validUTF8(f.LinkTarget) || strings.ContainsRune(f.LinkTarget, 0) {
		return fmt.Errorf("wim: %s: symlink target is not valid UTF-8", path)
	}
	data := makeSymlinkReparse(f.LinkTarget)
	if len(data)+reparseHeaderSize > maxReparseSize {
		return fmt.Errorf("wim: %s: symlink target is too long for a reparse point", path)
	}
	f.Attributes = AttrReparsePoint
	var st unix.Stat_t
	if unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		f.Attributes |= AttrDirectory
	}
	f.ReparseTag = ReparseTagSymlink
	f.ReparseFlags = rpFlagNotFixed
	f.src = &captureSource{reparseData: data}
	f.reparseHash = sha1.Sum(data)
	f.reparse = &blob{hash: f.reparseHash, size: int64(len(data))}
	return nil
}

func (s *scanner) xattrs(path string, f *File) error {
	if !s.unix {
		return nil
	}
	buf := make([]byte, 1024)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(path, buf)
		if err == unix.ERANGE {
			buf = make([]byte, 2*len(buf))
			continue
		}
		break
	}
	if err != nil {
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil
		}
		return &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || len(name) > maxXattrName {
			continue
		}
		val := make([]byte, 256)
		for {
			k, err := unix.Lgetxattr(path, name, val)
			if err == unix.ERANGE {
				val = make([]byte, 2*len(val)+maxXattrValue)
				continue
			}
			if err == unix.ENODATA {
				val = nil
				break
			}
			if err != nil {
				return &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
			}
			val = val[:k]
			break
		}
		if val == nil || len(val) > maxXattrValue {
			continue
		}
		f.Xattrs = append(f.Xattrs, Xattr{Name: name, Value: val})
	}
	return nil
}

func fileDevIno(f *os.File) devIno {
	var st unix.Stat_t
	if f == nil || unix.Fstat(int(f.Fd()), &st) != nil {
		return devIno{}
	}
	return devIno{uint64(st.Dev), st.Ino}
}

// statMode converts a stat mode to fs.FileMode (type and permission bits).
func statMode(st *unix.Stat_t) fs.FileMode {
	m := fs.FileMode(st.Mode & 0o777)
	if st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	return m
}
