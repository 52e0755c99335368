package diskops

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Target is a disk opened for a destructive operation: a block device or,
// for developers and tests, a regular image file.
type Target struct {
	Path       string
	File       *os.File
	Size       int64
	SectorSize int
	// Disk is the discovered device, nil for an image file.
	Disk *Disk
}

// IsBlock reports whether the target is a block device.
func (t *Target) IsBlock() bool { return t.Disk != nil }

// Close closes the target.
func (t *Target) Close() error { return t.File.Close() }

// TargetOptions tunes OpenTarget.
type TargetOptions struct {
	// SysRoot is where /sys, /proc and /dev are (tests); empty means "/".
	SysRoot string
	// ReadOnly opens the target without write access (dry runs).
	ReadOnly bool
	// BootDevices and MediaLabel identify the boot medium as for
	// Discover; it is refused like any disk in use.
	BootDevices []string
	MediaLabel  string
}

// OpenTarget opens path for writing after checking that doing so is safe:
// it must be a whole disk (not a partition), writable, not the boot medium,
// not mounted, not swap and not held by another device. Block devices are
// opened O_EXCL so that the kernel itself refuses if something has claimed
// the device since.
func OpenTarget(ctx context.Context, path string, o TargetOptions) (*Target, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoDevice)
		}
		return nil, err
	}
	flags := os.O_RDWR
	if o.ReadOnly {
		flags = os.O_RDONLY
	}
	if fi.Mode().IsRegular() {
		f, err := os.OpenFile(path, flags, 0)
		if err != nil {
			return nil, err
		}
		return &Target{Path: path, File: f, Size: fi.Size(), SectorSize: 512}, nil
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return nil, fmt.Errorf("%s: not a block device or image file", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	devnum := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	root := o.SysRoot
	if root == "" {
		root = "/"
	}
	if _, err := os.Stat(filepath.Join(root, "sys/dev/block", devnum, "partition")); err == nil {
		return nil, fmt.Errorf("%s is a partition; give the whole disk", path)
	}
	disks, err := Discover(ctx, DiscoverOptions{Root: o.SysRoot, NoProbe: o.MediaLabel == "", BootDevices: o.BootDevices, MediaLabel: o.MediaLabel})
	if err != nil {
		return nil, err
	}
	var d *Disk
	for _, x := range disks {
		if x.DevNum == devnum {
			d = x
		}
	}
	if d == nil {
		return nil, fmt.Errorf("%s (%s): %w among the disks in sysfs", path, devnum, ErrNoDevice)
	}
	if err := checkWritable(d); err != nil {
		return nil, err
	}
	if !o.ReadOnly {
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if os.IsExist(err) || strings.Contains(err.Error(), "busy") {
			return nil, fmt.Errorf("%s: %w: the kernel reports it busy (%v)", path, ErrInUse, err)
		}
		return nil, err
	}
	t := &Target{Path: path, File: f, Disk: d, Size: d.Size, SectorSize: d.LogicalSectorSize}
	if sz, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && sz > 0 {
		t.SectorSize = sz
	}
	var size uint64
	if err := ioctlPtr(f, unix.BLKGETSIZE64, &size); err == nil && size > 0 {
		t.Size = int64(size)
	}
	return t, nil
}

// checkWritable returns an error naming the device and the reason when d
// must not be written to.
func checkWritable(d *Disk) error {
	if d.ReadOnly {
		return fmt.Errorf("%s: %w", d.Path, ErrReadOnly)
	}
	if d.Kind == "rom" {
		return fmt.Errorf("%s: %w: it is a CD/DVD drive", d.Path, ErrReadOnly)
	}
	if why := d.InUse(); why != "" {
		return fmt.Errorf("%s: %w: %s", d.Path, ErrInUse, why)
	}
	return nil
}

// rereadPartitions asks the kernel to re-read t's partition table
// (BLKRRPART). It retries for a while on EBUSY, which the kernel returns
// while udev or a prober still has a partition open.
func rereadPartitions(ctx context.Context, t *Target) error {
	if !t.IsBlock() {
		return nil
	}
	var err error
	for i := 0; i < 20; i++ {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, t.File.Fd(), unix.BLKRRPART, 0)
		if e == 0 {
			return nil
		}
		err = e
		if e != unix.EBUSY {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: re-reading the partition table: %w", t.Path, err)
}

// PartitionNode is the kernel's name for partition n of disk: sda1,
// nvme0n1p1, mmcblk0p1, loop0p1.
func PartitionNode(disk string, n int) string {
	base := strings.TrimPrefix(disk, "/dev/")
	if base != "" && base[len(base)-1] >= '0' && base[len(base)-1] <= '9' {
		return fmt.Sprintf("/dev/%sp%d", base, n)
	}
	return fmt.Sprintf("/dev/%s%d", base, n)
}

// waitPartitionNodes waits until the kernel has created /dev nodes for
// partitions 1..n of disk (devtmpfs creates them; there is no udev in the
// PE) and returns them. It fails with ErrNoPartitionNodes after timeout.
func waitPartitionNodes(ctx context.Context, disk string, n int, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = PartitionNode(disk, i+1)
	}
	for {
		missing := ""
		for _, p := range nodes {
			if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeDevice == 0 {
				missing = p
				break
			}
		}
		if missing == "" {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %w after %v (%s missing); a loop device needs partition scanning (losetup -P), and a kernel without partition-table support cannot show them", disk, ErrNoPartitionNodes, timeout, missing)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randomUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// zeroRange writes zeros over [off, off+n) of f, clipped to size.
func zeroRange(f *os.File, off, n, size int64) error {
	if off < 0 {
		n += off
		off = 0
	}
	if off+n > size {
		n = size - off
	}
	if n <= 0 {
		return nil
	}
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		w := min(n, int64(len(buf)))
		if _, err := f.WriteAt(buf[:w], off); err != nil {
			return err
		}
		off += w
		n -= w
	}
	return nil
}
