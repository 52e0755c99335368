package state

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/state/internal/fsx"
	"golang.org/x/sys/unix"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Keys are the state keys a store may be signed with; Restore refuses
	// a store without a signature by one of them (ErrUnsigned).
	Keys []ed25519.PublicKey
	// Copy copies every file out of the store. By default a file is
	// hard-linked to its object when store and root share a filesystem and
	// nothing else links to the object (the refresh case after the PE has
	// cleaned the old system: no data moves, and removing the store
	// afterwards leaves the restored file).
	Copy bool
	// NoAccounts skips merging the captured account records; the homes of
	// captured users the new system already has are still restored.
	NoAccounts bool
	// Paths are absolute paths, beyond the captured users' homes, whose
	// captured contents may be restored (what the sequence captured with
	// paths:, /root for root-home:). The store's own record of what it
	// captured is not trusted for this.
	Paths []string
	// Progress, when set, is called with the bytes of each file restored.
	Progress func(n int64)
}

// Report says what Restore did.
type Report struct {
	Entries    int      `json:"entries"`
	Files      int      `json:"files"`
	Linked     int      `json:"linked"` // files hard-linked from the store instead of copied
	HardLinks  int      `json:"hardLinks"`
	Bytes      int64    `json:"bytes"`
	UsersAdded []string `json:"usersAdded,omitempty"`
	// SignedBy is the id (sign.KeyID) of the state key that signed the store.
	SignedBy string `json:"signedBy"`
	// Warnings name what the restore policy left out (see Restore).
	Warnings []string `json:"warnings,omitempty"`
}

// Verify checks that every object the manifest needs is in the store with
// the recorded size and SHA-256.
func Verify(ctx context.Context, storeDir string, m *Manifest) error {
	for sum, size := range m.Objects() {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := filepath.Join(storeDir, ObjectPath(sum))
		got, n, err := fsx.HashFile(name)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: object %s is missing", ErrIncomplete, sum)
		}
		if err != nil {
			return fmt.Errorf("object %s: %w", sum, err)
		}
		if got != sum || n != size {
			return fmt.Errorf("%w: object %s has %d bytes with sha256 %s (changed since capture?)", ErrChecksum, sum, n, got)
		}
	}
	return nil
}

// Restore recreates the captured state under root. It first checks the
// whole store (the index's signature by one of opts.Keys, index,
// manifest, every object's hash) and the account merge,
// and refuses before writing anything if either fails. Accounts are merged
// before files are written, so that the owners exist. Every path is
// resolved beneath root without following symlinks.
//
// Restore is least-privileged whatever the store says: it adds only
// well-formed regular accounts (planAccounts) and writes only what
// restorable allows: files of the captured users in their homes and what
// lies under opts.Paths, without device nodes, setuid/setgid bits or file
// capabilities. What it leaves out is in Report.Warnings.
func Restore(ctx context.Context, storeDir, root string, opts RestoreOptions) (*Report, error) {
	if err := checkPaths(opts.Paths); err != nil {
		return nil, err
	}
	m, keyID, err := ReadSigned(storeDir, opts.Keys)
	if err != nil {
		return nil, err
	}
	if err := Verify(ctx, storeDir, m); err != nil {
		return nil, fmt.Errorf("%s: %w", storeDir, err)
	}
	rep := &Report{SignedBy: keyID}
	warn := func(format string, a ...any) { rep.Warnings = append(rep.Warnings, fmt.Sprintf(format, a...)) }
	plan, err := planAccounts(root, m.Accounts, !opts.NoAccounts, warn)
	if err != nil {
		return nil, err
	}
	entries := restorable(m, plan.homes, opts.Paths, warn)
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	storeFD, err := unix.Open(storeDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: storeDir, Err: err}
	}
	defer unix.Close(storeFD)

	r := &restorer{ctx: ctx, entries: entries, opts: opts, root: root, rootFD: rootFD, storeFD: storeFD, used: map[string]bool{}, rep: rep}
	if err := plan.write(root); err != nil {
		return nil, fmt.Errorf("writing accounts: %w", err)
	}
	r.rep.UsersAdded = plan.added
	if err := r.run(); err != nil {
		return r.rep, err
	}
	return r.rep, nil
}

