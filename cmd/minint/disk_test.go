package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func runDisk(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(append([]string{"disk"}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

// TestDiskPartitionNeedsConfirmation: without a terminal and without --yes
// the command refuses and writes nothing; with --yes it partitions.
func TestDiskPartitionNeedsConfirmation(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	f, _ := os.Create(img)
	f.Truncate(100 << 20)
	f.WriteAt([]byte("old data"), 0)
	f.Close()
	layout := filepath.Join(dir, "layout.yaml")
	os.WriteFile(layout, []byte("partitions:\n  - {name: esp, size: 40M, type: esp, fs: vfat}\n  - {name: root, size: rest, fs: ext4}\n"), 0o644)

	// stdin is not a terminal under go test.
	if code, out := runDisk(t, "partition", "--layout", layout, img); code != 1 {
		t.Fatalf("without --yes: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(img)
	if string(b[:8]) != "old data" {
		t.Fatal("refused partitioning wrote to the image")
	}
	if code, out := runDisk(t, "partition", "--layout", layout, "--dry-run", img); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if b, _ = os.ReadFile(img); string(b[:8]) != "old data" {
		t.Fatal("dry run wrote to the image")
	}
	if code, out := runDisk(t, "partition", "--layout", layout, "--format", "--yes", img); code != 0 {
		t.Fatalf("with --yes: exit %d\n%s", code, out)
	}
	if b, _ = os.ReadFile(img); b[510] != 0x55 || b[511] != 0xAA || string(b[512:520]) != "EFI PART" {
		t.Fatal("no GPT written")
	}
}

func TestDiskUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"select"},
		{"select", "{colour: red}"},
		{"partition", "x.img"},
		{"format", "x.img"},
		{"clean"},
		{"list", "extra"},
		{"bootnext"},
	} {
		if code, out := runDisk(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out)
		}
	}
	if code, _ := runDisk(t, "partition", "--layout", "/nonexistent.yaml", "x.img"); code != 1 {
		t.Errorf("missing layout: exit %d, want 1", code)
	}
}

func TestDiskCleanDryRunChangesNothing(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "minint"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("h"), 0o644)
	if code, out := runDisk(t, "clean", "--dry-run", root); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hostname")); err != nil {
		t.Fatal("dry run deleted a file")
	}
	if code, _ := runDisk(t, "clean", root); code != 1 {
		t.Errorf("clean without --yes and no terminal: exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hostname")); err != nil {
		t.Fatal("unconfirmed clean deleted a file")
	}
}
