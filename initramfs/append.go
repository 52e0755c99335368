package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/u-root/mkuimage/cpio"
)

// Compression names the compression of an initramfs from its first bytes:
// "gzip", "xz", "zstd" or "none" (a newc cpio archive), else an error.
func Compression(head []byte) (string, error) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip", nil
	case bytes.HasPrefix(head, []byte("\xfd7zXZ\x00")):
		return "xz", nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd", nil
	case bytes.HasPrefix(head, []byte("070701")):
		return "none", nil
	}
	return "", fmt.Errorf("not an initramfs minint reads (gzip, xz or zstd compressed, or a newc cpio archive)")
}

// Append adds files to an existing initramfs without rebuilding it: one
// more cpio archive, compressed like the first, after the last. The kernel
// unpacks the archives in order, and a later file replaces an earlier one
// of the same name (ReadArchive does the same), so this is how a built PE
// gets another package key or configuration in seconds, with no Go
// toolchain. Only regular files are added; their directories are created
// as needed. The file is modified in place: work on a copy.
func Append(initrd string, files []File) error {
	f, err := os.OpenFile(initrd, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 6)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("%s: %w", initrd, err)
	}
	name, err := Compression(head)
	if err != nil {
		return fmt.Errorf("%s: %w", initrd, err)
	}
	c, err := compressor(name)
	if err != nil {
		return err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if name == "none" && end%4 != 0 {
		// The kernel looks for an uncompressed archive's header at a
		// 4-byte boundary and skips zeros to get there.
		if _, err := f.Write(make([]byte, 4-end%4)); err != nil {
			return err
		}
	}
	var recs []cpio.Record
	made := map[string]bool{}
	for _, fl := range files {
		dest := path.Clean(strings.TrimPrefix(fl.Dest, "/"))
		if dest == "." || strings.HasPrefix(dest, "../") || dest == ".." {
			return fmt.Errorf("initramfs file %q: not a path inside the initramfs", fl.Dest)
		}
		data := fl.Data
		if data == nil && fl.Src != "" {
			if data, err = os.ReadFile(fl.Src); err != nil {
				return err
			}
		}
		var dirs []string
		for d := path.Dir(dest); d != "." && !made[d]; d = path.Dir(d) {
			dirs = append(dirs, d)
			made[d] = true
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			recs = append(recs, cpio.Directory(dirs[i], 0o755))
		}
		mode := fl.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Mode: cpio.S_IFREG | uint64(mode), Name: dest}))
	}
	if err := writeArchive(f, c, recs); err != nil {
		return err
	}
	return f.Close()
}
