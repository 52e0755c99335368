// Package treetest builds directory trees that exercise every kind of file
// metadata a Linux tree can carry, and compares trees entry by entry.
//
// It exists so that tests of anything that copies trees (WIM capture and
// apply, disk cleaning, user-state capture) can ask one question with one
// answer: "is the tree that came out the tree that went in?". Generate makes
// the input, Snapshot records a tree, Diff says what differs in lines a
// person can read.
package treetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Options chooses what Generate puts in the tree. The zero value is the full
// tree with seed 0.
type Options struct {
	// Seed makes contents, sizes and timestamps reproducible: the same seed
	// gives byte-identical trees.
	Seed uint64
	// Small leaves out the multi-megabyte files (the several-MiB file and
	// the 64 MiB sparse file) for quick tests.
	Small bool
	// PortableNames leaves out names that some formats or tools cannot
	// carry: newline, backslash, colon and other characters Windows forbids.
	PortableNames bool
	// NoPrivileged leaves out what needs root: device nodes, foreign owners,
	// trusted.* and security.* xattrs. It is implied when not running as root.
	NoPrivileged bool
	// NoLinkedSymlinks leaves out the pair of hard-linked symlinks (one
	// inode, two names): wimlib-imagex 1.13 applies them as two separate
	// symlinks.
	NoLinkedSymlinks bool
	// Owner, when set, makes the tree one an unprivileged user could own:
	// it implies NoPrivileged, every entry is owned by Owner and no file
	// is setuid or setgid (as a user-state restore requires of a home).
	Owner *Owner
}

// Owner is a uid and gid.
type Owner struct{ UID, GID int }

// Report says what Generate made and what it had to leave out.
type Report struct {
	// Skipped names the features left out and why, e.g. "device nodes: not root".
	Skipped []string
	// Bytes is the apparent size of all regular files' contents, counting
	// every hard link once.
	Bytes int64
}

// Generate builds the tree described by opts inside dir (created if missing,
// which should be empty) and fails the test on any error.
func Generate(t testing.TB, dir string, opts Options) Report {
	t.Helper()
	r, err := Build(dir, opts)
	if err != nil {
		t.Fatalf("treetest: %v", err)
	}
	return r
}

// Names of some entries that tests may want to refer to.
const (
	SparseFile = "files/sparse-64MiB"
	BigFile    = "files/mixed-5MiB"
)

// Build is Generate without a testing.TB.
func Build(dir string, opts Options) (Report, error) {
	g := &gen{
		root: dir,
		rnd:  rand.New(rand.NewChaCha8(seedBytes(opts.Seed))),
		opts: opts,
		dirs: map[string]bool{},
	}
	if opts.Owner != nil {
		g.opts.NoPrivileged = true
		g.skip("device nodes, owners, setuid/setgid files, trusted.*/security.* xattrs: Owner")
	} else if os.Geteuid() != 0 && !opts.NoPrivileged {
		g.opts.NoPrivileged = true
		g.skip("device nodes, owners, trusted.*/security.* xattrs: not root")
	} else if opts.NoPrivileged {
		g.skip("device nodes, owners, trusted.*/security.* xattrs: NoPrivileged")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Report{}, err
	}
	g.build()
	if g.err == nil && opts.Owner != nil {
		g.err = chownTree(dir, *opts.Owner)
	}
	if g.err != nil {
		return Report{}, g.err
	}
	return g.report, nil
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	copy(b[8:], "minint treetest")
	return b
}

type gen struct {
	root   string
	rnd    *rand.Rand
	opts   Options
	err    error
	report Report
	// every path made, in creation order, for setting timestamps at the end
	made []string
	dirs map[string]bool
}

func (g *gen) skip(s string) { g.report.Skipped = append(g.report.Skipped, s) }

func (g *gen) fail(op, rel string, err error) {
	if g.err == nil && err != nil {
		g.err = fmt.Errorf("%s %s: %w", op, rel, err)
	}
}

func (g *gen) p(rel string) string { return filepath.Join(g.root, rel) }

