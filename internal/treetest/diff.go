package treetest

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DiffOptions relaxes Diff. The zero value compares everything except
// atime, with mtimes exact to the nanosecond.
type DiffOptions struct {
	// MtimePrecision is the resolution both mtimes are truncated to before
	// comparing (WIM keeps 100 ns). Zero means exact.
	MtimePrecision time.Duration
	IgnoreMtime    bool // no mtime comparison at all
	IgnoreDirMtime bool // no mtime comparison for directories
	// IgnoreSymlinkMtime skips symlinks' mtimes, which some tools do not restore.
	IgnoreSymlinkMtime bool
	CompareAtime       bool // atime is skipped unless this is set
	// IgnoreRoot skips the metadata of the root directory itself (its
	// children are still compared).
	IgnoreRoot  bool
	IgnoreOwner bool
	// IgnoreMode skips permission bits (including setuid, setgid, sticky),
	// for trees that went through a format without Unix modes.
	IgnoreMode   bool
	IgnoreXattrs bool
	// IgnoreXattr, when set, skips the xattrs for which it returns true.
	IgnoreXattr func(name string) bool
	// IgnoreHardLinks skips comparing which names share an inode.
	IgnoreHardLinks bool
	// Ignore, when set, skips the paths (and their metadata) for which it
	// returns true.
	Ignore func(path string) bool
}

// WIMOptions are the DiffOptions for a tree that went through a WIM with
// UNIX data: everything kept, mtimes to 100 ns, the root's own metadata not
// compared (applying into an existing directory need not change it).
func WIMOptions() DiffOptions {
	return DiffOptions{MtimePrecision: 100 * time.Nanosecond, IgnoreRoot: true}
}

// Diff compares tree a ("want") with b ("got") and returns one line per
// difference, sorted by path, each naming the path, what differs and both
// values. No lines means the trees are identical under opts.
func Diff(a, b Tree, opts DiffOptions) []string {
	var out []string
	add := func(path, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: ", quote(path))+fmt.Sprintf(format, args...))
	}
	paths := map[string]bool{}
	for p := range a.Entries {
		paths[p] = true
	}
	for p := range b.Entries {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		if opts.Ignore == nil || !opts.Ignore(p) {
			sorted = append(sorted, p)
		}
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		x, y := a.Entries[p], b.Entries[p]
		switch {
		case y == nil:
			add(p, "only in %s (%s)", a.Root, typeName(x.Type))
			continue
		case x == nil:
			add(p, "only in %s (%s)", b.Root, typeName(y.Type))
			continue
		}
		if x.Type != y.Type {
			add(p, "type %s != %s", typeName(x.Type), typeName(y.Type))
			continue
		}
		if p == "." && opts.IgnoreRoot {
			continue
		}
		if !opts.IgnoreMode && x.Perm != y.Perm {
			add(p, "mode %s != %s", permString(x.Perm), permString(y.Perm))
		}
		if !opts.IgnoreOwner && (x.UID != y.UID || x.GID != y.GID) {
			add(p, "owner %d:%d != %d:%d", x.UID, x.GID, y.UID, y.GID)
		}
		switch x.Type {
		case 0:
			if x.Size != y.Size {
				add(p, "size %d != %d", x.Size, y.Size)
			} else if x.SHA256 != y.SHA256 {
				add(p, "content differs (sha256 %x… != %x…)", x.SHA256[:6], y.SHA256[:6])
			}
		case fs.ModeSymlink:
			if x.Target != y.Target {
				add(p, "symlink target %s != %s", quote(x.Target), quote(y.Target))
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			if x.Rdev != y.Rdev {
				add(p, "device %s != %s", devString(x.Rdev), devString(y.Rdev))
			}
		}
		if !opts.IgnoreXattrs {
			diffXattrs(p, x.Xattrs, y.Xattrs, opts.IgnoreXattr, add)
		}
		if !opts.IgnoreHardLinks && !slices.Equal(x.Links, y.Links) {
			add(p, "hard links [%s] != [%s]", quoteList(x.Links), quoteList(y.Links))
		}
		checkMtime := !opts.IgnoreMtime &&
			!(opts.IgnoreDirMtime && x.Type == fs.ModeDir) &&
			!(opts.IgnoreSymlinkMtime && x.Type == fs.ModeSymlink)
		if checkMtime && !sameTime(x.Mtime, y.Mtime, opts.MtimePrecision) {
			add(p, "mtime %s != %s", x.Mtime.Format(time.RFC3339Nano), y.Mtime.Format(time.RFC3339Nano))
		}
		if opts.CompareAtime && !sameTime(x.Atime, y.Atime, opts.MtimePrecision) {
			add(p, "atime %s != %s", x.Atime.Format(time.RFC3339Nano), y.Atime.Format(time.RFC3339Nano))
		}
	}
	return out
}

func diffXattrs(p string, a, b map[string]string, ignore func(string) bool, add func(string, string, ...any)) {
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		if ignore == nil || !ignore(n) {
			sorted = append(sorted, n)
		}
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		va, oka := a[n]
		vb, okb := b[n]
		switch {
		case !okb:
			add(p, "xattr %s missing (want %s)", n, quote(va))
		case !oka:
			add(p, "xattr %s unexpected (%s)", n, quote(vb))
		case va != vb:
			add(p, "xattr %s = %s, want %s", n, quote(vb), quote(va))
		}
	}
}

// sameTime compares after truncating both to prec. Truncation is done on
// nanoseconds since 1970, which also works for times before 1970 because
// floor division is used.
func sameTime(a, b time.Time, prec time.Duration) bool {
	if prec <= 1 {
		return a.Equal(b)
	}
	return floorDiv(a.UnixNano(), int64(prec)) == floorDiv(b.UnixNano(), int64(prec))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func typeName(t fs.FileMode) string {
	switch t {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symlink"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "character device"
	case fs.ModeDevice:
		return "block device"
	case fs.ModeNamedPipe:
		return "fifo"
	case fs.ModeSocket:
		return "socket"
	}
	return t.String()
}

// permString shows a mode the way chmod takes it: 04755.
func permString(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

func devString(d uint64) string { return fmt.Sprintf("%d:%d", unix.Major(d), unix.Minor(d)) }

// quote makes names with newlines, control and invalid bytes readable while
// leaving ordinary names as they are.
func quote(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && !strings.ContainsAny(s, " \"") {
		return s
	}
	return q
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quote(s)
	}
	return strings.Join(q, " ")
}
