package diskops

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minint/minint/internal/disktest"
	"golang.org/x/sys/unix"
)

// snapshot maps every path below dir to its type, mode, size, inode and
// content hash, without following symlinks.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		// A directory's st_size is filesystem-specific (tmpfs counts its
		// entries, ext4 its blocks): only its mode and inode count here.
		v := fmt.Sprintf("%v ino=%d", fi.Mode(), st.Ino)
		if !fi.IsDir() {
			v = fmt.Sprintf("%v %d ino=%d", fi.Mode(), fi.Size(), st.Ino)
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			v += " " + hex.EncodeToString(h[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameSnapshot(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: %s changed: %q -> %q", what, k, v, b[k])
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		}
	}
}

// populate builds an installed system with traps: symlinks out of the tree
// and into the staging folder, a user-state store hard-linked with files
// outside the staging folder, a FIFO, deep and read-only directories.
func populate(t *testing.T, root, outside string) {
	t.Helper()
	files := map[string]string{
		"minint/image.wim":              "WIM image bytes",
		"minint/state/store/aa11":       "user document",
		"minint/state/store/bb22":       "ssh key",
		"minint/logs/apply.log":         "log",
		"etc/hostname":                  "old-host\n",
		"etc/ssh/sshd_config":           "Port 22\n",
		"usr/bin/tool":                  "#!/bin/sh\n",
		"usr/lib/x86_64-linux-gnu/libc": strings.Repeat("x", 10000),
		"home/alice/notes.txt":          "alice",
		"var/lib/dpkg/status":           "Package: minint\n",
		"boot/vmlinuz-6.1.0-56-amd64":   "kernel",
		"deep/a/b/c/d/e/f/g/h/i/j/file": "deep",
		"readonly/inside":               "ro",
		"name with spaces/and\nnewline": "odd",
	}
	for p, c := range files {
		disktest.WriteFile(t, filepath.Join(root, p), c)
	}
	disktest.WriteFile(t, filepath.Join(outside, "precious"), "must survive")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Hard links shared between the staging store and the live system.
	must(os.Link(filepath.Join(root, "minint/state/store/aa11"), filepath.Join(root, "home/alice/document")))
	must(os.Link(filepath.Join(root, "minint/state/store/bb22"), filepath.Join(root, "etc/ssh/key")))
	// Symlinks pointing out of the tree (absolute and relative) and into
	// the staging folder (file and directory); a dangling one.
	must(os.Symlink(outside, filepath.Join(root, "out-abs")))
	must(os.Symlink(filepath.Join(outside, "precious"), filepath.Join(root, "etc/out-file")))
	rel, _ := filepath.Rel(filepath.Join(root, "usr/lib"), outside)
	must(os.Symlink(rel, filepath.Join(root, "usr/lib/out-rel")))
	must(os.Symlink("../minint", filepath.Join(root, "etc/into-staging")))
	must(os.Symlink("/minint/state/store/aa11", filepath.Join(root, "home/alice/abs-into-staging")))
	must(os.Symlink("minint/state", filepath.Join(root, "state")))
	must(os.Symlink("/nonexistent", filepath.Join(root, "dangling")))
	must(unix.Mkfifo(filepath.Join(root, "var/fifo"), 0o644))
	must(os.Chmod(filepath.Join(root, "readonly"), 0o555))
	os.MkdirAll(filepath.Join(root, "lost+found"), 0o700)
	os.MkdirAll(filepath.Join(root, "empty/dir"), 0o755)
}

func sub(m map[string]string, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k == prefix || strings.HasPrefix(k, prefix+"/") {
			out[k] = v
		}
	}
	return out
}

func readManifest(t *testing.T, p string) []ManifestEntry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []ManifestEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("manifest line %q: %v", sc.Text(), err)
		}
		es = append(es, e)
	}
	return es
}

