// Package fsx holds the file helpers the state store and its network
// transfer share: hashing, hole-keeping copies, durable writes.
package fsx

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// HashFile returns the SHA-256 (lower-case hex) and size of a file.
func HashFile(name string) (string, int64, error) {
	f, err := OpenRegular(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// ErrNotRegular is returned by OpenRegular for anything but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens name for reading without following a final symlink
// and fails unless it is a regular file: a file swapped for a symlink or
// a FIFO while it is captured or restored must not be read through.
func OpenRegular(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return f, nil
}

// SparseCopy writes r to f, seeking over all-zero blocks, and sets the
// final size.
func SparseCopy(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<16)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, werr := f.WriteAt(buf[:n], off); werr != nil {
					return off, werr
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, f.Truncate(off)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// WriteFileSync replaces name with data so that a crash leaves either the
// old file or the whole new one.
func WriteFileSync(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(name))
}

func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
