package wim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// A WIM is written under a temporary name next to its final one and renamed
// only once it is complete and on disk, so that an interrupted write (a
// signal, a full disk, a power cut) never leaves a WIM under the final name
// that looks complete. The temporary file's header carries the
// write-in-progress flag until the last moment, so that even it is refused
// by readers (ErrIncomplete) if it is found after a crash.

// createTemp creates a new, empty file in name's directory, to become name
// with commitTemp. Its mode is 0666 less the umask, as os.Create's.
func createTemp(name string) (*os.File, error) {
	dir, base := filepath.Split(name)
	for range 100 {
		var r [6]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		tmp := filepath.Join(dir, "."+base+"."+hex.EncodeToString(r[:])+".tmp")
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
}

// commitTemp syncs f, a file from createTemp, renames it to name, syncs
// and closes it; the directory is synced so that the rename survives a
// power cut. The second sync is for vfat, which writes a renamed file's
// directory entry (start cluster, size) only with its inode. On failure
// before the rename, f is removed.
func commitTemp(f *os.File, name string) error {
	err := f.Sync()
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(name))
}

// syncDir makes the entries of dir durable. A file system that cannot
// sync a directory says EINVAL or ENOTSUP (fs.ErrInvalid does not match
// EINVAL); the rename is then as durable as it makes it. This mirrors
// internal/durable, which package wim does not import (it imports nothing
// of minint).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !cannotSyncDir(err) {
		return err
	}
	return nil
}

func cannotSyncDir(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported)
}
