//go:build linux

package wim

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

type applyEntry struct {
	f      *File
	rel    string // path relative to the target, "" for the root
	parent *applyEntry
	rep    *applyEntry // hard link: the entry that carries the inode
	// metaDone is set when a regular file's metadata was set through its
	// descriptor right after its data (by whichever goroutine wrote it).
	metaDone atomic.Bool
}

func (e *applyEntry) name() string { return e.f.Name }

type applier struct {
	opts   ApplyOptions
	rootfd int
	dir    string
	// dirs caches O_PATH descriptors of the target's directories, and
	// targets is how many files of one blob are open at once (see
	// dircache_linux.go).
	dirs    *dirCache
	targets int
	// euid/egid own every file we create in a directory we created.
	euid, egid uint32
	// existing marks directories that were already there (their setgid
	// bit may give new files another group).
	existing map[*applyEntry]bool
	// sums, when opts.Checksums is set, is each blob's XXH64 to check
	// its data against instead of its SHA-1.
	sums   map[*blob]uint64
	done   atomic.Int64
	total  int64
	progMu sync.Mutex
}

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Apply extracts the image into dir, creating dir if needed.
//
// The whole tree is validated first (ErrInsecurePath for names that are
// empty, ".", "..", contain '/' or NUL, or repeat in a directory). Every
// path is then opened relative to dir with openat2(RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS), so nothing can be written outside dir or through a
// symlink. File data is decompressed and written by opts.Threads workers;
// each blob's SHA-1 (or its XXH64 in opts.Checksums) is checked as it is
// written and a mismatch fails with ErrChecksum naming the file (whose
// partial data is removed). Symlinks,
// device nodes, FIFOs and sockets are created after the data, then hard
// links, then owners, xattrs, modes and timestamps (directories last).
//
// Cancelling ctx stops the apply between files (and between chunks of a
// large file) and returns ctx's error; what was created stays, possibly
// without its final metadata.
func (img *Image) Apply(ctx context.Context, dir string, opts ApplyOptions) error {
	root, err := img.Root()
	if err != nil {
		return err
	}
	if err := validateTree(root); err != nil {
		return err
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.GOMAXPROCS(0)
	}
	p, err := planApply(img, root, opts)
	if err != nil {
		return err
	}
	var sums map[*blob]uint64
	if opts.Checksums != nil && !opts.InsecureSkipHashCheck {
		if sums, err = img.r.checksumTable(opts.Checksums); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(rootfd)
	ndirs, targets := fdBudget(opts.Threads)
	growFDTable(rootfd, min(ndirs, len(p.dirs))+opts.Threads*(targets+2))
	a := &applier{opts: opts, rootfd: rootfd, dir: dir, dirs: newDirCache(ndirs), targets: targets,
		euid: uint32(os.Geteuid()), egid: uint32(os.Getegid()), existing: map[*applyEntry]bool{}, sums: sums, total: p.total}
	defer a.dirs.close()
	return a.apply(ctx, p)
}

// apply creates what p plans, phase by phase: directories (parents first,
// 0700 until their metadata is set), empty files, file data, symlinks and
// special files, hard links, the metadata of everything that has not got
// it yet, and last the directories' metadata (children first), so that a
// read-only directory is filled before it becomes read-only.
func (a *applier) apply(ctx context.Context, p *applyPlan) error {
	each := func(es []*applyEntry, fn func(*applyEntry) error) error {
		for _, e := range es {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	if err := each(p.dirs[1:], a.mkdir); err != nil {
		return err
	}
	if err := each(p.empties, a.empty); err != nil {
		return err
	}
	if err := a.writeData(ctx, p.jobs); err != nil {
		return err
	}
	if err := each(p.others, a.special); err != nil {
		return err
	}
	if err := each(p.links, a.hardlink); err != nil {
		return err
	}
	err := each(p.all, func(e *applyEntry) error {
		if e.f.unixType() == unixDir || e.rep != nil {
			return nil
		}
		if e.metaDone.Load() {
			return nil
		}
		return a.metadata(e)
	})
	if err != nil {
		return err
	}
	dirs := p.dirs
	if !p.rootMeta {
		dirs = dirs[1:]
	}
	backwards := make([]*applyEntry, len(dirs))
	for i, e := range dirs {
		backwards[len(dirs)-1-i] = e
	}
	return each(backwards, a.metadata)
}

// applyPlan is what Apply creates, grouped by phase.
type applyPlan struct {
	all     []*applyEntry
	dirs    []*applyEntry // parents first; dirs[0] is the target itself
	others  []*applyEntry // symlinks, devices, FIFOs, sockets
	links   []*applyEntry // further names of a hard-linked inode
	empties []*applyEntry // regular files without data
	jobs    map[*blob][]*applyEntry
	total   int64 // bytes of file data to write
	// rootMeta: the image root's metadata goes on the target directory.
	rootMeta bool

	sel    map[*File]bool // nil: everything below an added entry
	groups map[groupKey]*applyEntry
}

type groupKey struct {
	id     uint64
	hash   [20]byte
	typ    uint32
	target string
}

// planApply decides which entries of the image go where: the whole image,
// the subtrees opts.Paths names at their place (with their parents), or
// those subtrees directly below the target (opts.Flatten).
func planApply(img *Image, root *File, opts ApplyOptions) (*applyPlan, error) {
	p := &applyPlan{jobs: map[*blob][]*applyEntry{}, groups: map[groupKey]*applyEntry{}, rootMeta: true}
	rootEntry := &applyEntry{f: root}
	p.all = append(p.all, rootEntry)
	p.dirs = append(p.dirs, rootEntry)
	tops := root.Children
	switch {
	case opts.Paths != nil && opts.Flatten:
		tops, p.rootMeta = nil, false
		asked := map[*File]bool{}
		for _, path := range opts.Paths {
			f, err := img.Lookup(path)
			if err != nil {
				return nil, err
			}
			asked[f] = true
		}
		byName, done := map[string]string{}, map[*File]bool{}
	paths:
		for _, path := range opts.Paths {
			f, _ := img.Lookup(path)
			// Like wimlib, a path inside another one is extracted
			// with it, once.
			for a := f.Parent; a != nil; a = a.Parent {
				if asked[a] {
					continue paths
				}
			}
			if done[f] {
				continue
			}
			done[f] = true
			add := []*File{f}
			if f == root {
				add = root.Children
			}
			for _, c := range add {
				if prev, dup := byName[c.Name]; dup {
					return nil, fmt.Errorf("%w: %s and %s would both be extracted as %q", ErrInsecurePath, prev, c.Path(), c.Name)
				}
				byName[c.Name] = c.Path()
				tops = append(tops, c)
			}
		}
	case opts.Paths != nil:
		p.sel = map[*File]bool{root: true}
		for _, path := range opts.Paths {
			f, err := img.Lookup(path)
			if err != nil {
				return nil, err
			}
			for a := f.Parent; a != nil; a = a.Parent {
				p.sel[a] = true
			}
			var mark func(f *File)
			mark = func(f *File) {
				p.sel[f] = true
				for _, c := range f.Children {
					mark(c)
				}
			}
			mark(f)
		}
	}
	for _, c := range tops {
		if err := p.add(rootEntry, c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// add plans c (and, for a directory, what is selected below it) as a child
// of the entry d.
func (p *applyPlan) add(d *applyEntry, c *File) error {
	if p.sel != nil && !p.sel[c] {
		return nil
	}
	rel := c.Name
	if d.rel != "" {
		rel = d.rel + "/" + c.Name
	}
	e := &applyEntry{f: c, rel: rel, parent: d}
	p.all = append(p.all, e)
	typ := c.unixType()
	if typ == unixDir {
		p.dirs = append(p.dirs, e)
		for _, cc := range c.Children {
			if err := p.add(e, cc); err != nil {
				return err
			}
		}
		return nil
	}
	if typ == unixSymlink && c.LinkTarget == "" {
		return fmt.Errorf("%w: %s: symlink without a target", ErrFormat, c.Path())
	}
	if c.HardLinkGroup != 0 {
		// Names of one inode must agree on type and data; otherwise (a
		// corrupt or odd WIM) they are applied as separate files, like
		// wimlib does.
		k := groupKey{c.HardLinkGroup, c.Hash, typ, c.LinkTarget}
		if rep := p.groups[k]; rep != nil {
			e.rep = rep
			p.links = append(p.links, e)
			return nil
		}
		p.groups[k] = e
	}
	switch {
	case typ != unixRegular:
		p.others = append(p.others, e)
	case c.Hash == zeroHash:
		p.empties = append(p.empties, e)
	case c.data == nil:
		return c.missing(c.Hash)
	default:
		if _, ok := p.jobs[c.data]; !ok {
			p.total += c.data.size
		}
		p.jobs[c.data] = append(p.jobs[c.data], e)
	}
	return nil
}

func (a *applier) pathErr(op string, e *applyEntry, err error) error {
	return &os.PathError{Op: op, Path: a.dir + "/" + e.rel, Err: err}
}

// dirRef is a descriptor of a directory of the target, to be released: the
// target itself, a cached descriptor (pinned until released) or one opened
// for the occasion.
type dirRef struct {
	fd     int
	cached *applyEntry // unpin on release
	owned  bool        // close on release
}

// parentDir returns e's parent directory, resolved beneath the target
// without following symlinks when it is not cached (and then cached).
func (a *applier) parentDir(e *applyEntry) (dirRef, error) {
	p := e.parent
	if p == nil || p.rel == "" {
		return dirRef{fd: a.rootfd}, nil
	}
	if fd := a.dirs.get(p); fd >= 0 {
		return dirRef{fd: fd, cached: p}, nil
	}
	fd, err := a.retryFDs(func() (int, error) {
		return openBeneath(a.rootfd, p.rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return dirRef{}, a.pathErr("open", p, err)
	}
	if a.dirs.add(p, fd) {
		return dirRef{fd: fd, cached: p}, nil
	}
	return dirRef{fd: fd, owned: true}, nil
}

func (a *applier) release(r dirRef) {
	switch {
	case r.cached != nil:
		a.dirs.put(r.cached)
	case r.owned:
		unix.Close(r.fd)
	}
}

var openat2Missing atomic.Bool

// openBeneath opens rel under dirfd without leaving it or following
// symlinks: openat2 where available, else a component walk with O_NOFOLLOW.
func openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if !openat2Missing.Load() {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolveFlags})
		if err != unix.ENOSYS {
			return fd, err
		}
		openat2Missing.Store(true)
	}
	cur, err := unix.Dup(dirfd)
	if err != nil {
		return -1, err
	}
	for {
		i := 0
		for i < len(rel) && rel[i] != '/' {
			i++
		}
		if i == len(rel) {
			fd, err := unix.Openat(cur, rel, flags|unix.O_NOFOLLOW, mode)
			unix.Close(cur)
			return fd, err
		}
		next, err := unix.Openat(cur, rel[:i], unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
		rel = rel[i+1:]
	}
}

// removeExisting deletes a non-directory in the way of e.
func (a *applier) removeExisting(pfd int, e *applyEntry) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, e.name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return a.pathErr("create", e, unix.EISDIR)
	}
	return unix.Unlinkat(pfd, e.name(), 0)
}

func (a *applier) mkdir(e *applyEntry) error {
	pd, err := a.parentDir(e)
	if err != nil {
		return err
	}
	defer a.release(pd)
	pfd := pd.fd
	err = unix.Mkdirat(pfd, e.name(), 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, e.name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return a.pathErr("stat", e, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(pfd, e.name(), 0); err != nil {
				return a.pathErr("unlink", e, err)
			}
			err = unix.Mkdirat(pfd, e.name(), 0o700)
		} else {
			a.existing[e] = true
			err = nil
		}
	}
	if err != nil {
		return a.pathErr("mkdir", e, err)
	}
	// Its children come next: cache it while the parent is at hand. The
	// parent is trusted and the name has no '/': O_NOFOLLOW on the last
	// component is all that is needed.
	fd, err := a.retryFDs(func() (int, error) {
		return unix.Openat(pfd, e.name(), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return a.pathErr("open", e, err)
	}
	if a.dirs.add(e, fd) {
		a.dirs.put(e)
	} else {
		unix.Close(fd)
	}
	return nil
}

// create makes a new empty regular file for e and returns it open for
// writing.
func (a *applier) create(e *applyEntry) (int, error) {
	pd, err := a.parentDir(e)
	if err != nil {
		return -1, err
	}
	defer a.release(pd)
	pfd := pd.fd
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	open := func() (int, error) { return unix.Openat(pfd, e.name(), flags, 0o600) }
	fd, err := a.retryFDs(open)
	if err == unix.EEXIST {
		if err := a.removeExisting(pfd, e); err != nil {
			return -1, a.pathErr("remove", e, err)
		}
		fd, err = a.retryFDs(open)
	}
	if err != nil {
		return -1, a.pathErr("create", e, err)
	}
	return fd, nil
}

// empty creates an empty regular file with its metadata.
func (a *applier) empty(e *applyEntry) error {
	fd, err := a.create(e)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return a.fileMetadata(fd, e)
}

// fileMetadata sets a regular file's owner, xattrs, mode and times through
// its descriptor (see metadata for the order).
func (a *applier) fileMetadata(fd int, e *applyEntry) error {
	f := e.f
	if f.HasUnixData && !a.opts.NoUnixData {
		// Files are created by us in directories we created without
		// setgid, so they already belong to euid/egid; skip the chown then
		// (most of a root filesystem). Files in directories that existed
		// before (the target itself included) may inherit a setgid
		// directory's group, so they are always chowned.
		if f.UID != a.euid || f.GID != a.egid || e.parent == nil || e.parent.parent == nil || a.existing[e.parent] {
			if err := unix.Fchown(fd, int(f.UID), int(f.GID)); err != nil {
				return a.pathErr("chown", e, err)
			}
		}
		for _, x := range f.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return a.pathErr("setxattr "+x.Name, e, err)
			}
		}
	}
	if err := unix.Fchmod(fd, f.Perm()); err != nil {
		return a.pathErr("chmod", e, err)
	}
	if err := futimens(fd, f); err != nil {
		return a.pathErr("utimes", e, err)
	}
	e.metaDone.Store(true)
	return nil
}

func futimens(fd int, f *File) error {
	as, ans := f.AccessTime.unix()
	ms, mns := f.ModTime.unix()
	ts := [2]unix.Timespec{{Sec: as, Nsec: ans}, {Sec: ms, Nsec: mns}}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (a *applier) progress(n int64) {
	d := a.done.Add(n)
	if a.opts.Progress != nil {
		a.progMu.Lock()
		a.opts.Progress(d, a.total)
		a.progMu.Unlock()
	}
}

// writeData writes every blob to the files that hold it, in WIM order so
// that the source is read sequentially, on opts.Threads workers.
func (a *applier) writeData(ctx context.Context, jobs map[*blob][]*applyEntry) error {
	// The entries and the sort keys go with their blob: looking them up
	// again through the map and the blob, blob by blob, missed the cache
	// every time.
	type job struct {
		part    int
		offset  int64
		b       *blob
		entries []*applyEntry
	}
	order := make([]job, 0, len(jobs))
	for b, es := range jobs {
		order = append(order, job{int(b.partNum), int64(b.res.rh.offset), b, es})
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].part != order[j].part {
			return order[i].part < order[j].part
		}
		return order[i].offset < order[j].offset
	})
	if a.opts.Threads == 1 {
		// One core (a PE with one vCPU): no goroutine per blob to hand
		// over to and back.
		for _, j := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := a.writeBlob(ctx, j.b, j.entries); err != nil {
				return err
			}
		}
		return nil
	}
	// A fixed set of workers takes the blobs in order: a goroutine per
	// blob started with a small stack that the decompressor then grew,
	// and copying those stacks cost 4% of the apply's CPU.
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(a.opts.Threads, len(order)) {
		g.Go(func() error {
			for i := next.Add(1) - 1; i < int64(len(order)); i = next.Add(1) - 1 {
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := a.writeBlob(gctx, order[i].b, order[i].entries); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

var zeroChunk = make([]byte, 256<<10)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroChunk))
		if !bytes.Equal(b[:n], zeroChunk[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
		off += int64(n)
	}
	return nil
}

// writeBlob writes b to the files that hold it, a.targets files at a time:
// each further batch reads the blob again, which is rare (many copies of
// one file) and keeps the descriptors held bounded.
func (a *applier) writeBlob(ctx context.Context, b *blob, targets []*applyEntry) error {
	if b.solid {
		return unsupportedErr("%s: data is in a solid resource", targets[0].f.Path())
	}
	for first := true; len(targets) > 0; first = false {
		n := min(len(targets), a.targets)
		if err := a.writeBatch(ctx, b, targets[:n], first); err != nil {
			return err
		}
		targets = targets[n:]
	}
	return nil
}

// writeBatch writes b to targets, counting its bytes as progress if count
// is set; on failure it removes what it created.
func (a *applier) writeBatch(ctx context.Context, b *blob, targets []*applyEntry, count bool) (err error) {
	fds := make([]int, 0, len(targets))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if err != nil {
			for _, e := range targets[:len(fds)] {
				if pd, perr := a.parentDir(e); perr == nil {
					unix.Unlinkat(pd.fd, e.name(), 0)
					a.release(pd)
				}
			}
		}
	}()
	for _, e := range targets {
		fd, err := a.create(e)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
	}
	var h hash.Hash // nil: InsecureSkipHashCheck
	switch {
	case a.sums != nil:
		h = xxhash.New()
	case !a.opts.InsecureSkipHashCheck:
		h = sha1.New()
	}
	var off int64
	tailHole := false
	err = b.res.eachChunk(ctx, a.opts.Threads, func(c []byte) error {
		if h != nil {
			h.Write(c)
		}
		// All-zero chunks become holes: sparse files stay sparse and
		// large empty regions cost no writes.
		tailHole = isZero(c)
		if !tailHole {
			for i, fd := range fds {
				if err := pwriteFull(fd, c, off); err != nil {
					return a.pathErr("write", targets[i], err)
				}
			}
		}
		off += int64(len(c))
		if count {
			a.progress(int64(len(c)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", targets[0].f.Path(), err)
	}
	if x, ok := h.(*xxhash.Digest); ok {
		if got, want := x.Sum64(), a.sums[b]; got != want {
			return fmt.Errorf("%w: %s: data has XXH64 %016x, the checksum table says %016x", ErrChecksum, targets[0].f.Path(), got, want)
		}
	} else if h != nil {
		if got := [20]byte(h.Sum(nil)); got != b.hash {
			return fmt.Errorf("%w: %s: data has SHA-1 %x, want %x", ErrChecksum, targets[0].f.Path(), got, b.hash)
		}
	}
	for i, fd := range fds {
		// A trailing hole was skipped, not written: set the size.
		if tailHole {
			if err := unix.Ftruncate(fd, off); err != nil {
				return a.pathErr("truncate", targets[i], err)
			}
		}
		if err := a.fileMetadata(fd, targets[i]); err != nil {
			return err
		}
	}
	return nil
}

// special creates symlinks, device nodes, FIFOs and sockets.
func (a *applier) special(e *applyEntry) error {
	pd, err := a.parentDir(e)
	if err != nil {
		return err
	}
	defer a.release(pd)
	pfd := pd.fd
	f := e.f
	mk := func() error {
		switch t := f.unixType(); t {
		case unixSymlink:
			return unix.Symlinkat(f.LinkTarget, pfd, e.name())
		case unixChar, unixBlock, unixFIFO, unixSocket:
			return unix.Mknodat(pfd, e.name(), t|0o600, int(f.Rdev))
		default:
			return fmt.Errorf("%w: file type 0%o", ErrUnsupported, t)
		}
	}
	err = mk()
	if err == unix.EEXIST {
		if err := a.removeExisting(pfd, e); err != nil {
			return a.pathErr("remove", e, err)
		}
		err = mk()
	}
	if err != nil {
		return a.pathErr("create", e, err)
	}
	return nil
}

func (a *applier) hardlink(e *applyEntry) error {
	sd, err := a.parentDir(e.rep)
	if err != nil {
		return err
	}
	defer a.release(sd)
	dd, err := a.parentDir(e)
	if err != nil {
		return err
	}
	defer a.release(dd)
	src, dst := sd.fd, dd.fd
	err = unix.Linkat(src, e.rep.name(), dst, e.name(), 0)
	if err == unix.EEXIST {
		if err := a.removeExisting(dst, e); err != nil {
			return a.pathErr("remove", e, err)
		}
		err = unix.Linkat(src, e.rep.name(), dst, e.name(), 0)
	}
	if err != nil {
		return a.pathErr("link", e, err)
	}
	return nil
}

// metadata sets owner, xattrs, mode and timestamps, in that order: chown
// clears setuid bits and security.capability, so it must come first.
func (a *applier) metadata(e *applyEntry) error {
	pd, err := a.parentDir(e)
	if err != nil {
		return err
	}
	defer a.release(pd)
	pfd := pd.fd
	name := e.name()
	if e.parent == nil {
		// The root's metadata goes on the target directory itself.
		name = ""
	}
	f := e.f
	typ := f.unixType()
	atFlags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		atFlags |= unix.AT_EMPTY_PATH
	}
	if f.HasUnixData && !a.opts.NoUnixData {
		if err := unix.Fchownat(pfd, name, int(f.UID), int(f.GID), atFlags); err != nil {
			return a.pathErr("chown", e, err)
		}
		if len(f.Xattrs) > 0 {
			if err := a.setXattrs(pfd, name, e); err != nil {
				return err
			}
		}
	}
	if typ != unixSymlink {
		var err error
		if name == "" {
			err = unix.Fchmod(pfd, f.Perm())
		} else {
			err = unix.Fchmodat(pfd, name, f.Perm(), 0)
		}
		if err != nil {
			return a.pathErr("chmod", e, err)
		}
	}
	as, ans := f.AccessTime.unix()
	ms, mns := f.ModTime.unix()
	ts := []unix.Timespec{{Sec: as, Nsec: ans}, {Sec: ms, Nsec: mns}}
	if name == "" {
		err = futimens(pfd, f)
	} else {
		err = unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return a.pathErr("utimes", e, err)
	}
	return nil
}

func (a *applier) setXattrs(pfd int, name string, e *applyEntry) error {
	// There is no setxattrat before Linux 6.13: go through the parent's
	// descriptor in /proc so that the lookup cannot be redirected, and
	// lsetxattr so that a symlink itself gets the attribute.
	path := "/proc/self/fd/" + strconv.Itoa(pfd)
	if name != "" {
		path += "/" + name
	}
	for _, x := range e.f.Xattrs {
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			if errors.Is(err, unix.ENOENT) && name != "" {
				return fmt.Errorf("wim: setting xattrs on %s needs /proc mounted: %w", a.dir+"/"+e.rel, err)
			}
			return a.pathErr("setxattr "+x.Name, e, err)
		}
	}
	return nil
}
