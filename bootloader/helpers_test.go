package bootloader

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/disktest"
)

// imageTarget opens a new sparse disk image of size bytes as a target.
func imageTarget(t *testing.T, size int64) *diskops.Target {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	tg, err := diskops.OpenTarget(context.Background(), img, diskops.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// extract copies a partition to its own file so that tools without an
// offset option (fsck, blkid) can read it.
func extract(t *testing.T, img string, p diskops.Planned) string {
	t.Helper()
	return disktest.Extract(t, img, p.Name, p.Start, p.Size)
}
