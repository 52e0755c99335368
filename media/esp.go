package media

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"
)

// espImage builds a FAT EFI system partition image with mkfs.vfat and
// mtools rather than go-diskfs, whose FAT output is not fsck-clean and
// firmware is less forgiving than Linux. Every value mkfs would take from
// the clock or randomness is fixed (--invariant, the volume id, and
// SOURCE_DATE_EPOCH for mtools' timestamps), so equal inputs give equal
// bytes.
type espImage struct {
	Label  string            // FAT volume label, at most 11 characters
	VolID  uint32            // FAT volume serial number
	Files  map[string]string // path in the image (e.g. /EFI/BOOT/BOOTX64.EFI) -> host file
	Epoch  time.Time
	Slack  int64 // extra free bytes
	tools  map[string]string
	tmpDir string
}

func (e espImage) build(ctx context.Context, out string) (int64, error) {
	var need int64
	dests := make([]string, 0, len(e.Files))
	for dst, src := range e.Files {
		fi, err := os.Stat(src)
		if err != nil {
			return 0, err
		}
		need += (fi.Size() + 4095) / 4096 * 4096
		dests = append(dests, dst)
	}
	sort.Strings(dests)
	// FAT tables, root directory and rounding: 3% plus 1 MiB covers FAT12/16
	// and the cluster sizes mkfs.vfat picks up to a few hundred MiB.
	size := int64(alignUp(uint64(need+need/32+1<<20+e.Slack), 1<<20))
	os.Remove(out)
	env := append(os.Environ(), "TZ=UTC", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", e.Epoch.Unix()), "MTOOLS_SKIP_CHECK=1")
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, e.tools[name], args...)
		cmd.Env = env
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(msg))
		}
		return nil
	}
	if err := run("mkfs.vfat", "--invariant", "-i", fmt.Sprintf("%08x", e.VolID), "-n", e.Label,
		"-C", out, fmt.Sprint(size/1024)); err != nil {
		return 0, err
	}
	made := map[string]bool{"/": true}
	for _, dst := range dests {
		var dirs []string
		for d := path.Dir(dst); !made[d]; d = path.Dir(d) {
			dirs = append([]string{d}, dirs...)
			made[d] = true
		}
		for _, d := range dirs {
			if err := run("mmd", "-i", out, "::"+d); err != nil {
				return 0, err
			}
		}
		// mcopy -m keeps the source's mtime: set it to the epoch first.
		if err := os.Chtimes(e.Files[dst], e.Epoch, e.Epoch); err != nil {
			return 0, err
		}
		if err := run("mcopy", "-m", "-i", out, e.Files[dst], "::"+dst); err != nil {
			return 0, err
		}
	}
	return size, nil
}