func TestCleanAllButStaging(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	populate(t, root, outside)
	// A fake mountinfo marks root/data as a separate mount (a bind mount
	// on the same filesystem has the same st_dev: only mountinfo tells).
	disktest.WriteFile(t, filepath.Join(root, "data/mounted/file"), "on another mount")
	sys := t.TempDir()
	disktest.WriteFile(t, filepath.Join(sys, "proc/self/mountinfo"), fmt.Sprintf("40 1 8:2 / %s rw - ext4 /dev/sda2 rw\n", filepath.Join(root, "data/mounted")))

	before := snapshot(t, base)
	dry, err := CleanAllBut(context.Background(), root, CleanOptions{DryRun: true, SysRoot: sys})
	if err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, "dry run", before, snapshot(t, base))
	listed := map[string]string{}
	for _, e := range dry.Entries {
		listed[e.Path] = e.Type
	}
	for p, typ := range map[string]string{"etc/hostname": "file", "out-abs": "symlink", "etc/into-staging": "symlink", "var/fifo": "fifo",
		"home/alice/document": "file", "deep": "dir", "name with spaces/and\nnewline": "file", "empty/dir": "dir", "state": "symlink"} {
		if listed[p] != typ {
			t.Errorf("dry run lists %q as %q, want %q", p, listed[p], typ)
		}
	}
	for p := range listed {
		if strings.HasPrefix(p, "minint") || strings.HasPrefix(p, "lost+found") || strings.HasPrefix(p, "data") {
			t.Errorf("dry run would delete %s", p)
		}
	}
	skipped := map[string]string{}
	for _, s := range dry.Skipped {
		skipped[s.Path] = s.Reason
	}
	if skipped["data/mounted"] != "mount point" || skipped["data"] != "contains a mount point" || skipped["minint"] != "staging folder" {
		t.Errorf("skipped = %v", skipped)
	}

	var deleted int
	res, err := CleanAllBut(context.Background(), root, CleanOptions{SysRoot: sys, OnDelete: func(ManifestEntry) { deleted++ }})
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, base)
	// The staging folder is untouched apart from the new manifest, the
	// outside world and the mount entirely.
	rel, _ := filepath.Rel(base, res.Manifest)
	delete(after, rel)
	sameSnapshot(t, "staging", sub(before, "root/minint"), sub(after, "root/minint"))
	sameSnapshot(t, "outside", sub(before, "outside"), sub(after, "outside"))
	sameSnapshot(t, "mount", sub(before, "root/data/mounted"), sub(after, "root/data/mounted"))
	var left []string
	for k := range sub(after, "root") {
		if !strings.HasPrefix(k, "root/minint") && !strings.HasPrefix(k, "root/data/mounted") {
			left = append(left, k)
		}
	}
	sort.Strings(left)
	if strings.Join(left, " ") != "root root/data root/lost+found" {
		t.Errorf("left behind: %q", left)
	}
	// The hard-linked store lost its outside names only.
	var st syscall.Stat_t
	syscall.Stat(filepath.Join(root, "minint/state/store/aa11"), &st)
	if st.Nlink != 1 {
		t.Errorf("store file has %d links", st.Nlink)
	}
	m := readManifest(t, res.Manifest)
	if len(m) != len(dry.Entries) || deleted != len(m) {
		t.Errorf("manifest %d entries, dry run %d, deleted %d", len(m), len(dry.Entries), deleted)
	}
	for i := range m {
		if m[i] != dry.Entries[i] {
			t.Errorf("manifest[%d] = %+v, dry run said %+v", i, m[i], dry.Entries[i])
			break
		}
	}
}

func TestCleanRefusals(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	disktest.WriteFile(t, filepath.Join(root, "etc/x"), "x")
	disktest.WriteFile(t, filepath.Join(base, "elsewhere/keepme"), "x")
	for _, c := range []struct {
		setup func()
		keep  string
		is    error
		msg   string
	}{
		{func() {}, "minint", nil, "refusing to clean without it"},
		{func() { os.Symlink("../elsewhere", filepath.Join(root, "minint")) }, "minint", ErrUnsafePath, "is not a directory"},
		{func() {}, "../elsewhere", ErrUnsafePath, "single name"},
		{func() {}, "..", ErrUnsafePath, "single name"},
	} {
		c.setup()
		before := snapshot(t, base)
		_, err := CleanAllBut(context.Background(), root, CleanOptions{Keep: c.keep})
		if err == nil || (c.is != nil && !errors.Is(err, c.is)) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("keep %q: %v, want %v %q", c.keep, err, c.is, c.msg)
		}
		sameSnapshot(t, "refused", before, snapshot(t, base))
	}
	if _, err := CleanAllBut(context.Background(), "/", CleanOptions{DryRun: true}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("cleaning / : %v", err)
	}
}

