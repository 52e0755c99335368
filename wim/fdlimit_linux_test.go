package wim

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fdTreeWIM writes an image of 100 directories of 200 directories each
// (20,100 in all), every leaf holding the same small file (one blob with
// 20,000 names), built in memory: making such a tree on disk to capture it
// would cost more than the apply under test.
func fdTreeWIM(t *testing.T, path string) {
	w, err := Create(path, WriterOptions{Compression: CompressionXPRESS})
	if err != nil {
		t.Fatal(err)
	}
	// One blob for every leaf, and one of each top directory's own.
	srcs := []*blobSource{memSource([]byte("one blob, many names\n"), false, nil)}
	for i := range 100 {
		srcs = append(srcs, memSource(fmt.Appendf(nil, "own %d\n", i), false, nil))
	}
	blobs := make([]*outBlob, len(srcs))
	for i, s := range srcs {
		s.other.done = func(b *outBlob) { blobs[i] = b }
	}
	if err := w.writeBlobs(context.Background(), srcs, nil); err != nil {
		t.Fatal(err)
	}
	mk := func(parent *File, name string, mode uint32, b *outBlob) *File {
		f := &File{Name: name, Parent: parent, SecurityID: -1, HasUnixData: true, Mode: mode, ModTime: 133000000000000000}
		if b == nil {
			f.Attributes = AttrDirectory
		} else {
			f.Attributes, f.Hash, f.Size = AttrNormal, b.hash, b.size
		}
		if parent != nil {
			parent.Children = append(parent.Children, f)
		}
		return f
	}
	root := mk(nil, "", unixDir|0o755, nil)
	for i := range 100 {
		d := mk(root, fmt.Sprintf("d%03d", i), unixDir|0o755, nil)
		for j := range 200 {
			mk(mk(d, fmt.Sprintf("e%03d", j), unixDir|0o750, nil), "same", unixRegular|0o644, blobs[0])
		}
		mk(d, "own", unixRegular|0o600, blobs[1+i])
	}
	if err := w.addImage(context.Background(), root, memSource(serializeMetadata(root, nil), true, nil), imageXML(root, "dirs", "")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestApplyUnderFDLimit applies the 20,000-directory image in a process
// whose descriptor limit is the kernel's default for PID 1 (soft 1024, hard
// 4096), as in the PE: apply must size its caches from the limit, not fail
// with "too many open files". The second run has a soft limit of 64 and,
// once the data starts, takes all but three free descriptors away, as other
// code in the process might: apply must give up its cache and wait for its
// own workers' descriptors instead of failing.
func TestApplyUnderFDLimit(t *testing.T) {
	if os.Getenv("MININT_FDLIMIT_CHILD") != "" {
		fdLimitChild(t)
		return
	}
	dir := t.TempDir()
	x := filepath.Join(dir, "x.wim")
	fdTreeWIM(t, x)
	for _, soft := range []int{1024, 64} {
		out := filepath.Join(dir, fmt.Sprintf("out-%d", soft))
		// Starving the apply of descriptors needs no big tree: ten
		// top directories (2,010 in all) at 64.
		want := [2]int{20_101, 20_100}
		if soft < 100 {
			want = [2]int{2_011, 2_010}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestApplyUnderFDLimit$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MININT_FDLIMIT_CHILD="+strings.Join([]string{x, out, strconv.Itoa(soft)}, "|"))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apply under a soft limit of %d descriptors: %v\n%s", soft, err, b)
		}
		dirs, files := 0, 0
		err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs++
				return nil
			}
			files++
			content := "one blob, many names\n"
			if d.Name() == "own" {
				n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p))[1:])
				content = fmt.Sprintf("own %d\n", n)
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != content {
				return fmt.Errorf("%s: %q %v", p, b, err)
			}
			return nil
		})
		if err != nil || dirs != want[0] || files != want[1] {
			t.Errorf("soft limit %d: %d directories and %d files applied (want %d and %d): %v", soft, dirs, files, want[0], want[1], err)
		}
	}
}

