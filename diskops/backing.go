package diskops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// BackingDevice is the block device under a filesystem, as the kernel
// sees it.
type BackingDevice struct {
	// Path is the device node, e.g. /dev/vda2 (below the sysRoot given).
	Path   string `json:"path"`
	DevNum string `json:"devnum"` // "254:2"
	// Disk is the kernel name of the whole disk (vda); Partition its
	// number (2), or 0 when the filesystem covers the whole device.
	Disk      string      `json:"disk"`
	Partition int         `json:"partition,omitempty"`
	FS        *Filesystem `json:"fs"`
}

// ErrNoBlockDevice is wrapped when a path lives on a filesystem without a
// block device of its own (tmpfs, overlay, NFS, a btrfs subvolume's
// anonymous device): nothing there survives a reboot by UUID.
var ErrNoBlockDevice = errors.New("not on a block device")

// BackingDeviceOf finds the block device holding the filesystem that
// contains path and probes its superblock (no blkid). It goes by the
// device number stat reports for path, which stays right when mountinfo
// names the source /dev/root or a path that no longer exists. sysRoot
// ("" for "/") is prepended to /sys and /dev.
func BackingDeviceOf(sysRoot, path string) (*BackingDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return backingDevice(sysRoot, path, unix.Major(st.Dev), unix.Minor(st.Dev))
}

func backingDevice(sysRoot, path string, major, minor uint32) (*BackingDevice, error) {
	root := sysRoot
	if root == "" {
		root = "/"
	}
	devnum := fmt.Sprintf("%d:%d", major, minor)
	if major == 0 {
		return nil, fmt.Errorf("%s: filesystem with device %s: %w", path, devnum, ErrNoBlockDevice)
	}
	sys, err := filepath.EvalSymlinks(filepath.Join(root, "sys/dev/block", devnum))
	if err != nil {
		return nil, fmt.Errorf("%s: device %s: %w (%v)", path, devnum, ErrNoBlockDevice, err)
	}
	b := &BackingDevice{DevNum: devnum}
	name := filepath.Base(sys)
	if dev := ueventValue(filepath.Join(sys, "uevent"), "DEVNAME"); dev != "" {
		name = dev
	}
	b.Disk = filepath.Base(sys)
	if n, err := readInt(filepath.Join(sys, "partition")); err == nil {
		b.Partition = int(n)
		b.Disk = filepath.Base(filepath.Dir(sys))
	}
	if strings.HasPrefix(b.Disk, "dm-") || strings.HasPrefix(b.Disk, "md") {
		// Stacked devices have no partition table of their own to search
		// (ESP, boot partition); the filesystem UUID still works.
		b.Disk = ""
	}
	b.Path = filepath.Join("/dev", name)
	f, err := os.Open(filepath.Join(root, b.Path))
	if err != nil {
		return nil, fmt.Errorf("%s: device %s: %w", path, devnum, err)
	}
	defer f.Close()
	if b.FS = ProbeFilesystem(f, 0, 0); b.FS == nil {
		return nil, fmt.Errorf("%s: no filesystem signature on %s", path, b.Path)
	}
	return b, nil
}

func ueventValue(file, key string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// PartitionsOfType lists the partitions of disk (a kernel name such as
// vda) whose type has the short name typ ("esp", "fat32", "linux"), read
// from the disk itself with sysfs below sysRoot for the device nodes.
func PartitionsOfType(ctx context.Context, sysRoot, disk, typ string) (*Disk, []PartitionInfo, error) {
	disks, err := Discover(ctx, DiscoverOptions{Root: sysRoot})
	if err != nil {
		return nil, nil, err
	}
	for _, d := range disks {
		if d.Name != disk {
			continue
		}
		if d.Table == nil {
			if d.ProbeError != "" {
				return d, nil, fmt.Errorf("%s: %s", d.Path, d.ProbeError)
			}
			return d, nil, fmt.Errorf("%s: no partition table", d.Path)
		}
		var out []PartitionInfo
		for _, p := range d.Table.Partitions {
			if p.TypeName == typ {
				out = append(out, p)
			}
		}
		return d, out, nil
	}
	return nil, nil, fmt.Errorf("disk %s: %w", disk, ErrNoDevice)
}

// MountPoints lists where device (a /dev path) is mounted, from
// sysRoot's /proc/self/mountinfo, matching by device number so that
// /dev/root and symlinked names count too.
func MountPoints(sysRoot, device string) []string {
	root := sysRoot
	if root == "" {
		root = "/"
	}
	devnum := ""
	var st unix.Stat_t
	if unix.Stat(filepath.Join(root, device), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
		devnum = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	var out []string
	for _, m := range readMounts(root) {
		if m.source == device || (devnum != "" && m.devnum == devnum) {
			out = append(out, m.target)
		}
	}
	return out
}
