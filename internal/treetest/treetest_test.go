package treetest

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestGenerateHasEverything(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the full tree needs root (device nodes, owners, trusted xattrs)")
	}
	dir := t.TempDir()
	rep := Generate(t, dir, Options{Seed: 1})
	if len(rep.Skipped) != 0 {
		t.Errorf("skipped %v as root with default options", rep.Skipped)
	}
	tr, err := Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	types := map[fs.FileMode]int{}
	var setuid, setgid, sticky, subsecond, pre1970, post2038 int
	for _, e := range tr.Entries {
		types[e.Type]++
		if e.Perm&fs.ModeSetuid != 0 {
			setuid++
		}
		if e.Perm&fs.ModeSetgid != 0 {
			setgid++
		}
		if e.Perm&fs.ModeSticky != 0 {
			sticky++
		}
		if e.Mtime.Nanosecond()%100 != 0 {
			subsecond++
		}
		if e.Mtime.Year() < 1970 {
			pre1970++
		}
		if e.Mtime.Year() > 2038 {
			post2038++
		}
	}
	for _, ty := range []fs.FileMode{0, fs.ModeDir, fs.ModeSymlink, fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice, fs.ModeNamedPipe, fs.ModeSocket} {
		if types[ty] == 0 {
			t.Errorf("no %s in the tree", typeName(ty))
		}
	}
	if setuid == 0 || setgid == 0 || sticky == 0 {
		t.Errorf("setuid %d, setgid %d, sticky %d entries; want some of each", setuid, setgid, sticky)
	}
	if subsecond < len(tr.Entries)/2 || pre1970 == 0 || post2038 == 0 {
		t.Errorf("timestamps: %d with sub-100ns parts, %d before 1970, %d after 2038", subsecond, pre1970, post2038)
	}

	want := func(p string, check func(e *Entry) bool, what string) {
		t.Helper()
		e := tr.Entries[p]
		if e == nil {
			t.Errorf("%s missing", p)
		} else if !check(e) {
			t.Errorf("%s: not %s: %+v", p, what, *e)
		}
	}
	want("hard/original", func(e *Entry) bool {
		return slices.Equal(e.Links, []string{"hard/one/second-name", "hard/two/deeper/third-name"})
	}, "linked to two other names")
	want("hard/sym-a", func(e *Entry) bool { return slices.Equal(e.Links, []string{"hard/one/sym-b"}) }, "a hard-linked symlink")
	want("dup/a", func(e *Entry) bool { return len(e.Links) == 0 && e.SHA256 == tr.Entries["dup/b"].SHA256 }, "a duplicate of dup/b")
	want("owners/odd", func(e *Entry) bool { return e.UID == 1234 && e.GID == 5678 }, "owned by 1234:5678")
	want("owners/setuid-other", func(e *Entry) bool { return e.UID == 1234 && e.Perm&fs.ModeSetuid != 0 }, "setuid and foreign")
	want("special/char-big", func(e *Entry) bool { return unix.Major(e.Rdev) == 511 && unix.Minor(e.Rdev) == 70000 }, "device 511:70000")
	want("xattrs/user", func(e *Entry) bool {
		v, ok := e.Xattrs["user.empty"]
		return e.Xattrs["user.binary"] == "\x00\x01\x02\xff\x00z" && ok && v == "" && len(e.Xattrs["user.big"]) == 3000
	}, "carrying binary, empty and big user xattrs")
	want("xattrs/capability", func(e *Entry) bool { return len(e.Xattrs["security.capability"]) == 20 }, "carrying a file capability")
	want("links/relative", func(e *Entry) bool {
		return e.Target == "../files/one-byte" && e.Xattrs["trusted.on-symlink"] == "link xattr"
	}, "a symlink with an xattr")
	want("names/emoji-😀-🚀", func(e *Entry) bool { return e.Type == 0 }, "a file")
	want("names/new\nline", func(e *Entry) bool { return e.Type == 0 }, "a file")
	want("files/empty", func(e *Entry) bool { return e.Mtime.Nanosecond() == 987654321 }, "with the exact nanoseconds set")
	want(SparseFile, func(e *Entry) bool { return e.Size == 64<<20 && e.Allocated < 1<<20 }, "a sparse 64 MiB file")
	if e := tr.Entries["e\u0301-combining"]; e != nil {
		t.Errorf("combining name normalised away from its own path")
	}
	if tr.Entries["names/e\u0301-combining"] == nil || tr.Entries["names/\u00e9-precomposed"] == nil {
		t.Errorf("combining and precomposed names not both present")
	}
}

func TestDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	Generate(t, a, Options{Seed: 7, Small: true})
	Generate(t, b, Options{Seed: 7, Small: true})
	Generate(t, c, Options{Seed: 8, Small: true})
	ta, tb, tc := snap(t, a), snap(t, b), snap(t, c)
	if d := Diff(ta, tb, DiffOptions{}); len(d) != 0 {
		t.Errorf("same seed, different trees:\n%s", strings.Join(d, "\n"))
	}
	if d := Diff(ta, tc, DiffOptions{}); len(d) == 0 {
		t.Errorf("different seeds gave identical trees")
	}
}

func snap(t *testing.T, dir string) Tree {
	t.Helper()
	tr, err := Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestDiffDetects changes one thing at a time in a copy of a tree and
// checks that Diff reports exactly that, so a round-trip test using Diff can
// fail for every kind of loss.
func TestDiffDetects(t *testing.T) {
	root := os.Geteuid() == 0
	a := t.TempDir()
	Generate(t, a, Options{Seed: 3, Small: true})
	want := snap(t, a)

	type mutation struct {
		name   string
		root   bool // needs root
		change func(dir string) error
		lines  []string // expected diff lines (prefixes)
		opts   DiffOptions
	}
	setMtime := func(p string, ns int64) error {
		ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	keepMtime := func(p string, f func() error) error {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if err := f(); err != nil {
			return err
		}
		return setMtime(p, st.Mtim.Nano())
	}
	muts := []mutation{
		{name: "content", change: func(d string) error {
			p := filepath.Join(d, "files/random-32768")
			return keepMtime(p, func() error {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = f.WriteAt([]byte{0}, 32767)
				if err != nil {
					return err
				}
				_, err = f.WriteAt([]byte{1}, 32767)
				return err
			})
		}, lines: []string{"files/random-32768: content differs"}},
		{name: "size", change: func(d string) error {
			p := filepath.Join(d, "files/one-byte")
			return keepMtime(p, func() error { return os.Truncate(p, 0) })
		}, lines: []string{"files/one-byte: size 1 != 0"}},
		{name: "mode", change: func(d string) error { return os.Chmod(filepath.Join(d, "modes/owner-only"), 0o640) },
			lines: []string{"modes/owner-only: mode 0600 != 0640"}},
		{name: "mode ignored", change: func(d string) error { return os.Chmod(filepath.Join(d, "modes/owner-only"), 0o640) },
			opts: DiffOptions{IgnoreMode: true}},
		{name: "setuid", change: func(d string) error { return os.Chmod(filepath.Join(d, "modes/setuid"), 0o755) },
			lines: []string{"modes/setuid: mode 4755 != 0755"}},
		{name: "sticky", change: func(d string) error { return os.Chmod(filepath.Join(d, "modes/sticky-dir"), 0o777) },
			lines: []string{"modes/sticky-dir: mode 1777 != 0777"}},
		{name: "owner", root: true, change: func(d string) error { return os.Lchown(filepath.Join(d, "owners/odd"), 1234, 5679) },
			lines: []string{"owners/odd: owner 1234:5678 != 1234:5679"}},
		{name: "device", root: true, change: func(d string) error {
			p := filepath.Join(d, "special/char-big")
			return keepMtime(filepath.Dir(p), func() error {
				if err := os.Remove(p); err != nil {
					return err
				}
				if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(511, 70001))); err != nil {
					return err
				}
				return setMtime(p, want.Entries["special/char-big"].Mtime.UnixNano())
			})
		}, lines: []string{"special/char-big: device 511:70000 != 511:70001"}},
		{name: "type", change: func(d string) error {
			p := filepath.Join(d, "special/fifo")
			return keepMtime(filepath.Dir(p), func() error {
				if err := os.Remove(p); err != nil {
					return err
				}
				return os.WriteFile(p, nil, 0o640)
			})
		}, lines: []string{"special/fifo: type fifo != regular file"}},
		{name: "symlink", change: func(d string) error {
			p := filepath.Join(d, "links/dangling")
			return keepMtime(filepath.Dir(p), func() error {
				if err := os.Remove(p); err != nil {
					return err
				}
				if err := os.Symlink("no/such/file2", p); err != nil {
					return err
				}
				return setMtime(p, want.Entries["links/dangling"].Mtime.UnixNano())
			})
		}, lines: []string{`links/dangling: symlink target no/such/file != no/such/file2`}},
		{name: "xattr value", change: func(d string) error {
			return unix.Lsetxattr(filepath.Join(d, "xattrs/user"), "user.comment", []byte("changed"), 0)
		}, lines: []string{`xattrs/user: xattr user.comment = changed, want "hello from treetest"`}},
		{name: "xattr removed", change: func(d string) error {
			return unix.Lremovexattr(filepath.Join(d, "xattrs"), "user.on-dir")
		}, lines: []string{`xattrs: xattr user.on-dir missing`}},
		{name: "xattr added", change: func(d string) error {
			return unix.Lsetxattr(filepath.Join(d, "files/empty"), "user.new", []byte("v"), 0)
		}, lines: []string{`files/empty: xattr user.new unexpected (v)`}},
		{name: "hard link broken", change: func(d string) error {
			p := filepath.Join(d, "hard/empty-b")
			return keepMtime(filepath.Dir(p), func() error {
				if err := os.Remove(p); err != nil {
					return err
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					return err
				}
				return setMtime(p, want.Entries["hard/empty-b"].Mtime.UnixNano())
			})
		}, lines: []string{"hard/empty-a: hard links [hard/empty-b] != []", "hard/empty-b: hard links [hard/empty-a] != []"}},
		{name: "mtime", change: func(d string) error {
			return setMtime(filepath.Join(d, "dup/a"), want.Entries["dup/a"].Mtime.UnixNano()+1000)
		}, lines: []string{"dup/a: mtime "}},
		{name: "mtime within precision", change: func(d string) error {
			// 1960-01-02 03:04:05.123456789 (before 1970): moving it to …780
			// stays in the same 100 ns step.
			return setMtime(filepath.Join(d, "files/one-byte"), want.Entries["files/one-byte"].Mtime.UnixNano()-9)
		}, opts: DiffOptions{MtimePrecision: 100}},
		{name: "mtime across precision", change: func(d string) error {
			return setMtime(filepath.Join(d, "files/one-byte"), want.Entries["files/one-byte"].Mtime.UnixNano()-90)
		}, opts: DiffOptions{MtimePrecision: 100}, lines: []string{"files/one-byte: mtime 1960-01-02T03:04:05.123456789Z != 1960-01-02T03:04:05.123456699Z"}},
		{name: "dir mtime", change: func(d string) error {
			return setMtime(filepath.Join(d, "dirs/empty"), 0)
		}, lines: []string{"dirs/empty: mtime "}},
		{name: "dir mtime ignored", change: func(d string) error {
			return setMtime(filepath.Join(d, "dirs/empty"), 0)
		}, opts: DiffOptions{IgnoreDirMtime: true}},
		{name: "removed", change: func(d string) error {
			return keepMtime(filepath.Join(d, "dirs/a"), func() error { return os.Remove(filepath.Join(d, "dirs/a/top.txt")) })
		}, lines: []string{"dirs/a/top.txt: only in " + a + " (regular file)"}},
		{name: "added", change: func(d string) error {
			return keepMtime(filepath.Join(d, "names"), func() error { return os.Mkdir(filepath.Join(d, "names/new\ndir"), 0o755) })
		}, lines: []string{`"names/new\ndir": only in`}},
		{name: "ignored path", change: func(d string) error {
			return os.WriteFile(filepath.Join(d, "dirs/a/top.txt"), []byte("x"), 0o644)
		}, opts: DiffOptions{Ignore: func(p string) bool { return strings.HasPrefix(p, "dirs/a") }}},
	}
	for _, m := range muts {
		t.Run(m.name, func(t *testing.T) {
			if m.root && !root {
				t.Skip("needs root")
			}
			b := t.TempDir()
			Generate(t, b, Options{Seed: 3, Small: true})
			if err := m.change(b); err != nil {
				t.Fatal(err)
			}
			got := Diff(want, snap(t, b), m.opts)
			if len(got) != len(m.lines) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(m.lines), strings.Join(got, "\n"))
			}
			for i, l := range m.lines {
				if !strings.HasPrefix(got[i], l) {
					t.Errorf("line %d = %q, want prefix %q", i, got[i], l)
				}
			}
		})
	}
}

func TestSameTime(t *testing.T) {
	ns := func(n int64) time.Time { return time.Unix(0, n) }
	for _, c := range []struct {
		a, b int64
		prec time.Duration
		want bool
	}{
		{100, 199, 100, true},
		{99, 100, 100, false},
		{-1, -100, 100, true},
		{-1, 0, 100, false},
		{5, 5, 0, true},
		{5, 6, 0, false},
	} {
		if got := sameTime(ns(c.a), ns(c.b), c.prec); got != c.want {
			t.Errorf("sameTime(%d, %d, %v) = %v", c.a, c.b, c.prec, got)
		}
	}
}
