package diskops

import (
	"errors"
	"github.com/minint/minint/bytesize"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/disktest"
)

// TestFAT32FsckClean formats images of several sizes (crossing the cluster
// size steps) and checks them with dosfstools and mtools: fsck finds
// nothing, blkid reads label and UUID, and a file copied in reads back.
func TestFAT32FsckClean(t *testing.T) {
	fsck := disktest.NeedTool(t, "fsck.vfat")
	blkid := disktest.NeedTool(t, "blkid")
	mcopy := disktest.NeedTool(t, "mcopy")
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
			t.Fatalf("%s: %v", bytesize.Size(size), err)
		}
		if fs.UUID != "1234-ABCD" || fs.Label != "ESP" {
			t.Errorf("returned %+v", fs)
		}
		// fsck and blkid see the volume alone, as a partition device would.
		part := img
		if off != 0 {
			part = filepath.Join(t.TempDir(), "part.img")
			disktest.Run(t, "dd", "if="+img, "of="+part, "bs=1M", "skip=1", "count="+itoa(size>>20), "conv=sparse", "status=none")
		}
		out := disktest.Run(t, fsck, "-n", part)
		if testing.Verbose() {
			t.Logf("%s:\n%s", bytesize.Size(size), out)
		}
		if !disktest.FsckVFATClean(out) {
			t.Errorf("%s: fsck.vfat:\n%s", bytesize.Size(size), out)
		}
		got := disktest.Run(t, blkid, "-p", "-o", "export", part)
		for _, want := range []string{"TYPE=vfat", "VERSION=FAT32", "LABEL=ESP", "UUID=1234-ABCD"} {
			if !strings.Contains(got, want+"\n") {
				t.Errorf("%s: blkid lacks %s:\n%s", bytesize.Size(size), want, got)
			}
		}
		src := filepath.Join(t.TempDir(), "hello.txt")
		os.WriteFile(src, []byte("hello from minint\n"), 0o644)
		disktest.Run(t, mcopy, "-i", part, src, "::/hello.txt")
		if back := disktest.Run(t, "mtype", "-i", part, "::/hello.txt"); back != "hello from minint\n" {
			t.Errorf("%s: read back %q", bytesize.Size(size), back)
		}
		if out := disktest.Run(t, fsck, "-n", part); !disktest.FsckVFATClean(out) {
			t.Errorf("%s: fsck after write:\n%s", bytesize.Size(size), out)
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
