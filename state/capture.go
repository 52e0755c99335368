package state

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minint/minint/state/internal/fsx"
	"golang.org/x/sys/unix"
)

// Spec says what Capture takes.
type Spec struct {
	// NoHomes leaves out the home directories of regular users (uid 1000 …
	// 65533 in root/etc/passwd), which are captured by default, together
	// with those users' account records.
	NoHomes bool
	// RootHome adds /root.
	RootHome bool
	// Paths are extra absolute paths inside root (files or directories),
	// e.g. /etc/ssh or /var/lib/foo. Missing ones are skipped.
	Paths []string
	// Exclude are path.Match patterns on the absolute path inside root
	// ("/home/*/.cache"); a matching directory is skipped with its contents.
	Exclude []string
	// Copy copies every file instead of hard-linking it.
	Copy bool
	// Key, when set, is the state key the store's index is signed with
	// (SignatureName). Readers that restore or pull a store refuse one
	// without a signature by a key they trust; an unsigned store is only
	// good for being captured again (the PE's capture-state).
	Key ed25519.PrivateKey
	// Progress, when set, is called with the bytes of each file stored.
	Progress func(n int64)
}

// CaptureStats says how files got into the store.
type CaptureStats struct {
	Linked, Copied, Deduplicated int
}

// Capture records the state Spec selects under root into storeDir (created
// if missing) and returns the manifest. Regular files are hard-linked into
// the store by content hash, or copied when the store is on another
// filesystem. The manifest and then the index are written last.
//
// storeDir and anything under root's /minint are never captured.
func Capture(ctx context.Context, root, storeDir string, spec Spec) (*Manifest, error) {
	m, _, err := CaptureStat(ctx, root, storeDir, spec)
	return m, err
}

// CaptureStat is Capture that also reports how files were stored.
func CaptureStat(ctx context.Context, root, storeDir string, spec Spec) (*Manifest, CaptureStats, error) {
	c := &capturer{
		ctx:    ctx,
		root:   filepath.Clean(root),
		store:  filepath.Clean(storeDir),
		spec:   spec,
		inodes: map[[2]uint64]string{},
		seen:   map[string]bool{},
		objs:   map[string]int64{},
	}
	m, err := c.run()
	return m, c.stats, err
}

type capturer struct {
	ctx    context.Context
	root   string
	store  string
	spec   Spec
	m      Manifest
	inodes map[[2]uint64]string // dev, ino → first path
	seen   map[string]bool
	objs   map[string]int64
	stats  CaptureStats
	tmpN   int
	// pending are the regular files found by the walk, stored and hashed
	// afterwards by several workers (hashing is what capture spends its
	// time on).
	pending []pendingFile
	mu      sync.Mutex // guards objs, stats, tmpN and Progress calls
}

type pendingFile struct {
	idx  int // in m.Entries
	full string
}