func (g *gen) mkdir(rel string, perm os.FileMode) {
	parts := strings.Split(rel, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		if g.err != nil || g.dirs[sub] {
			continue
		}
		mode := os.FileMode(0o755)
		if i == len(parts)-1 {
			mode = perm
		}
		// Mkdir applies the umask; Chmod makes the mode exact, including
		// the setgid and sticky bits Mkdir would drop.
		if err := os.Mkdir(g.p(sub), 0o700); err != nil {
			g.fail("mkdir", sub, err)
			return
		}
		g.fail("chmod", sub, os.Chmod(g.p(sub), mode))
		g.dirs[sub] = true
		g.made = append(g.made, sub)
	}
}

func (g *gen) file(rel string, data []byte, perm os.FileMode) {
	if g.err != nil {
		return
	}
	if err := os.WriteFile(g.p(rel), data, 0o600); err != nil {
		g.fail("write", rel, err)
		return
	}
	g.fail("chmod", rel, os.Chmod(g.p(rel), perm))
	g.report.Bytes += int64(len(data))
	g.made = append(g.made, rel)
}

func (g *gen) symlink(target, rel string) {
	if g.err != nil {
		return
	}
	g.fail("symlink", rel, os.Symlink(target, g.p(rel)))
	g.made = append(g.made, rel)
}

func (g *gen) link(old, rel string) {
	if g.err != nil {
		return
	}
	g.fail("link", rel, os.Link(g.p(old), g.p(rel)))
	g.made = append(g.made, rel)
}

func (g *gen) mknod(rel string, mode uint32, major, minor uint32) {
	if g.err != nil {
		return
	}
	g.fail("mknod", rel, unix.Mknod(g.p(rel), mode, int(unix.Mkdev(major, minor))))
	g.made = append(g.made, rel)
}

func (g *gen) chown(rel string, uid, gid int) {
	if g.err != nil {
		return
	}
	g.fail("chown", rel, os.Lchown(g.p(rel), uid, gid))
}

func (g *gen) xattr(rel, name string, value []byte) {
	if g.err != nil {
		return
	}
	g.fail("setxattr "+name, rel, unix.Lsetxattr(g.p(rel), name, value, 0))
}

// random returns n bytes of incompressible data.
func (g *gen) random(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.rnd.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(g.rnd.Uint32())
	}
	return b
}

var words = strings.Fields(`the quick brown fox jumps over lazy dog minint wim image
	capture apply boot kernel initramfs partition volume sector cluster inode dentry
	stream blob chunk offset header table metadata resource hash integrity`)

// text returns n bytes of compressible, word-like text.
func (g *gen) text(n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[g.rnd.IntN(len(words))])
		if g.rnd.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// mixed alternates compressible and incompressible stretches, like real
// binaries, so that compressors have work of both kinds.
func (g *gen) mixed(n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(n-len(b), 1024+g.rnd.IntN(48*1024))
		if g.rnd.IntN(3) == 0 {
			b = append(b, g.random(k)...)
		} else {
			b = append(b, g.text(k)...)
		}
	}
	return b
}

