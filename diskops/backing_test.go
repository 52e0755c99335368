package diskops

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// fakeBlock makes sysRoot/sys/dev/block/<devnum> point at a device
// directory like the kernel's, and sysRoot/dev/<name> hold img's bytes.
func fakeBlock(t *testing.T, sysRoot, devnum, sysPath, name string, partition int, img []byte) {
	t.Helper()
	dir := filepath.Join(sysRoot, "sys/devices", sysPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "uevent"), []byte("MAJOR=x\nDEVNAME="+name+"\n"), 0o644)
	if partition > 0 {
		os.WriteFile(filepath.Join(dir, "partition"), []byte{byte('0' + partition), '\n'}, 0o644)
	}
	os.MkdirAll(filepath.Join(sysRoot, "sys/dev/block"), 0o755)
	rel, _ := filepath.Rel(filepath.Join(sysRoot, "sys/dev/block"), dir)
	if err := os.Symlink(rel, filepath.Join(sysRoot, "sys/dev/block", devnum)); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(sysRoot, "dev"), 0o755)
	if err := os.WriteFile(filepath.Join(sysRoot, "dev", name), img, 0o644); err != nil {
		t.Fatal(err)
	}
}

type memImg struct{ b []byte }

func (m *memImg) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

func TestBackingDevice(t *testing.T) {
	sys := t.TempDir()
	fat := &memImg{make([]byte, 40<<20)}
	if _, err := FormatFAT32(fat, 0, int64(len(fat.b)), FATOptions{Label: "ESP", VolumeID: 0x1234abcd}); err != nil {
		t.Fatal(err)
	}
	fakeBlock(t, sys, "8:1", "pci0000:00/0000:00:05.0/block/sda/sda1", "sda1", 1, fat.b)
	fakeBlock(t, sys, "7:0", "virtual/block/loop0", "loop0", 0, fat.b)
	fakeBlock(t, sys, "8:2", "pci0000:00/0000:00:05.0/block/sda/sda2", "sda2", 2, make([]byte, 1<<20))

	b, err := backingDevice(sys, "/x", 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Path != "/dev/sda1" || b.Disk != "sda" || b.Partition != 1 || b.DevNum != "8:1" || b.FS.Type != "vfat" || b.FS.UUID != "1234-ABCD" {
		t.Errorf("partition: got %+v fs %+v", b, b.FS)
	}
	b, err = backingDevice(sys, "/x", 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Path != "/dev/loop0" || b.Disk != "loop0" || b.Partition != 0 {
		t.Errorf("whole device: got %+v", b)
	}
	if _, err := backingDevice(sys, "/x", 0, 33); !errors.Is(err, ErrNoBlockDevice) {
		t.Errorf("anonymous device (tmpfs, btrfs): %v, want ErrNoBlockDevice", err)
	}
	if _, err := backingDevice(sys, "/x", 9, 9); !errors.Is(err, ErrNoBlockDevice) {
		t.Errorf("device unknown to sysfs: %v, want ErrNoBlockDevice", err)
	}
	if _, err := backingDevice(sys, "/x", 8, 2); err == nil {
		t.Error("a device without a filesystem signature was accepted")
	}
}

// TestBackingDeviceOfMount finds the UUID of a real ext4 mounted from a
// loop device, through a file deep inside it.
func TestBackingDeviceOfMount(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("mounts a loop device: needs root and MININT_E2E=1")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	const uuid = "0b9e6e49-5b7a-4c43-9b7f-3f5d2d9a1c01"
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-U", uuid, img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	m, err := Mount(img, filepath.Join(dir, "mnt"), MountOptions{FSType: "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := filepath.Join(dir, "mnt", "minint")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := BackingDeviceOf("", sub)
	if err != nil {
		t.Fatal(err)
	}
	if b.FS.UUID != uuid || b.FS.Type != "ext4" || b.Path != m.Source || b.Partition != 0 {
		t.Errorf("got %+v fs %+v, want %s on %s", b, b.FS, uuid, m.Source)
	}
	if _, err := BackingDeviceOf("", "/proc/self"); !errors.Is(err, ErrNoBlockDevice) {
		t.Errorf("/proc: %v, want ErrNoBlockDevice", err)
	}
}
