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
		v := fmt.Sprintf("%v %d ino=%d", fi.Mode(), fi.Size(), st.Ino)
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
	// An immutable file: deleting it fails, the run reports it and goes on.
	disktest.WriteFile(t, filepath.Join(root, "etc/immutable"), "i")
	if out, err := exec.Command("chattr", "+i", filepath.Join(root, "etc/immutable")).CombinedOutput(); err != nil {
		t.Fatalf("chattr: %v %s", err, out)
	}
	defer exec.Command("chattr", "-i", filepath.Join(root, "etc/immutable")).Run()

	// First a full disk: the manifest cannot be written, nothing goes.
	filler := filepath.Join(root, "minint/filler")
	ff, _ := os.Create(filler)
	buf := make([]byte, 1<<20)
	for {
		if _, err := ff.Write(buf); err != nil {
			break
		}
	}
	for i := 0; ; i++ { // use up the remaining inodes' worth of blocks too
		if err := os.WriteFile(filepath.Join(root, "minint", fmt.Sprintf("f%d", i)), buf[:4096], 0o644); err != nil {
			break
		}
	}
	ff.Close()
	before := snapshot(t, base)
	if _, err := CleanAllBut(context.Background(), root, CleanOptions{}); err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Fatalf("full disk: %v", err)
	}
	sameSnapshot(t, "full disk", before, snapshot(t, base))
	os.Remove(filler)

	before = snapshot(t, base)
	res, err := CleanAllBut(context.Background(), root, CleanOptions{})
	if !errors.Is(err, ErrPartial) || len(res.Failed) != 1 || res.Failed[0].Path != "etc/immutable" {
		t.Fatalf("immutable: err %v, failed %+v", err, res.Failed)
	}
	after := snapshot(t, base)
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
