package e2e

import (
	"github.com/minint/minint/diskops"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/minint/minint/qemu"
)

// hookDisk makes a small ext4 disk labelled MININT-T holding hook.sh (the
// script) and files (name -> host path, copied in). The sample OS runs
// hook.sh at every boot after its report, with the disk mounted at
// $MININT_T (scripts/make-sample-rootfs.sh): the tests' way to act inside
// a deployed guest. No mount is needed on the host: mke2fs -d fills it.
func hookDisk(t *testing.T, script string, files map[string]string) qemu.Disk {
	t.Helper()
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	if err := os.MkdirAll(content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(content, "hook.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(src)
		if err := os.WriteFile(filepath.Join(content, name), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "hook.img")
	var size int64 = 64 << 20
	for _, src := range files {
		if fi, err := os.Stat(src); err == nil {
			size += fi.Size() * 2
		}
	}
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "MININT-T", "-d", content, img, strconv.FormatInt(size>>10, 10)+"k").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs hook disk: %v\n%s", err, out)
	}
	// SATA, so that it never matches a sequence's {transport: virtio} rule.
	return qemu.Disk{Path: img, Interface: "sata"}
}

// static builds a command of this module (e.g. "./e2e/guesttool",
// "./cmd/minint") as a static binary that runs in the busybox sample OS,
// once per test binary.
func (f *fixture) static(t *testing.T, pkg string) string {
	t.Helper()
	staticMu.Lock()
	defer staticMu.Unlock()
	if p, ok := staticBins[pkg]; ok {
		return p
	}
	p := filepath.Join(f.work, "static", filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", p, pkg)
	cmd.Dir = f.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s static: %v\n%s", pkg, err, out)
	}
	staticBins[pkg] = p
	return p
}

var (
	staticMu   sync.Mutex
	staticBins = map[string]string{}
)

// guestTable opens a guest's disk image (closed when the test ends) and
// reads its partition table.
func guestTable(t *testing.T, disk string) (*os.File, *diskops.Table, error) {
	t.Helper()
	fh, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	fi, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := diskops.ReadTable(fh, fi.Size(), 512)
	return fh, tbl, err
}

// bigDisk is a blank, sparse 1 GiB disk image for guests that hold
// guesttool's trees and user state besides the sample OS: room for both,
// with the root's ext4 on 4 KiB blocks, which its 3000-byte xattr needs.
func bigDisk(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<30); err != nil {
		t.Fatal(err)
	}
	return p
}