func (g *gen) build() {
	g.mkdir("files", 0o755)
	g.file("files/empty", nil, 0o644)
	g.file("files/one-byte", []byte{'x'}, 0o644)
	for _, n := range []int{32767, 32768, 32769, 65536, 3*32768 + 1} {
		g.file(fmt.Sprintf("files/random-%d", n), g.random(n), 0o644)
	}
	g.file("files/text-200k.txt", g.text(200_000), 0o644)
	g.file("files/zeros-100k", make([]byte, 100_000), 0o644)
	if g.opts.Small {
		g.skip("multi-MiB files: Small")
	} else {
		g.file(BigFile, g.mixed(5<<20), 0o755)
		g.sparse(SparseFile, 64<<20)
	}

	// Same contents under different names and inodes: a deduplicating
	// writer stores them once.
	g.mkdir("dup/sub", 0o755)
	same := g.mixed(70_000)
	g.file("dup/a", same, 0o644)
	g.file("dup/b", same, 0o600)
	g.file("dup/sub/c", same, 0o444)
	g.file("dup/empty-too", nil, 0o644)

	g.mkdir("dirs/empty", 0o755)
	g.mkdir("dirs/nested/empty/inside", 0o700)
	g.mkdir("dirs/a/b/c/d/e/f/g/h", 0o755)
	g.file("dirs/a/b/c/d/e/f/g/h/deep.txt", g.text(1234), 0o644)
	g.file("dirs/a/top.txt", g.text(99), 0o644)

	g.mkdir("links", 0o755)
	g.symlink("../files/one-byte", "links/relative")
	g.symlink("/usr/share/minint-treetest/absent", "links/absolute-outside")
	g.symlink("/", "links/absolute-root")
	g.symlink("no/such/file", "links/dangling")
	g.symlink("../dirs/a", "links/to-dir")
	g.symlink("relative", "links/to-link")
	g.symlink(strings.Repeat("long-target/", 40)+"end", "links/long-target")
	g.symlink(".", "links/self-dot")

	g.mkdir("hard/one", 0o755)
	g.mkdir("hard/two/deeper", 0o755)
	g.file("hard/original", g.mixed(40_000), 0o640)
	g.link("hard/original", "hard/one/second-name")
	g.link("hard/original", "hard/two/deeper/third-name")
	g.file("hard/empty-a", nil, 0o644)
	g.link("hard/empty-a", "hard/empty-b")
	if g.opts.NoLinkedSymlinks {
		g.skip("hard-linked symlinks: NoLinkedSymlinks")
	} else {
		// One inode, two names, both symlinks.
		g.symlink("original", "hard/sym-a")
		g.link("hard/sym-a", "hard/one/sym-b")
	}

	g.mkdir("special", 0o755)
	g.fail("mkfifo", "special/fifo", unix.Mkfifo(g.p("special/fifo"), 0o640))
	g.made = append(g.made, "special/fifo")
	g.mknod("special/socket", unix.S_IFSOCK|0o755, 0, 0)
	if !g.opts.NoPrivileged {
		g.mknod("special/char-null", unix.S_IFCHR|0o666, 1, 3)
		g.mknod("special/block-loop", unix.S_IFBLK|0o660, 7, 200)
		// Minor above 255 and a large major need the full dev_t encoding.
		g.mknod("special/char-big", unix.S_IFCHR|0o600, 511, 70000)
	}

	g.mkdir("names", 0o755)
	names := []string{
		"with space", " leading-space", "trailing-space ", "emoji-😀-🚀",
		"e\u0301-combining", "\u00e9-precomposed", "中文名字.txt", "日本語", "Ελληνικά",
		".hidden", "-dash", "Case", "case", "quote'\"", "semi;colon&amp", "%percent",
		"tab\tname", strings.Repeat("n", 255),
	}
	if g.opts.PortableNames {
		g.skip("newline, backslash, colon, '*?<>|' names: PortableNames")
	} else {
		names = append(names, "new\nline", `back\slash`, "co:lon", "star*?<>|", "trailing-dot.")
	}
	for i, n := range names {
		g.file("names/"+n, []byte(fmt.Sprintf("name %d\n", i)), 0o644)
	}
	g.mkdir("names/目录 😀", 0o755)
	g.file("names/目录 😀/inside", []byte("x\n"), 0o644)

	g.mkdir("modes", 0o755)
	g.file("modes/setuid", g.text(10), 0o755|os.ModeSetuid)
	g.file("modes/setgid", g.text(11), 0o755|os.ModeSetgid)
	g.file("modes/all-special", g.text(12), 0o777|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
	g.file("modes/none", g.text(13), 0)
	g.file("modes/owner-only", g.text(14), 0o600)
	g.mkdir("modes/sticky-dir", 0o777|os.ModeSticky)
	g.mkdir("modes/setgid-dir", 0o775|os.ModeSetgid)
	g.mkdir("modes/locked-dir", 0o555)

	if !g.opts.NoPrivileged {
		g.mkdir("owners", 0o755)
		g.file("owners/odd", g.text(20), 0o644)
		g.chown("owners/odd", 1234, 5678)
		g.file("owners/nobody", g.text(21), 0o644)
		g.chown("owners/nobody", 65534, 65534)
		g.file("owners/big", g.text(22), 0o644)
		g.chown("owners/big", 100000, 4000000000)
		g.symlink("odd", "owners/link")
		g.chown("owners/link", 4321, 8765)
		g.mkdir("owners/dir", 0o750)
		g.chown("owners/dir", 1000, 1001)
		// chown clears setuid; set ownership first, then the mode.
		g.file("owners/setuid-other", g.text(23), 0o755)
		g.chown("owners/setuid-other", 1234, 5678)
		g.fail("chmod", "owners/setuid-other", os.Chmod(g.p("owners/setuid-other"), 0o755|os.ModeSetuid))
	}

	g.mkdir("xattrs", 0o755)
	g.file("xattrs/user", g.text(30), 0o644)
	g.xattr("xattrs/user", "user.comment", []byte("hello from treetest"))
	g.xattr("xattrs/user", "user.binary", []byte{0, 1, 2, 0xff, 0, 'z'})
	g.xattr("xattrs/user", "user.empty", nil)
	g.xattr("xattrs/user", "user.big", g.random(3000))
	g.xattr("xattrs", "user.on-dir", []byte("dir value"))
	g.xattr("hard/original", "user.shared-by-links", []byte("one inode"))
	if !g.opts.NoPrivileged {
		g.file("xattrs/capability", g.text(31), 0o755)
		g.xattr("xattrs/capability", "security.capability", vfsCapNetRaw())
		g.xattr("xattrs", "trusted.overlay.opaque", []byte("y"))
		g.xattr("links/relative", "trusted.on-symlink", []byte("link xattr"))
	}

	g.times()
}

// sparse writes a file of size n that is mostly holes with a few data blocks.
func (g *gen) sparse(rel string, n int64) {
	if g.err != nil {
		return
	}
	f, err := os.OpenFile(g.p(rel), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		g.fail("create", rel, err)
		return
	}
	for _, off := range []int64{0, 17 << 20, 40<<20 + 12345, n - 4096} {
		if _, err := f.WriteAt(g.random(4096), off); err != nil {
			g.fail("write", rel, err)
		}
	}
	g.fail("truncate", rel, f.Truncate(n))
	g.fail("close", rel, f.Close())
	g.report.Bytes += n
	g.made = append(g.made, rel)
}

// vfsCapNetRaw is a version-2 security.capability value granting
// CAP_NET_RAW (13) effective and permitted; the kernel rejects malformed ones.
func vfsCapNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<13)        // permitted, low word
	return b
}

