package diskops

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, d := range []string{"/sbin", "/usr/sbin"} {
			if _, err := os.Stat(filepath.Join(d, name)); err == nil {
				return filepath.Join(d, name)
			}
		}
		t.Skipf("%s not installed (scripts/setup-host.sh installs it)", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestFAT32FsckClean formats images of several sizes (crossing the cluster
// size steps) and checks them with dosfstools and mtools: fsck finds
// nothing, blkid reads label and UUID, and a file copied in reads back.
func TestFAT32FsckClean(t *testing.T) {
	fsck := needTool(t, "fsck.vfat")
	blkid := needTool(t, "blkid")
	mcopy := needTool(t, "mcopy")
	for _, size := range []int64{34 << 20, 256 << 20, 300 << 20, 9 << 30} {
		img := filepath.Join(t.TempDir(), "fat.img")
		// One volume sits at an offset, as in a disk image; the others
		// start at 0 so that the tools can read them without copying.
		off := int64(0)
		if size == 34<<20 {
			off = 1 << 20
		}
		f, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(off + size + 4096)
		fs, err := FormatFAT32(f, off, size, FATOptions{Label: "esp", VolumeID: 0x1234ABCD, HiddenSectors: 2048})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", Size(size), err)
		}
		if fs.UUID != "1234-ABCD" || fs.Label != "ESP" {
			t.Errorf("returned %+v", fs)
		}
		// fsck and blkid see the volume alone, as a partition device would.
		part := img
		if off != 0 {
			part = filepath.Join(t.TempDir(), "part.img")
			run(t, "dd", "if="+img, "of="+part, "bs=1M", "skip=1", "count="+itoa(size>>20), "conv=sparse", "status=none")
		}
		out := run(t, fsck, "-n", part)
		if testing.Verbose() {
			t.Logf("%s:\n%s", Size(size), out)
		}
		if !fsckVFATClean(out) {
			t.Errorf("%s: fsck.vfat:\n%s", Size(size), out)
		}
		got := run(t, blkid, "-p", "-o", "export", part)
		for _, want := range []string{"TYPE=vfat", "VERSION=FAT32", "LABEL=ESP", "UUID=1234-ABCD"} {
			if !strings.Contains(got, want+"\n") {
				t.Errorf("%s: blkid lacks %s:\n%s", Size(size), want, got)
			}
		}
		src := filepath.Join(t.TempDir(), "hello.txt")
		os.WriteFile(src, []byte("hello from minint\n"), 0o644)
		run(t, mcopy, "-i", part, src, "::/hello.txt")
		if back := run(t, "mtype", "-i", part, "::/hello.txt"); back != "hello from minint\n" {
			t.Errorf("%s: read back %q", Size(size), back)
		}
		if out := run(t, fsck, "-n", part); !fsckVFATClean(out) {
			t.Errorf("%s: fsck after write:\n%s", Size(size), out)
		}
	}
}

func TestFAT32TooSmall(t *testing.T) {
	f, _ := os.Create(filepath.Join(t.TempDir(), "x"))
	defer f.Close()
	if _, err := FormatFAT32(f, 0, 16<<20, FATOptions{}); !errors.Is(err, ErrTooSmall) {
		t.Fatalf("16 MiB: %v, want ErrTooSmall", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Fatalf("wrote %d bytes before refusing", fi.Size())
	}
	if _, err := FormatFAT32(f, 0, 64<<20, FATOptions{Label: "bad:label"}); err == nil {
		t.Fatal("accepted label with ':'")
	}
}

// fsckVFATClean reads fsck.vfat -n output: a clean volume gives only the
// banner, the last-sector check and the "files, clusters" summary.
func fsckVFATClean(out string) bool {
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "fsck.fat ") && l != "Checking we can access the last sector of the filesystem" &&
			!strings.Contains(l, " files, ") {
			return false
		}
	}
	return true
}
