// Package durable replaces files so that a crash or a power cut leaves
// under the file's name either all of the old content or all of the new,
// never a mix, a truncated file or an empty one. It is the one place minint
// does this: the PE's journal, the boot loader's files on the ESP, the
// state store, the first-boot answer and the host's build outputs all
// write through it.
//
// The recipe is the classic one: the new content goes to a temporary file
// in the same directory (a rename is only atomic within one file system),
// which is fsynced, renamed over the name, and then the directory is
// fsynced so that the rename itself is on disk. Without the first fsync
// ext4 may put the rename on disk before the data (an empty file after the
// crash); without the last, the old name may come back.
//
// The ESP is vfat, which bends the recipe:
//   - Linux's vfat keeps a file's start cluster and size in its directory
//     entry, and a rename only moves the in-memory inode to the entry of
//     the name; that entry is written when the inode is, which a fsync of
//     the directory does not do. So the file is fsynced a second time
//     after the rename, through the descriptor still open: without it a
//     power cut within the next ~30 s left the name with 0 bytes
//     (bootloader's TestDeployInGuest cuts the power to check).
//   - vfat keeps no Unix permissions: Linux silently ignores a mode it
//     cannot keep, but refuses setuid, setgid and sticky bits (and chown
//     to another owner) with EPERM. Permissions are meaningless there, so
//     on file systems without them (vfat, exFAT) a refused chmod is
//     ignored; everywhere else it is an error.
//   - some kernels and file systems cannot fsync a directory (EINVAL,
//     ENOTSUP); the rename is then as durable as the file system makes it,
//     and the write does not fail for it. Other errors (EIO) do.
//   - a vfat rename is not atomic across a power cut: a cut between the
//     rename and the second fsync can leave a new name empty, or an old
//     one pointing at clusters already freed, and both the temporary and
//     the real entry can survive (fsck.vfat repairs the cross-link). The
//     window lasts from the rename to the end of the second fsync, not the
//     writeback delay.
//
// WriteFile writes a []byte; Create returns a File to stream into (or
// WriteAt, for sparse copies) that Commit puts in place; Rename puts in
// place a file that something else wrote.
//
// Temporary names are "." + name + "." + random digits + ".tmp": long names,
// which vfat (not the 8.3-only msdos driver) stores; a crash can leave one
// behind, which never shadows the real name.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// WriteFile replaces name with data, which gets mode perm (subject to the
// file system, see the package comment; not to the umask). The directory
// must exist. On error name is unchanged and no temporary file is left.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	f, err := Create(name, perm)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return f.Commit()
}

// File is the new content of a file being written. It is an *os.File (a
// temporary one, mode 0600 while it is written, so that half a shadow file
// is readable by nobody) that replaces the real name only on Commit. Close
// without Commit discards it, so that `defer f.Close()` cleans up on every
// error path.
type File struct {
	*os.File
	name string
	perm fs.FileMode
	done bool
}

// Create starts replacing name; nothing changes under name until Commit.
func Create(name string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", name, err)
	}
	return &File{File: f, name: name, perm: perm}, nil
}

// Commit gives the file its mode, syncs it, renames it to the real name,
// syncs it again (for vfat) and syncs the directory. On an error before
// the rename the temporary file is removed and the real name is unchanged;
// after it the new content is in place but perhaps not yet durable.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("writing %s: %w", f.name, fs.ErrClosed)
	}
	f.done = true
	if err := f.chmod(); err != nil {
		f.File.Close()
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.name, err)
	}
	return replace(f.File, f.name, true)
}

// Rename moves oldpath, a complete file written by other means (a tool's
// output, a download checked after it arrived), to newpath on the same
// file system, as durably as Commit: fsync, rename, fsync, fsync of
// newpath's directory. On an error before the rename oldpath is left as it
// is.
func Rename(oldpath, newpath string) error {
	f, err := os.Open(oldpath)
	if err != nil {
		return err
	}
	return replace(f, newpath, false)
}

// replace renames f's file to name and closes f; see Commit.
func replace(f *os.File, name string, removeOnError bool) error {
	err := f.Sync()
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		f.Close()
		if removeOnError {
			os.Remove(f.Name())
		}
		return fmt.Errorf("writing %s: %w", name, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return SyncDir(filepath.Dir(name))
}

// Close discards the file unless it was committed; after Commit it does
// nothing.
func (f *File) Close() error {
	if f.done {
		return nil
	}
	f.done = true
	f.File.Close()
	return os.Remove(f.File.Name())
}

// chmod sets the final mode; on a file system without Unix permissions a
// refusal is expected and harmless.
func (f *File) chmod() error {
	err := f.Chmod(f.perm)
	if err != nil && errors.Is(err, syscall.EPERM) && !hasPermissions(f.File) {
		return nil
	}
	return err
}

func hasPermissions(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return true
	}
	switch st.Type {
	case unix.MSDOS_SUPER_MAGIC, unix.EXFAT_SUPER_MAGIC:
		return false
	}
	return true
}

// SyncDir makes the entries of dir (a rename, a new or removed file)
// durable. A file system that cannot sync a directory is not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !cannotSyncDir(err) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// cannotSyncDir tells whether a directory fsync failed only because the
// file system does not do it. fsync reports that as EINVAL (no fsync
// method) or ENOTSUP; os.ErrInvalid does not match EINVAL.
func cannotSyncDir(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported)
}