func (c *capturer) run() (*Manifest, error) {
	for _, d := range []string{c.store, filepath.Join(c.store, ObjectsDir), filepath.Join(c.store, ObjectsDir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// A capture replaces any previous one: the old index goes first so that
	// a store is never valid while half-rewritten, and the old signature
	// with it so that an unsigned capture does not look signed.
	for _, n := range []string{IndexName, SignatureName} {
		if err := os.Remove(filepath.Join(c.store, n)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	var tops []string
	if !c.spec.NoHomes {
		acc, users, err := captureAccounts(c.root)
		if err != nil {
			return nil, fmt.Errorf("reading accounts: %w", err)
		}
		c.m.Accounts = acc
		for _, u := range users {
			if u.home != "" && u.home != "/" && strings.HasPrefix(u.home, "/") {
				tops = append(tops, u.home)
			}
		}
	}
	if c.spec.RootHome {
		tops = append(tops, "/root")
	}
	tops = append(tops, c.spec.Paths...)
	for _, t := range tops {
		if !strings.HasPrefix(t, "/") {
			return nil, fmt.Errorf("state path %q: must be absolute (inside the root)", t)
		}
	}
	// Sorted, so a parent directory comes before paths inside it and
	// duplicates collapse.
	sort.Strings(tops)
	for _, t := range tops {
		rel := strings.TrimPrefix(path.Clean(t), "/")
		if rel == "" {
			return nil, fmt.Errorf("state path %q: refusing to capture the whole root", t)
		}
		if err := c.capturePath(rel); err != nil {
			return nil, err
		}
	}
	if err := c.storeFiles(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(c.store, ObjectsDir, "tmp")); err != nil {
		return nil, err
	}
	if err := c.dropUnused(); err != nil {
		return nil, err
	}
	for _, n := range c.objs {
		c.m.Bytes += n
	}
	c.m.Version = 1
	c.m.Spec = c.spec.Record()
	c.m.Created = time.Now().UTC().Format(time.RFC3339)
	c.m.Host, _ = os.Hostname()
	if err := writeManifest(c.store, &c.m, c.spec.Key); err != nil {
		return nil, fmt.Errorf("writing manifest: %w", err)
	}
	return &c.m, nil
}

// dropUnused removes objects an earlier capture into the same store left
// and this one does not use (files changed or deleted since).
func (c *capturer) dropUnused() error {
	dir := filepath.Join(c.store, ObjectsDir)
	subs, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if !s.IsDir() || len(s.Name()) != 2 {
			continue
		}
		objs, err := os.ReadDir(filepath.Join(dir, s.Name()))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if _, ok := c.objs[o.Name()]; !ok {
				if err := os.Remove(filepath.Join(dir, s.Name(), o.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (c *capturer) excluded(rel string) bool {
	abs := "/" + rel
	if abs == "/minint" || strings.HasPrefix(abs, "/minint/") {
		return true
	}
	if p := filepath.Join(c.root, rel); p == c.store || strings.HasPrefix(p, c.store+"/") {
		return true
	}
	for _, pat := range c.spec.Exclude {
		if ok, _ := path.Match(pat, abs); ok {
			return true
		}
	}
	return false
}

func (c *capturer) capturePath(rel string) error {
	if c.seen[rel] {
		return nil
	}
	full := filepath.Join(c.root, rel)
	if _, err := os.Lstat(full); os.IsNotExist(err) {
		return nil
	}
	// Ancestors are recorded so Restore can recreate them, and checked to
	// be real directories: a symlinked /home must not lead the capture out
	// of root.
	dirs := strings.Split(rel, "/")
	for i := 1; i < len(dirs); i++ {
		a := strings.Join(dirs[:i], "/")
		if c.seen[a] {
			continue
		}
		fi, err := os.Lstat(filepath.Join(c.root, a))
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory (a symlink?) on the way to %s", ErrInsecurePath, a, rel)
		}
		e, err := c.entry(a, fi)
		if err != nil {
			return err
		}
		e.Ancestor = true
		c.seen[a] = true
		c.m.Entries = append(c.m.Entries, *e)
	}
	return filepath.WalkDir(full, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		r, _ := filepath.Rel(c.root, p)
		r = filepath.ToSlash(r)
		if c.excluded(r) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if c.seen[r] {
			return nil
		}
		c.seen[r] = true
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, err := c.entry(r, fi)
		if err != nil {
			return err
		}
		c.m.Entries = append(c.m.Entries, *e)
		return nil
	})
}

func (c *capturer) entry(rel string, fi fs.FileInfo) (*Entry, error) {
	full := filepath.Join(c.root, rel)
	st := fi.Sys().(*syscall.Stat_t)
	e := &Entry{Path: rel}
	if st.Nlink > 1 && !fi.IsDir() {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := c.inodes[key]; ok {
			e.Type = typeOf(fi.Mode())
			e.Link = first
			return e, nil
		}
		c.inodes[key] = rel
	}
	e.Type = typeOf(fi.Mode())
	e.Mode = uint32(st.Mode & 0o7777)
	e.UID, e.GID = st.Uid, st.Gid
	e.Mtime = st.Mtim.Nano()
	e.Atime = st.Atim.Nano()
	x, err := listXattrs(full)
	if err != nil {
		return nil, fmt.Errorf("%s: xattrs: %w", full, err)
	}
	e.Xattrs = x
	switch e.Type {
	case TypeSymlink:
		t, err := os.Readlink(full)
		if err != nil {
			return nil, err
		}
		e.Target = t
		e.Size = int64(len(t))
	case TypeChar, TypeBlock:
		e.Rdev = uint64(st.Rdev)
	case TypeFile:
		// Both callers append e to m.Entries right away.
		c.pending = append(c.pending, pendingFile{idx: len(c.m.Entries), full: full})
	case "":
		return nil, fmt.Errorf("%s: unsupported file type %v", full, fi.Mode().Type())
	}
	return e, nil
}

func typeOf(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return TypeFile
	case fs.ModeDir:
		return TypeDir
	case fs.ModeSymlink:
		return TypeSymlink
	case fs.ModeNamedPipe:
		return TypeFifo
	case fs.ModeSocket:
		return TypeSocket
	case fs.ModeDevice | fs.ModeCharDevice:
		return TypeChar
	case fs.ModeDevice:
		return TypeBlock
	}
	return ""
}

// storeFiles stores the pending files with one worker per CPU (at most
// 4) and fills in their hashes and sizes.
func (c *capturer) storeFiles() error {
	n := min(runtime.GOMAXPROCS(0), 4)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	jobs := make(chan pendingFile)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				sum, size, err := c.store1(p.full)
				if err != nil {
					errs <- fmt.Errorf("storing %s: %w", p.full, err)
					cancel()
					return
				}
				// Each worker writes only its own entries, and nothing
				// appends to m.Entries any more.
				c.m.Entries[p.idx].SHA256, c.m.Entries[p.idx].Size = sum, size
			}
		}()
	}
	var err error
feed:
	for _, p := range c.pending {
		select {
		case jobs <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if e, ok := <-errs; ok {
		err = e
	} else if e := c.ctx.Err(); e != nil {
		err = e
	}
	return err
}

// store1 puts one regular file into the store and returns its hash. The
// file is first linked (or copied) to a temporary name and hashed through
// that name, so the hash is of exactly the inode or bytes the store holds.
func (c *capturer) store1(full string) (string, int64, error) {
	c.mu.Lock()
	c.tmpN++
	tmp := filepath.Join(c.store, ObjectsDir, "tmp", fmt.Sprint(c.tmpN))
	c.mu.Unlock()
	linked := false
	if !c.spec.Copy {
		err := os.Link(full, tmp)
		switch {
		case err == nil:
			linked = true
		case errors.Is(err, syscall.EXDEV), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EMLINK):
			// Another filesystem, or links not allowed: copy instead.
		default:
			return "", 0, err
		}
	}
	var sum string
	var size int64
	var err error
	if linked {
		sum, size, err = fsx.HashFile(tmp)
	} else {
		sum, size, err = copyHashed(full, tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, err
	}
	obj := filepath.Join(c.store, ObjectPath(sum))
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.objs[sum]; ok {
		c.stats.Deduplicated++
		return sum, size, os.Remove(tmp)
	}
	if err := os.MkdirAll(filepath.Dir(obj), 0o700); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp, obj); err != nil {
		return "", 0, err
	}
	c.objs[sum] = size
	if linked {
		c.stats.Linked++
	} else {
		c.stats.Copied++
	}
	if c.spec.Progress != nil {
		c.spec.Progress(size)
	}
	return sum, size, nil
}

// copyHashed copies src to dst (mode 0600, synced), keeping holes for
// all-zero blocks, and returns the SHA-256 of the bytes.
func copyHashed(src, dst string) (string, int64, error) {
	in, err := fsx.OpenRegular(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := fsx.SparseCopy(out, io.TeeReader(in, h))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func listXattrs(name string) (map[string][]byte, error) {
	buf := make([]byte, 4096)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(name, buf)
		if err == unix.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if err == unix.ENOTSUP {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out map[string][]byte
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		v := make([]byte, 1024)
		for {
			m, err := unix.Lgetxattr(name, k, v)
			if err == unix.ERANGE {
				v = make([]byte, len(v)*8)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			v = v[:m]
			break
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[k] = v
	}
	return out, nil
}
