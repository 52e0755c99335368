// Command peguest is /init of a test PE (built by TestDeployInGuest): it
// runs diskops and bootloader the way the PE does on a real machine, with the kernel's
// partition nodes and vfat, and deploys a tiny system to the virtio disk
// vda. Then it checks internal/durable on vfat and ext4 on the scratch disk
// vdb and cuts the power (no sync) right after its last commit, so that
// the host can check that what was committed survived and what was not
// synced did not.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"golang.org/x/sys/unix"
)

func main() {
	err := run()
	unix.Sync()
	if err == nil {
		err = durableCheck()
	}
	if err != nil {
		fmt.Printf("PEGUEST: FAILED: %v\n", err)
	}
	// A power cut, deliberately without unix.Sync: vda's file systems are
	// unmounted and synced; on vdb only what durable synced is on disk.
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	for _, m := range []struct{ src, dst, typ string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	list, _ := os.ReadFile("/modules.list")
	for _, ko := range strings.Fields(string(list)) {
		f, err := os.Open(ko)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("loading %s: %w", ko, err)
		}
	}
	ctx := context.Background()
	d, err := waitDisk(ctx, "vda")
	if err != nil {
		return err
	}
	fmt.Printf("PEGUEST: selected %s\n", diskops.Describe(d))
	res, fss, err := partition(ctx, d.Path, "partitions:\n  - {name: esp, size: 64M, type: esp, fs: vfat, label: ESP}\n  - {name: root, size: rest, type: linux, fs: ext4, label: root}\n")
	if err != nil {
		return err
	}
	fmt.Printf("PEGUEST: partition nodes %v\n", res.Nodes)
	root, err := diskops.Mount(res.Nodes[1], "/mnt/root", diskops.MountOptions{})
	if err != nil {
		return err
	}
	defer root.Close()
	if err := copyTree("/payload/boot", "/mnt/root/boot"); err != nil {
		return err
	}
	os.MkdirAll("/mnt/root/minint", 0o755)
	esp, err := diskops.Mount(res.Nodes[0], "/mnt/esp", diskops.MountOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("PEGUEST: mounted %s as %s and %s as %s\n", res.Nodes[1], root.FSType, res.Nodes[0], esp.FSType)
	payload, err := bootloader.LoadSyslinuxPayload("/payload/syslinux")
	if err != nil {
		return err
	}
	bo := bootloader.BootOptions{Root: "/mnt/root", RootUUID: fss[1].UUID, Cmdline: "console=ttyS0 minint.fw=deployed"}
	if _, err := bootloader.InstallUEFI(ctx, bootloader.UEFIOptions{BootOptions: bo, ESP: "/mnt/esp"}); err != nil {
		return err
	}
	if _, err := bootloader.WriteBIOSConfig(ctx, bootloader.BIOSOptions{BootOptions: bo, BootDir: "/mnt/esp", Payload: payload}); err != nil {
		return err
	}
	if err := esp.Close(); err != nil {
		return err
	}
	if _, err := bootloader.InstallSyslinux(ctx, bootloader.SyslinuxOptions{Disk: d.Path, Partition: 1, Payload: payload, BackupDir: "/mnt/root/minint/bootfiles-backup"}); err != nil {
		return err
	}
	if err := root.Close(); err != nil {
		return err
	}
	fmt.Printf("PEGUEST: DEPLOYED root=UUID=%s\n", fss[1].UUID)
	return nil
}

// waitDisk finds the virtio disk name, which appears asynchronously.
func waitDisk(ctx context.Context, name string) (*diskops.Disk, error) {
	var err error
	for i := 0; i < 50; i++ {
		var disks []*diskops.Disk
		if disks, err = diskops.Discover(ctx, diskops.DiscoverOptions{}); err == nil {
			var d *diskops.Disk
			if d, err = diskops.Select(disks, diskops.Rule{Name: name, Transport: "virtio"}); err == nil {
				return d, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// partition partitions and formats the disk at path as layout says.
func partition(ctx context.Context, path, layout string) (*diskops.PartitionResult, []*diskops.Filesystem, error) {
	t, err := diskops.OpenTarget(ctx, path, diskops.TargetOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer t.Close()
	l, err := diskops.ParseLayout([]byte(layout))
	if err != nil {
		return nil, nil, err
	}
	res, err := diskops.Partition(ctx, t, l, diskops.PartitionOptions{})
	if err != nil {
		return nil, nil, err
	}
	fss, err := diskops.FormatPartitions(ctx, t, res, false, nil)
	return res, fss, err
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		o, err := os.Create(out)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}
