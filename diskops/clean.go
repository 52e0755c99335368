package diskops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/minint/minint/internal/plural"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CleanOptions tunes CleanAllBut.
type CleanOptions struct {
	// Keep is the staging folder's name directly below the root
	// ("minint" when empty). It must be a real directory, not a symlink.
	Keep string
	// DryRun lists what would be deleted and changes nothing (not even
	// the manifest is written).
	DryRun bool
	// SysRoot locates /proc/self/mountinfo (tests); empty means "/".
	SysRoot string
	// OnDelete, if set, is called after each entry is deleted.
	OnDelete func(e ManifestEntry)
	// Now names the manifest (default time.Now).
	Now func() time.Time
}

// ManifestEntry is one line of the clean manifest (JSON lines).
type ManifestEntry struct {
	Path  string `json:"path"` // relative to the root, slash-separated
	Type  string `json:"type"` // file, dir, symlink, fifo, socket, chardev, blockdev
	Size  int64  `json:"size"`
	Links int    `json:"links,omitempty"` // hard links, when more than one
}

// Skipped is an entry CleanAllBut deliberately left.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// CleanResult is what CleanAllBut did (or would do, in a dry run).
type CleanResult struct {
	Manifest string          `json:"manifest,omitempty"` // path of the written manifest
	Entries  []ManifestEntry `json:"entries"`
	Skipped  []Skipped       `json:"skipped,omitempty"`
	Bytes    int64           `json:"bytes"`
	// Failed lists entries that could not be deleted (immutable files,
	// I/O errors); the error returned wraps all of them.
	Failed []Skipped `json:"failed,omitempty"`
	// Deleted and DeletedBytes count what was actually deleted (a
	// directory left because a child failed is not counted).
	Deleted      int   `json:"deleted"`
	DeletedBytes int64 `json:"deleted-bytes"`
}

// ErrPartial: some entries could not be deleted.
var ErrPartial = errors.New("not everything could be deleted")

// CleanAllBut deletes everything below root except the staging folder
// (o.Keep) and lost+found, to refresh an installed system in place. It
//
//   - never follows a symlink (symlinks are deleted as links) and resolves
//     every path component relative to an already opened directory with
//     O_NOFOLLOW, so a symlink swapped in mid-run cannot redirect it;
//   - never crosses into another mount (bind mounts included): mount points
//     and the directories leading to them are kept;
//   - writes the manifest of what it will delete (path, type, size) into
//     the staging folder and syncs it before deleting anything, so that a
//     full disk fails the run before any damage;
//   - deletes only entries on the manifest.
//
// Hard links shared between the staging folder and the rest of the tree
// lose the outside name only; the data stays reachable from the staging
// folder.
func CleanAllBut(ctx context.Context, root string, o CleanOptions) (*CleanResult, error) {
	keep := o.Keep
	if keep == "" {
		keep = "minint"
	}
	if keep == "." || keep == ".." || strings.ContainsAny(keep, "/\x00") {
		return nil, fmt.Errorf("%w: staging folder %q must be a single name below the root", ErrUnsafePath, keep)
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(absRoot); err == nil {
		absRoot = r
	}
	if absRoot == "/" {
		return nil, fmt.Errorf("%w: refusing to clean the running system's root /", ErrUnsafePath)
	}
	rootFd, err := unix.Open(absRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", absRoot, err)
	}
	defer unix.Close(rootFd)
	var rst, kst unix.Stat_t
	if err := unix.Fstat(rootFd, &rst); err != nil {
		return nil, err
	}
	sys := o.SysRoot
	if sys == "" {
		sys = "/"
	}
	ms := readMounts(sys)
	if err := refuseRunningRoot(absRoot, &rst, sys, ms); err != nil {
		return nil, err
	}
	if err := unix.Fstatat(rootFd, keep, &kst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("staging folder %s: %w (refusing to clean without it)", filepath.Join(absRoot, keep), err)
	}
	if kst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%w: staging folder %s is not a directory (a symlink?)", ErrUnsafePath, filepath.Join(absRoot, keep))
	}

	mounts := map[string]bool{}   // relative mount points below root
	ancestor := map[string]bool{} // relative dirs containing a mount point
	for _, m := range ms {
		rel, err := filepath.Rel(absRoot, m.target)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		mounts[rel] = true
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			ancestor[d] = true
		}
	}

	res := &CleanResult{}
	w := &cleanWalker{ctx: ctx, dev: rst.Dev, mounts: mounts, ancestor: ancestor, res: res}
	if err := w.scan(rootFd, "", keep); err != nil {
		return nil, err
	}
	if o.DryRun {
		return res, nil
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	stamp := "clean-manifest-" + now().UTC().Format("20060102T150405Z")
	name := stamp + ".jsonl"
	err = writeManifest(rootFd, keep, name, res.Entries)
	for i := 2; errors.Is(err, unix.EEXIST) && i < 100; i++ {
		// Never overwrite an earlier manifest: a second run within the
		// same second gets the next free name.
		name = fmt.Sprintf("%s-%d.jsonl", stamp, i)
		err = writeManifest(rootFd, keep, name, res.Entries)
	}
	if err != nil {
		return nil, fmt.Errorf("writing the manifest into %s (nothing was deleted): %w", filepath.Join(absRoot, keep), err)
	}
	res.Manifest = filepath.Join(absRoot, keep, name)
	planned := make(map[string]bool, len(res.Entries))
	for _, e := range res.Entries {
		planned[e.Path] = true
	}
	w.planned, w.onDelete = planned, o.OnDelete
	w.remove(rootFd, "", keep)
	if len(res.Failed) > 0 {
		var b strings.Builder
		for i, f := range res.Failed {
			if i == 10 {
				fmt.Fprintf(&b, "; … %d more", len(res.Failed)-10)
				break
			}
			fmt.Fprintf(&b, "; %s: %s", f.Path, f.Reason)
		}
		return res, fmt.Errorf("%w below %s: %s%s", ErrPartial, absRoot, plural.Count(len(res.Failed), "entry"), b.String())
	}
	return res, ctx.Err()
}

