package durable

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Behaviour on vfat (no permissions, its rename) is checked in a guest by
// bootloader's TestDeployInGuest (testdata/peguest), which has an ESP.

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "journal.json")
	old := syscall.Umask(0o077) // the mode must not depend on the umask
	defer syscall.Umask(old)
	for _, c := range []struct {
		data string
		perm fs.FileMode
	}{{"first\n", 0o644}, {"second, longer\n", 0o640}, {"", 0o755}} {
		if err := WriteFile(name, []byte(c.data), c.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != c.data {
			t.Errorf("content %q, %v; want %q", got, err, c.data)
		}
		fi, _ := os.Stat(name)
		if fi.Mode() != c.perm {
			t.Errorf("mode %v, want %v", fi.Mode(), c.perm)
		}
		onlyFiles(t, dir, "journal.json")
	}
}

func TestWriteFileNoDirectory(t *testing.T) {
	name := filepath.Join(t.TempDir(), "missing", "f")
	err := WriteFile(name, []byte("x"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), name) {
		t.Errorf("got %v, want ErrNotExist naming %s", err, name)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, syscall.EIO
	}
	n := min(len(p), r.n)
	for i := range p[:n] {
		p[i] = 'N'
	}
	r.n -= n
	return n, nil
}

// A write that fails half-way (the source breaks off) leaves the old file
// whole and no temporary file.
func TestFailedWriteKeepsOld(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "loader.conf")
	if err := WriteFile(name, []byte("default old.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, &failingReader{n: 100 << 10})
	if !errors.Is(err, syscall.EIO) || n != 100<<10 {
		t.Fatalf("copy: %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name); string(got) != "default old.conf\n" {
		t.Errorf("old file changed to %q", got)
	}
	onlyFiles(t, dir, "loader.conf")
	if err := f.Commit(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}
	onlyFiles(t, dir, "loader.conf")
}

// The content is private while it is written, and nothing shows under the
// name until Commit.
func TestCreateCommit(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "shadow")
	f, err := Create(name, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.Name())
	if err != nil || fi.Mode() != 0o600 || filepath.Dir(f.Name()) != dir {
		t.Errorf("temporary file %s: %v, %v; want mode 0600 in %s", f.Name(), fi.Mode(), err, dir)
	}
	if !strings.HasPrefix(filepath.Base(f.Name()), ".shadow.") {
		t.Errorf("temporary name %s", f.Name())
	}
	if _, err := os.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists before Commit: %v", name, err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close after Commit: %v", err)
	}
	fi, err = os.Stat(name)
	if err != nil || fi.Size() != 1000 || fi.Mode() != 0o640 {
		t.Errorf("%s: %v, %v", name, fi, err)
	}
	onlyFiles(t, dir, "shadow")
	if err := f.Commit(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("second Commit: %v", err)
	}
}

// A rename that fails (the name is a non-empty directory) leaves what was
// there and no temporary file.
func TestCommitRenameFails(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(name, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(name, []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("got %v, want an error naming %s", err, name)
	}
	if _, err := os.Stat(filepath.Join(name, "keep")); err != nil {
		t.Error(err)
	}
	onlyFiles(t, dir, "d")
}

// fsync of a directory fails with EINVAL where the file system has no
// directory fsync; that must not fail the write (os.ErrInvalid, which
// earlier copies tested for, does not match it).
func TestCannotSyncDir(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "sync", Path: "/esp", Err: syscall.EINVAL}, true},
		{&fs.PathError{Op: "sync", Path: "/esp", Err: syscall.ENOTSUP}, true},
		{&fs.PathError{Op: "sync", Path: "/esp", Err: syscall.EIO}, false},
		{&fs.PathError{Op: "sync", Path: "/esp", Err: syscall.EROFS}, false},
	} {
		if got := cannotSyncDir(c.err); got != c.want {
			t.Errorf("cannotSyncDir(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if err := SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v", err)
	}
}

func onlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

func TestRename(t *testing.T) {
	dir := t.TempDir()
	part, dest := filepath.Join(dir, "image.wim.partial"), filepath.Join(dir, "image.wim")
	if err := os.WriteFile(part, []byte("complete"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Rename(part, dest); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dest); err != nil || string(b) != "complete" {
		t.Errorf("%s: %q, %v", dest, b, err)
	}
	onlyFiles(t, dir, "image.wim")
	if err := Rename(part, dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("renaming a missing file: %v", err)
	}
	// A failed rename leaves the source for the caller.
	if err := os.WriteFile(part, []byte("complete"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "d", "keep"), nil, 0o644)
	if err := Rename(part, filepath.Join(dir, "d")); err == nil {
		t.Fatal("renamed over a non-empty directory")
	}
	onlyFiles(t, dir, "d", "image.wim", "image.wim.partial")
}