// times gives every entry its own atime and mtime with a nanosecond part,
// including dates before 1970 and after 2038, children before parents so
// that creating children does not disturb a directory's mtime afterwards.
func (g *gen) times() {
	if g.err != nil {
		return
	}
	paths := append([]string{"."}, g.made...)
	// Deepest first: a parent's mtime is set after all its children exist.
	sort.SliceStable(paths, func(i, j int) bool {
		return strings.Count(paths[i], "/") > strings.Count(paths[j], "/")
	})
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano()
	special := map[string]int64{
		"files/one-byte": time.Date(1960, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano(),
		"files/empty":    time.Date(2100, 12, 31, 23, 59, 59, 987654321, time.UTC).UnixNano(),
	}
	for _, rel := range paths {
		m := base + g.rnd.Int64N(int64(3*365*24*time.Hour))
		if s, ok := special[rel]; ok {
			m = s
		}
		a := m + g.rnd.Int64N(int64(24*time.Hour))
		ts := []unix.Timespec{unix.NsecToTimespec(a), unix.NsecToTimespec(m)}
		err := unix.UtimesNanoAt(unix.AT_FDCWD, g.p(rel), ts, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			g.fail("utimes", rel, err)
		}
	}
}

// chownTree gives every entry below dir to o and clears setuid and setgid
// on everything but directories. Neither changes a timestamp Generate set.
func chownTree(dir string, o Owner) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, o.UID, o.GID); err != nil {
			return err
		}
		if d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if m := fi.Mode(); m&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, m&^(fs.ModeSetuid|fs.ModeSetgid))
		}
		return nil
	})
}