// refuseRunningRoot refuses a root that is the running system's root
// filesystem under another name. Comparing paths is not enough: a bind
// mount of / (or a second mount of its device) at /mnt/x has another path
// but the same files, and a dry run there plans to delete the whole
// running system. So the root's device and inode are compared with those
// of the running root (sys, "/" outside tests), and a root reached through
// a mount of the running root's device other than / itself (a bind mount
// of / or of one of its directories) is refused too. A plain directory of
// the running root under its own path (a chroot tree) stays allowed.
func refuseRunningRoot(absRoot string, rst *unix.Stat_t, sys string, ms []mountEntry) error {
	var sst unix.Stat_t
	if err := unix.Stat(sys, &sst); err != nil {
		return fmt.Errorf("stat of the running root %s: %w", sys, err)
	}
	if rst.Dev == sst.Dev && rst.Ino == sst.Ino {
		return fmt.Errorf("%w: %s is the running system's root / (a bind mount or second mount of it); refusing to clean it", ErrUnsafePath, absRoot)
	}
	// The mount that holds absRoot: the longest mount point above it.
	var in *mountEntry
	for i := range ms {
		t := ms[i].target
		if t == absRoot || t == "/" || strings.HasPrefix(absRoot, strings.TrimSuffix(t, "/")+"/") {
			if in == nil || len(t) >= len(in.target) {
				in = &ms[i]
			}
		}
	}
	if in != nil && in.target != "/" && in.devnum == fmt.Sprintf("%d:%d", unix.Major(sst.Dev), unix.Minor(sst.Dev)) {
		return fmt.Errorf("%w: %s lies on %s, a mount of the running system's root filesystem (device %s); refusing to clean it", ErrUnsafePath, absRoot, in.target, in.devnum)
	}
	return nil
}

// Inode flags from linux/fs.h (FS_IOC_GETFLAGS): an immutable file cannot
// be unlinked, nor can anything be unlinked from an immutable or
// append-only directory.
const (
	fsImmutableFl = 0x00000010
	fsAppendFl    = 0x00000020
)

// clearNoDelete clears the immutable and append-only flags of fd, when
// set: resolv.conf is often made immutable, and without this a clean would
// fail on it after deleting everything else, and fail again on every retry.
// Only ever called for entries of the root being cleaned (never inside the
// staging folder), and only on regular files and directories: on a device
// node the ioctl would reach the device's driver.
func clearNoDelete(fd int) error {
	fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if fl&(fsImmutableFl|fsAppendFl) == 0 {
		return nil
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(fl&^(fsImmutableFl|fsAppendFl)))
}

type cleanWalker struct {
	ctx      context.Context
	dev      uint64
	mounts   map[string]bool
	ancestor map[string]bool
	res      *CleanResult
	planned  map[string]bool
	onDelete func(ManifestEntry)
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	}
	return "unknown"
}

