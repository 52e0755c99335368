package diskops

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/minint/minint/internal/disktest"
	"golang.org/x/sys/unix"
)

// TestMountRoundTrip partitions and formats an image, mounts the ext4
// partition by offset through the kernel, writes a file, unmounts and
// checks that nothing is left behind and the filesystem is clean.
func TestMountRoundTrip(t *testing.T) {
	disktest.NeedE2E(t)
	tg := imageTarget(t, 100<<20)
	l, _ := ParseLayout([]byte("partitions: [{name: esp, size: 34M, type: esp, fs: vfat}, {name: root, size: rest, fs: ext4, label: r}]"))
	res, err := Partition(context.Background(), tg, l, PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FormatPartitions(context.Background(), tg, res, false, nil); err != nil {
		t.Fatal(err)
	}
	root := res.Partitions[1]
	dir := filepath.Join(t.TempDir(), "mnt/root")
	m, err := Mount(tg.Path, dir, MountOptions{Offset: root.Start, Size: root.Size})
	if err != nil {
		t.Fatal(err)
	}
	if m.FSType != "ext4" {
		t.Errorf("probed type %q", m.FSType)
	}
	var st, pst unix.Stat_t
	unix.Stat(dir, &st)
	unix.Stat(filepath.Dir(dir), &pst)
	if st.Dev == pst.Dev {
		t.Fatal("mount point is on the parent's filesystem: not mounted")
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	loop := m.Source
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("mount point %s left behind (%v)", dir, err)
	}
	if b, _ := os.ReadFile("/sys/block/" + filepath.Base(loop) + "/loop/backing_file"); len(b) > 0 {
		t.Errorf("%s still attached to %s", loop, b)
	}
	part := extract(t, tg.Path, root)
	disktest.Run(t, "e2fsck", "-n", "-f", part)
	if out, err := exec.Command("debugfs", "-R", "cat /hello", part).Output(); err != nil || string(out) != "hi" {
		t.Errorf("file read back as %q (%v)", out, err)
	}
	// A failing mount (FAT: the host kernel has no vfat, or a wrong type)
	// leaves no directory and no loop device either.
	dir2 := filepath.Join(t.TempDir(), "nope")
	if _, err := Mount(tg.Path, dir2, MountOptions{Offset: res.Partitions[0].Start, Size: res.Partitions[0].Size, FSType: "ext4"}); err == nil {
		t.Fatal("mounting FAT as ext4 succeeded")
	}
	if _, err := os.Stat(dir2); !os.IsNotExist(err) {
		t.Errorf("failed mount left %s", dir2)
	}
}