type restorer struct {
	ctx     context.Context
	entries []Entry // what restorable allows, in manifest order
	opts    RestoreOptions
	root    string
	rootFD  int
	storeFD int
	used    map[string]bool // objects already linked to a restored file
	rep     *Report
	dirs    []*Entry // directories whose metadata is set at the end
}

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openDir opens a directory beneath root without following symlinks.
func (r *restorer) openDir(rel string) (int, error) {
	if rel == "" {
		return unix.Dup(r.rootFD)
	}
	for {
		fd, err := unix.Openat2(r.rootFD, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ELOOP || err == unix.EXDEV {
			return -1, fmt.Errorf("%w: %s leads through a symlink or out of %s", ErrInsecurePath, rel, r.root)
		}
		return fd, err
	}
}

func (r *restorer) run() error {
	for i := range r.entries {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		e := &r.entries[i]
		if err := r.entry(e); err != nil {
			return fmt.Errorf("restoring %s: %w", e.Path, err)
		}
		r.rep.Entries++
	}
	// Directory metadata last and deepest first: creating entries inside a
	// directory changes its mtime, and a read-only directory would refuse them.
	for i := len(r.dirs) - 1; i >= 0; i-- {
		e := r.dirs[i]
		pfd, err := r.openDir(parentOf(e.Path))
		if err != nil {
			return fmt.Errorf("restoring %s: %w", e.Path, err)
		}
		err = r.metadata(pfd, baseOf(e.Path), e)
		unix.Close(pfd)
		if err != nil {
			return fmt.Errorf("restoring %s: %w", e.Path, err)
		}
	}
	return nil
}

func baseOf(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// removeNonDir removes a non-directory in the way of a new entry; a directory in
// the way is an error (the new system's directories are not deleted).
func removeNonDir(pfd int, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("a directory is in the way")
	}
	return unix.Unlinkat(pfd, name, 0)
}

func (r *restorer) entry(e *Entry) error {
	pfd, err := r.openDir(parentOf(e.Path))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	name := baseOf(e.Path)
	if e.Link != "" {
		ofd, err := r.openDir(parentOf(e.Link))
		if err != nil {
			return err
		}
		defer unix.Close(ofd)
		if err := removeNonDir(pfd, name); err != nil {
			return err
		}
		r.rep.HardLinks++
		return unix.Linkat(ofd, baseOf(e.Link), pfd, name, 0)
	}
	switch e.Type {
	case TypeDir:
		var st unix.Stat_t
		err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case err == unix.ENOENT:
		case err != nil:
			return err
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			if !e.Ancestor {
				r.dirs = append(r.dirs, e)
			}
			return nil
		case e.Ancestor:
			return fmt.Errorf("%w: the new system has a non-directory where a directory is needed", ErrInsecurePath)
		default:
			if err := unix.Unlinkat(pfd, name, 0); err != nil {
				return err
			}
		}
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
			return err
		}
		r.dirs = append(r.dirs, e)
		return nil
	case TypeFile:
		if err := removeNonDir(pfd, name); err != nil {
			return err
		}
		if err := r.file(pfd, name, e); err != nil {
			return err
		}
		r.rep.Files++
		r.rep.Bytes += e.Size
		if r.opts.Progress != nil {
			r.opts.Progress(e.Size)
		}
	case TypeSymlink:
		if err := removeNonDir(pfd, name); err != nil {
			return err
		}
		if err := unix.Symlinkat(e.Target, pfd, name); err != nil {
			return err
		}
	case TypeFifo, TypeChar, TypeBlock, TypeSocket:
		if err := removeNonDir(pfd, name); err != nil {
			return err
		}
		mode := map[string]uint32{TypeFifo: unix.S_IFIFO, TypeChar: unix.S_IFCHR, TypeBlock: unix.S_IFBLK, TypeSocket: unix.S_IFSOCK}[e.Type]
		if err := unix.Mknodat(pfd, name, mode|0o600, int(e.Rdev)); err != nil {
			return err
		}
	}
	return r.metadata(pfd, name, e)
}

// file restores one regular file: linked to its verified store object when
// the store holds the object's only name (the inode number then proves it
// is that object), copied with its hash checked otherwise. Setting the
// entry's owner and mode changes the inode, so an object still shared with
// a live file (the capture's hard link, before the PE cleaned the old
// system, or an earlier restore) is never linked.
func (r *restorer) file(pfd int, name string, e *Entry) error {
	obj := ObjectPath(e.SHA256)
	var ost unix.Stat_t
	if !r.opts.Copy && !r.used[e.SHA256] && unix.Fstatat(r.storeFD, obj, &ost, unix.AT_SYMLINK_NOFOLLOW) == nil && ost.Nlink == 1 {
		err := unix.Linkat(r.storeFD, obj, pfd, name, 0)
		if err == nil {
			r.used[e.SHA256] = true
			var a, b unix.Stat_t
			if err := unix.Fstatat(r.storeFD, obj, &a, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if err := unix.Fstatat(pfd, name, &b, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if a.Ino != b.Ino || a.Dev != b.Dev || b.Size != e.Size || a.Mode&unix.S_IFMT != unix.S_IFREG {
				return fmt.Errorf("%w: linked file is not the verified object %s", ErrChecksum, e.SHA256)
			}
			r.rep.Linked++
			return nil
		}
		if err != unix.EXDEV && err != unix.EPERM && err != unix.EMLINK {
			return err
		}
		r.opts.Copy = true // no point trying again for every file
	}
	in, err := fsx.OpenRegular(filepath.Join(fdPath(r.storeFD), obj))
	if err != nil {
		return err
	}
	defer in.Close()
	fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	out := os.NewFile(uintptr(fd), name)
	defer out.Close()
	h := sha256.New()
	n, err := fsx.SparseCopy(out, io.TeeReader(in, h))
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 || n != e.Size {
		return fmt.Errorf("%w: restored %d bytes with sha256 %s, manifest says %d bytes %s", ErrChecksum, n, got, e.Size, e.SHA256)
	}
	return out.Sync()
}

func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// metadata sets owner, mode, xattrs and times on pfd/name. Owner goes
// first because chown clears setuid bits and security.capability.
func (r *restorer) metadata(pfd int, name string, e *Entry) error {
	if err := unix.Fchownat(pfd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if e.Type != TypeSymlink {
		if err := unix.Fchmodat(pfd, name, e.Mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if len(e.Xattrs) > 0 {
		p := fdPath(pfd) + "/" + name
		for k, v := range e.Xattrs {
			if err := unix.Lsetxattr(p, k, v, 0); err != nil {
				return fmt.Errorf("xattr %s: %w", k, err)
			}
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.Atime), unix.NsecToTimespec(e.Mtime)}
	if err := unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("times: %w", err)
	}
	return nil
}