// TestCleanE2E runs on a real ext4 filesystem with a real bind mount, an
// immutable file, and a full disk.
func TestCleanE2E(t *testing.T) {
	disktest.NeedE2E(t)
	base := t.TempDir()
	img := filepath.Join(base, "fs.img")
	f, _ := os.Create(img)
	f.Truncate(64 << 20)
	if _, err := Format(context.Background(), f, 0, 64<<20, FormatSpec{FS: "ext4"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The tree as its files say, without the image's own bytes: ext4
	// writes its metadata back when it pleases (a commit, a failed
	// allocation), and that says nothing about what a clean deleted.
	tree := func() map[string]string {
		s := snapshot(t, base)
		delete(s, "fs.img")
		return s
	}
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	m, err := Mount(img, root, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	populate(t, root, outside)
	// A real bind mount of the outside directory inside the tree.
	bind := filepath.Join(root, "srv/bind")
	os.MkdirAll(bind, 0o755)
	if err := unix.Mount(outside, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(bind, unix.MNT_DETACH)
	// Immutable and append-only entries (resolv.conf is often +i): the
	// clean clears the flags and deletes them; the same flags inside the
	// staging folder stay.
	disktest.WriteFile(t, filepath.Join(root, "etc/immutable"), "i")
	disktest.WriteFile(t, filepath.Join(root, "var/log/append/log"), "a")
	disktest.WriteFile(t, filepath.Join(root, "idir/inside"), "i")
	disktest.WriteFile(t, filepath.Join(root, "minint/keep-immutable"), "k")
	chattr := func(flag, p string) {
		t.Helper()
		if out, err := exec.Command("chattr", flag, filepath.Join(root, p)).CombinedOutput(); err != nil {
			t.Fatalf("chattr: %v %s", err, out)
		}
	}
	for _, c := range [][2]string{{"+i", "etc/immutable"}, {"+a", "var/log/append/log"}, {"+a", "var/log/append"}, {"+i", "idir"}, {"+i", "minint/keep-immutable"}} {
		chattr(c[0], c[1])
		defer exec.Command("chattr", "-"+c[0][1:], filepath.Join(root, c[1])).Run()
	}

	// First a full disk: the manifest cannot be written, nothing goes.
	filler := filepath.Join(root, "minint/filler")
	ff, _ := os.Create(filler)
	buf := make([]byte, 1<<20)
	for {
		if _, err := ff.Write(buf); err != nil {
			break
		}
	}
	// Then the last blocks, whatever the block size (a 64 MiB ext4 has
	// 1 KiB blocks): small files until none fits.
	for i, size := 0, 4096; size > 0; i++ {
		if err := os.WriteFile(filepath.Join(root, "minint", fmt.Sprintf("f%d", i)), buf[:size], 0o644); err != nil {
			size /= 4
		}
	}
	ff.Close()
	before := tree()
	if _, err := CleanAllBut(context.Background(), root, CleanOptions{}); err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Fatalf("full disk: %v", err)
	}
	sameSnapshot(t, "full disk", before, tree())
	os.Remove(filler)

	before = tree()
	res, err := CleanAllBut(context.Background(), root, CleanOptions{})
	if err != nil {
		t.Fatalf("immutable: err %v, failed %+v", err, res.Failed)
	}
	if res.Deleted != len(res.Entries) {
		t.Errorf("deleted %d of %d entries", res.Deleted, len(res.Entries))
	}
	for _, p := range []string{"etc/immutable", "var/log/append", "idir"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s survived: %v", p, err)
		}
	}
	if out, err := exec.Command("lsattr", "-d", filepath.Join(root, "minint/keep-immutable")).CombinedOutput(); err != nil || !strings.Contains(strings.Fields(string(out))[0], "i") {
		t.Errorf("the staging folder's immutable file lost its flag: %s %v", out, err)
	}
	after := tree()
	rel, _ := filepath.Rel(base, res.Manifest)
	delete(after, rel)
	sameSnapshot(t, "staging", sub(before, "root/minint"), sub(after, "root/minint"))
	sameSnapshot(t, "outside", sub(before, "outside"), sub(after, "outside"))
	sameSnapshot(t, "bind", sub(before, "root/srv/bind"), sub(after, "root/srv/bind"))
	if _, err := os.Stat(filepath.Join(root, "etc/hostname")); !os.IsNotExist(err) {
		t.Error("etc/hostname survived")
	}
}

func TestCleanTwiceSameSecond(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "minint"), 0o755)
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	var names []string
	for i := 0; i < 3; i++ {
		disktest.WriteFile(t, filepath.Join(root, "etc/x"), "x")
		res, err := CleanAllBut(context.Background(), root, CleanOptions{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(res.Manifest))
	}
	if strings.Join(names, " ") != "clean-manifest-20260102T030405Z.jsonl clean-manifest-20260102T030405Z-2.jsonl clean-manifest-20260102T030405Z-3.jsonl" {
		t.Errorf("manifests %v", names)
	}
}

func TestCleanRefusesRunningRootAlias(t *testing.T) {
	// sys plays the running root: its device and inode are what / has.
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "minint"), 0o755)
	disktest.WriteFile(t, filepath.Join(sys, "etc/x"), "x")
	var st unix.Stat_t
	if err := unix.Stat(sys, &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	alias := filepath.Join(sys, "mnt/alias") // a bind mount of the root filesystem
	plain := filepath.Join(sys, "srv/chroot")
	for _, d := range []string{alias + "/usr/minint", alias + "/minint", plain + "/minint"} {
		os.MkdirAll(d, 0o755)
	}
	disktest.WriteFile(t, filepath.Join(sys, "proc/self/mountinfo"), fmt.Sprintf(
		"1 0 %s / / rw - ext4 /dev/sda2 rw\n40 1 %s /usr %s rw - ext4 /dev/sda2 rw\n", dev, dev, alias))
	for _, c := range []struct {
		root string
		msg  string // "" when allowed
	}{
		{sys, "is the running system's root /"},
		{alias, "a mount of the running system's root filesystem"},
		{alias + "/usr", "a mount of the running system's root filesystem"},
		{plain, ""},
	} {
		before := snapshot(t, sys)
		_, err := CleanAllBut(context.Background(), c.root, CleanOptions{DryRun: true, SysRoot: sys})
		if c.msg == "" {
			if err != nil {
				t.Errorf("%s: %v", c.root, err)
			}
		} else if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %q", c.root, err, c.msg)
		}
		sameSnapshot(t, c.root, before, snapshot(t, sys))
	}
}

