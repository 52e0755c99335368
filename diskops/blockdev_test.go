package diskops

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/disktest"
	"golang.org/x/sys/unix"
)

func losetup(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("losetup", append([]string{"-f", "--show"}, args...)...).Output()
	if err != nil {
		t.Fatalf("losetup %v: %v", args, err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// TestTargetRefusals: a mounted disk and a read-only disk are refused with
// an error naming the device and the reason, and nothing is written.
func TestTargetRefusals(t *testing.T) {
	disktest.NeedE2E(t)
	ctx := context.Background()
	img := imageTarget(t, 64<<20)
	if _, err := Format(ctx, img.File, 0, 64<<20, FormatSpec{FS: "ext4", Label: "busy"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(img.Path)

	dev := losetup(t, img.Path)
	m, err := Mount(dev, filepath.Join(t.TempDir(), "m"), MountOptions{ReadOnly: true}) // ro: mounting itself writes nothing
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenTarget(ctx, dev, TargetOptions{})
	m.Close()
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dev) || !strings.Contains(err.Error(), "mounted on") {
		t.Errorf("mounted: %v", err)
	}

	_, err = OpenTarget(ctx, dev, TargetOptions{BootDevices: []string{dev}})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "boot medium") {
		t.Errorf("boot medium: %v", err)
	}
	_, err = OpenTarget(ctx, dev, TargetOptions{MediaLabel: "busy"})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "boot medium") {
		t.Errorf("boot medium by label: %v", err)
	}

	ro := losetup(t, "-r", img.Path)
	_, err = OpenTarget(ctx, ro, TargetOptions{})
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), ro) {
		t.Errorf("read-only: %v", err)
	}
	// The kernel's own claim: a device held open exclusively elsewhere.
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenTarget(ctx, dev, TargetOptions{})
	f.Close()
	if !errors.Is(err, ErrInUse) {
		t.Errorf("exclusively held: %v", err)
	}
	after, _ := os.ReadFile(img.Path)
	if string(before) != string(after) {
		t.Error("a refused target was written to")
	}
}

// TestPartitionLoopWithoutNodes: on a loop device without partition
// scanning the table is written, and the error says the nodes are missing.
func TestPartitionLoopWithoutNodes(t *testing.T) {
	disktest.NeedE2E(t)
	img := imageTarget(t, 64<<20)
	dev := losetup(t, img.Path)
	tg, err := OpenTarget(context.Background(), dev, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	l, _ := ParseLayout([]byte("partitions: [{name: a, size: rest, fs: ext4}]"))
	res, err := Partition(context.Background(), tg, l, PartitionOptions{NodeTimeout: 500e6})
	if err == nil {
		// A kernel with partition-table support made the nodes.
		if len(res.Nodes) != 1 {
			t.Fatalf("nodes %v", res.Nodes)
		}
		return
	}
	if !IsNoNodes(err) || res == nil || !strings.Contains(err.Error(), dev) {
		t.Fatalf("err = %v, res = %+v", err, res)
	}
	if _, err := FormatPartitions(context.Background(), tg, res, false, nil); err != nil {
		t.Fatal(err)
	}
	if got := disktest.Run(t, "sgdisk", "-v", dev); !strings.Contains(got, "No problems found") {
		t.Errorf("sgdisk:\n%s", got)
	}
}
