package diskops

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/disktest"
	"golang.org/x/sys/unix"
)

// TestExt4LabelChecksum relabels a metadata_csum filesystem made by
// mkfs.ext4: e2fsck must accept the recomputed superblock checksum.
func TestExt4LabelChecksum(t *testing.T) {
	mkfs := disktest.NeedTool(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "e.img")
	f, _ := os.Create(img)
	f.Truncate(32 << 20)
	f.Close()
	disktest.Run(t, mkfs, "-q", "-F", "-O", "metadata_csum", "-L", "before", img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := setExt4Label(f, 0, "after"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	disktest.Run(t, disktest.NeedTool(t, "e2fsck"), "-n", "-f", img)
	if got := disktest.Run(t, disktest.NeedTool(t, "blkid"), "-p", "-o", "export", img); !strings.Contains(got, "LABEL=after\n") {
		t.Errorf("blkid:\n%s", got)
	}
}

// TestFormatExt4Unlabelled: go-diskfs would name it "diskfs_ext4".
func TestFormatExt4Unlabelled(t *testing.T) {
	img := filepath.Join(t.TempDir(), "e.img")
	f, _ := os.Create(img)
	defer f.Close()
	f.Truncate(16 << 20)
	var written int64
	fs, err := Format(context.Background(), f, 0, 16<<20, FormatSpec{FS: "ext4", UUID: "01234567-89ab-4def-8123-456789abcdef",
		Progress: func(done, _ int64) { written = done }})
	if err != nil {
		t.Fatal(err)
	}
	if written < 64<<10 {
		t.Errorf("progress reported %d bytes written", written)
	}
	if fs.Label != "" || fs.UUID != "01234567-89ab-4def-8123-456789abcdef" {
		t.Errorf("got %+v", fs)
	}
	if _, err := Format(context.Background(), f, 0, 16<<20, FormatSpec{FS: "ext4", UUID: "nope"}); err == nil {
		t.Error("accepted UUID nope")
	}
	if _, err := Format(context.Background(), f, 0, 16<<20, FormatSpec{FS: "btrfs"}); err == nil {
		t.Error("accepted btrfs")
	}
}

func TestFormatMkfsExt4(t *testing.T) {
	disktest.NeedTool(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "e.img")
	f, _ := os.Create(img)
	defer f.Close()
	f.Truncate(32 << 20)
	fs, err := Format(context.Background(), f, 0, 32<<20, FormatSpec{FS: "ext4", Label: "viamkfs", Mkfs: true})
	if err != nil {
		t.Fatal(err)
	}
	if fs.Label != "viamkfs" || fs.Type != "ext4" {
		t.Errorf("got %+v", fs)
	}
	disktest.Run(t, disktest.NeedTool(t, "e2fsck"), "-n", "-f", img)
}

// TestFormatExt4OverOldData: the inode tables and journal go-diskfs writes
// as zeros are cleared by the device (a hole in an image file, BLKZEROOUT
// on a loop device) instead of written; what was on the disk before must
// still read back as zeros, or e2fsck finds garbage inodes.
func TestFormatExt4OverOldData(t *testing.T) {
	const size = 256 << 20
	for _, block := range []bool{false, true} {
		name := map[bool]string{false: "image file", true: "block device"}[block]
		t.Run(name, func(t *testing.T) {
			if block {
				disktest.NeedE2E(t)
			}
			img := filepath.Join(t.TempDir(), "old.img")
			old := bytes.Repeat([]byte{0xA5, 0x5A, 0xFF, 0x01}, 1<<18)
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < size; off += len(old) {
				f.Write(old)
			}
			f.Close()
			path := img
			if block {
				path = losetup(t, img)
			}
			f, err = os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := Format(context.Background(), f, 0, size, FormatSpec{FS: "ext4", Label: "reused"}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			disktest.Run(t, disktest.NeedTool(t, "e2fsck"), "-n", "-f", path)
			if block {
				return // the loop driver zeroes with ZERO_RANGE: still allocated
			}
			var st unix.Stat_t
			if err := unix.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			// The inode tables (16 MiB here) were not written
			// out: the image lost about that much of its allocation.
			if alloc := st.Blocks * 512; alloc > size-8<<20 {
				t.Errorf("%d of %d bytes still allocated: the zeros were written, not offloaded", alloc, size)
			}
		})
	}
}