// TestCleanRefusesBindOfRoot makes the real thing: / bind-mounted
// elsewhere (the dry run that planned 340,316 deletions), and a bind mount
// of one of its directories.
func TestCleanRefusesBindOfRoot(t *testing.T) {
	disktest.NeedE2E(t)
	for _, src := range []string{"/", "/etc"} {
		dir := t.TempDir()
		if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		_, err := CleanAllBut(context.Background(), dir, CleanOptions{DryRun: true})
		unix.Unmount(dir, unix.MNT_DETACH)
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("bind mount of %s: %v, want a refusal", src, err)
		}
	}
}

// TestCleanCountsOnlyDeleted: an entry that could not go is not counted,
// nor is the directory above it that therefore stays.
func TestCleanCountsOnlyDeleted(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "minint"), 0o755)
	for _, p := range []string{"a/b/f1", "a/b/f2", "z/file"} {
		disktest.WriteFile(t, filepath.Join(root, p), "data")
	}
	late := false
	res, err := CleanAllBut(context.Background(), root, CleanOptions{OnDelete: func(ManifestEntry) {
		if !late { // something appears in a/b mid-run: a/b and a must stay
			late = true
			disktest.WriteFile(t, filepath.Join(root, "a/b/late"), "new")
		}
	}})
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("err %v", err)
	}
	if want := len(res.Entries) - 2; res.Deleted != want || res.DeletedBytes != 12 {
		t.Errorf("deleted %d entries (%d bytes), want %d (12 bytes); failed %+v", res.Deleted, res.DeletedBytes, want, res.Failed)
	}
}

// TestCleanInterruptedResumes: a clean stopped part way (power loss,
// Ctrl-C) stops promptly, and a rerun deletes what is left.
func TestCleanInterruptedResumes(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	populate(t, root, outside)
	before := snapshot(t, filepath.Join(root, "minint"))
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	res, err := CleanAllBut(ctx, root, CleanOptions{OnDelete: func(ManifestEntry) {
		if n++; n == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res.Deleted != 3 {
		t.Fatalf("interrupted run: %v, deleted %d", err, res.Deleted)
	}
	res, err = CleanAllBut(context.Background(), root, CleanOptions{})
	if err != nil || res.Deleted != len(res.Entries) {
		t.Fatalf("rerun: %v, deleted %d of %d", err, res.Deleted, len(res.Entries))
	}
	names, _ := os.ReadDir(root)
	var left []string
	for _, e := range names {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != "lost+found minint" {
		t.Errorf("left %v", left)
	}
	after := snapshot(t, filepath.Join(root, "minint"))
	for k := range after {
		if strings.HasPrefix(k, "clean-manifest-") {
			delete(after, k)
		}
	}
	sameSnapshot(t, "staging", before, after)
}