func fdLimitChild(t *testing.T) {
	args := strings.Split(os.Getenv("MININT_FDLIMIT_CHILD"), "|")
	soft, _ := strconv.Atoi(args[2])
	// Go raises the soft limit to the hard one at start-up: set it again.
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(soft), Max: 4096}); err != nil {
		t.Fatal(err)
	}
	rc, err := OpenReader(args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var hog sync.Once
	var held []int
	progress := func(done, total int64) {
		if soft > 100 {
			return
		}
		hog.Do(func() {
			for {
				fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					break
				}
				held = append(held, fd)
			}
		})
	}
	var paths []string
	if soft < 100 {
		for i := range 10 {
			paths = append(paths, fmt.Sprintf("/d%03d", i))
		}
	}
	if err := rc.Apply(context.Background(), 1, args[1], ApplyOptions{Threads: 4, Progress: progress, Paths: paths}); err != nil {
		t.Fatal(err)
	}
	if soft <= 100 && len(held) == 0 {
		t.Fatal("no descriptors were taken away")
	}
}

// TestDirCache: eviction closes only idle descriptors, least recently used
// first, and never one that is pinned.
func TestDirCache(t *testing.T) {
	open := func() int {
		fd, err := unix.Open(".", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	isOpen := func(fd int) bool { _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); return err == nil }
	c := newDirCache(2)
	a, b, d := &applyEntry{}, &applyEntry{}, &applyEntry{}
	fa, fb := open(), open()
	if !c.add(a, fa) || !c.add(b, fb) {
		t.Fatal("add to a cache with room failed")
	}
	fd := open()
	if c.add(d, fd) {
		t.Fatal("add evicted a pinned descriptor")
	}
	unix.Close(fd)
	c.put(a)
	c.put(b)
	if c.get(a) != fa { // a is now the most recently used
		t.Fatal("a lost")
	}
	c.put(a)
	fd = open()
	if !c.add(d, fd) || isOpen(fb) || !isOpen(fa) || c.get(b) != -1 {
		t.Fatal("add did not evict the least recently used (b)")
	}
	if c.get(a) != fa {
		t.Fatal("a lost")
	}
	// a and d pinned: shrink has nothing idle to close.
	if c.shrink() || !isOpen(fa) || !isOpen(fd) {
		t.Fatal("shrink closed a pinned descriptor")
	}
	c.put(a)
	if !c.shrink() || isOpen(fa) || c.limit != 1 {
		t.Fatalf("shrink: a open %v, limit %d", isOpen(fa), c.limit)
	}
	c.put(d)
	c.close()
	if isOpen(fd) {
		t.Fatal("close left a descriptor open")
	}
}

// fdTableSize reads the size of the process's descriptor table.
func fdTableSize(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no FDSize in /proc/self/status")
	return 0
}

// TestGrowFDTable checks that the table grows in one step to hold n more
// descriptors, and that a descriptor already open at the number asked for
// is left alone.
func TestGrowFDTable(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	base := int(r.Fd())
	// Other tests of the process may have grown the table already: ask
	// for four times its size, which must stay under the limit.
	n := fdTableSize(t)
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || uint64(base+4*n) >= rl.Cur {
		t.Skipf("RLIMIT_NOFILE %d leaves no room above a table of %d", rl.Cur, n)
	}
	held, err := unix.FcntlInt(w.Fd(), unix.F_DUPFD_CLOEXEC, base+n)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(held)
	if held != base+n {
		t.Skipf("descriptor %d already in use", base+n)
	}
	growFDTable(base, n) // the number it asks for is taken
	if _, err := unix.Write(held, []byte("x")); err != nil {
		t.Fatalf("descriptor %d no longer writes after growFDTable: %v", held, err)
	}
	n *= 4
	growFDTable(base, n)
	if got := fdTableSize(t); got <= base+n {
		t.Fatalf("FDSize %d after growFDTable(%d, %d)", got, base, n)
	}
}