func readNames(fd int) ([]string, error) {
	// A fresh open file description: a dup would share (and exhaust) the
	// directory offset of fd.
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// scan lists, in deletion order (children before their directory), what
// lies below dirFd, whose path relative to the root is rel.
func (w *cleanWalker) scan(dirFd int, rel, keep string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	names, err := readNames(dirFd)
	if err != nil {
		return fmt.Errorf("listing %q: %w", "/"+rel, err)
	}
	for _, n := range names {
		p := path.Join(rel, n)
		if rel == "" && (n == keep || n == "lost+found") {
			w.res.Skipped = append(w.res.Skipped, Skipped{p, map[bool]string{true: "staging folder", false: "filesystem's lost+found"}[n == keep]})
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirFd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %q: %w", "/"+p, err)
		}
		typ := fileType(st.Mode)
		if w.mounts[p] || (typ == "dir" && st.Dev != w.dev) {
			w.res.Skipped = append(w.res.Skipped, Skipped{p, "mount point"})
			continue
		}
		if typ == "dir" {
			fd, err := unix.Openat(dirFd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("opening %q: %w", "/"+p, err)
			}
			err = w.scan(fd, p, keep)
			unix.Close(fd)
			if err != nil {
				return err
			}
			if w.ancestor[p] {
				w.res.Skipped = append(w.res.Skipped, Skipped{p, "contains a mount point"})
				continue
			}
		}
		e := ManifestEntry{Path: p, Type: typ}
		if typ == "file" {
			e.Size = st.Size
			w.res.Bytes += st.Size
		}
		if st.Nlink > 1 && typ != "dir" {
			e.Links = int(st.Nlink)
		}
		w.res.Entries = append(w.res.Entries, e)
	}
	return nil
}

func (w *cleanWalker) remove(dirFd int, rel, keep string) {
	names, err := readNames(dirFd)
	if err != nil {
		w.res.Failed = append(w.res.Failed, Skipped{"/" + rel, err.Error()})
		return
	}
	for _, n := range names {
		if w.ctx.Err() != nil {
			return // interrupted: a rerun plans and deletes what is left
		}
		p := path.Join(rel, n)
		if rel == "" && n == keep {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirFd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir && st.Dev == w.dev && !w.mounts[p] && (w.planned[p] || w.ancestor[p]) {
			fd, err := unix.Openat(dirFd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				w.res.Failed = append(w.res.Failed, Skipped{p, err.Error()})
				continue
			}
			w.remove(fd, p, keep)
			unix.Close(fd)
		}
		if !w.planned[p] || (isDir && st.Dev != w.dev) {
			continue
		}
		flags := 0
		if isDir {
			flags = unix.AT_REMOVEDIR
		}
		err := unix.Unlinkat(dirFd, n, flags)
		if err == unix.EPERM && w.clearFlags(dirFd, n, st.Mode) {
			err = unix.Unlinkat(dirFd, n, flags)
		}
		if err != nil {
			if isDir && err == unix.ENOTEMPTY && w.failedBelow(p) {
				continue // the child's failure is the one to report
			}
			w.res.Failed = append(w.res.Failed, Skipped{p, err.Error()})
			continue
		}
		w.res.Deleted++
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			w.res.DeletedBytes += st.Size
		}
		if w.onDelete != nil {
			w.onDelete(ManifestEntry{Path: p, Type: fileType(st.Mode), Size: st.Size})
		}
	}
}

// clearFlags clears what forbids unlinking n from dirFd: the immutable or
// append-only flag of the directory itself or of n. It reports whether a
// retry is worth it.
func (w *cleanWalker) clearFlags(dirFd int, n string, mode uint32) bool {
	cleared := clearNoDelete(dirFd) == nil
	if t := mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFDIR {
		fd, err := unix.Openat(dirFd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			var st unix.Stat_t
			// The same entry still (not swapped for something else).
			if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == t && clearNoDelete(fd) == nil {
				cleared = true
			}
			unix.Close(fd)
		}
	}
	return cleared
}

func (w *cleanWalker) failedBelow(p string) bool {
	for _, f := range w.res.Failed {
		if strings.HasPrefix(f.Path, p+"/") {
			return true
		}
	}
	return false
}

func writeManifest(rootFd int, keep, name string, entries []ManifestEntry) error {
	kfd, err := unix.Openat(rootFd, keep, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(kfd)
	fd, err := unix.Openat(kfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, e := range entries {
		if err = enc.Encode(e); err != nil {
			break
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(kfd, name, 0)
		return err
	}
	return unix.Fsync(kfd)
}
