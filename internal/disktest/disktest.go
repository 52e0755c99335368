// Package disktest holds the helpers the disk and boot-loader tests share:
// gating on MININT_E2E and root, finding host tools, running them, and
// reading their verdicts.
package disktest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NeedE2E skips tests that need loop devices, mounts or guests unless
// MININT_E2E=1 (make test sets it) and the test runs as root.
func NeedE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("loop devices, mounts and guests: set MININT_E2E=1 (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mount")
	}
}

// NeedTool returns the path of a host program, looking in /sbin and
// /usr/sbin too, or skips the test.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/sbin", "/usr/sbin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	t.Skipf("%s not installed (scripts/setup-host.sh installs it)", name)
	return ""
}

// Run runs a program and returns its combined output; failing fails the
// test with that output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WriteFile writes content to path, creating its directories.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Extract copies size bytes at start (both MiB-aligned) of img to a file
// of their own, so that tools without an offset option (fsck, blkid) can
// read a partition.
func Extract(t testing.TB, img, name string, start, size int64) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".img")
	Run(t, "dd", "if="+img, "of="+out, "bs=1M", fmt.Sprint("skip=", start>>20), fmt.Sprint("count=", size>>20), "status=none")
	return out
}

// FsckVFATClean reads fsck.vfat -n output: a clean volume gives only the
// banner, the last-sector check and the "files, clusters" summary.
func FsckVFATClean(out string) bool {
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "fsck.fat ") && l != "Checking we can access the last sector of the filesystem" &&
			!strings.Contains(l, " files, ") {
			return false
		}
	}
	return true
}
