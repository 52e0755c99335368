package stage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/durable"
	"golang.org/x/sys/unix"
)

// syslinuxBoot is the FAT partition a BIOS machine's syslinux boots from
// (minint's own boot files: /syslinux/syslinux.cfg and ldlinux.sys on
// the boot partition, which the running system does not mount).
type syslinuxBoot struct {
	disk *diskops.Disk
	part diskops.PartitionInfo
}

func (b *syslinuxBoot) String() string { return describePart(b.disk, b.part) }

// hasSyslinux says whether dir is the root of a syslinux boot partition.
func hasSyslinux(dir string) bool {
	for _, f := range []string{"syslinux/syslinux.cfg", "syslinux/ldlinux.sys"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// locateSyslinux finds the one FAT partition with syslinux on the disk
// holding Root, looking inside each by mounting it read-only for a
// moment. One that is mounted is refused: syslinux's boot-once record is
// written to the partition's sectors directly, which must not happen
// under a mounted filesystem.
func (o *Options) locateSyslinux(disk string, need int64) error {
	if disk == "" {
		return fmt.Errorf("BIOS boot: the root filesystem is not on a partitioned disk, so there is no syslinux boot partition to find")
	}
	disks, err := diskops.Discover(context.Background(), diskops.DiscoverOptions{Root: o.SysRoot})
	if err != nil {
		return fmt.Errorf("BIOS boot: %w", err)
	}
	var d *diskops.Disk
	for _, x := range disks {
		if x.Name == disk {
			d = x
		}
	}
	if d == nil {
		return fmt.Errorf("BIOS boot: disk %s of the root filesystem not found", disk)
	}
	var found []syslinuxBoot
	var looked, mounted []string
	for _, p := range d.Partitions() {
		if p.FS == nil || p.FS.Type != "vfat" || p.Device == "" {
			continue
		}
		looked = append(looked, describePart(d, p))
		if mps := diskops.MountPoints(o.SysRoot, p.Device); len(mps) > 0 {
			if hasSyslinux(filepath.Join(o.SysRoot, mps[0])) {
				mounted = append(mounted, fmt.Sprintf("%s is mounted on %s", describePart(d, p), strings.Join(mps, ", ")))
				found = append(found, syslinuxBoot{d, p})
			}
			continue
		}
		dir, done, err := mountTemp(filepath.Join(o.SysRoot, p.Device), true)
		if err != nil {
			o.logf("looking for syslinux on %s: %v", p.Device, err)
			continue
		}
		ok, free := hasSyslinux(dir), freeBytes(dir)
		done()
		if ok {
			if free >= 0 && free < need {
				return fmt.Errorf("syslinux boot partition %s: %s free, the PE needs %s", describePart(d, p), human(free), human(need))
			}
			found = append(found, syslinuxBoot{d, p})
		}
	}
	switch {
	case len(found) == 0 && len(looked) == 0:
		return fmt.Errorf("BIOS boot: no FAT partition on %s; stage supports BIOS systems booted by syslinux from a FAT boot partition", d.Path)
	case len(found) == 0:
		return fmt.Errorf("BIOS boot: no syslinux (syslinux/syslinux.cfg and syslinux/ldlinux.sys) on the FAT partitions of %s: %s", d.Path, strings.Join(looked, ", "))
	case len(found) > 1:
		var c []string
		for _, b := range found {
			c = append(c, b.String())
		}
		return fmt.Errorf("BIOS boot: %d FAT partitions with syslinux on %s: %s; which one the machine boots is not clear", len(found), d.Path, strings.Join(c, ", "))
	case len(mounted) > 0:
		return fmt.Errorf("BIOS boot: syslinux boot partition %s: unmount it first (stage writes syslinux's boot-once record to the partition's sectors)", mounted[0])
	}
	o.syslinux = &found[0]
	return nil
}

// withPELabel returns cfg with stage's label (replacing one an earlier
// stage added) appended; the DEFAULT stays, so only the armed boot-once
// starts the PE.
func withPELabel(cfg []byte, cmdline string) []byte {
	var out []string
	lines := strings.Split(strings.TrimRight(string(cfg), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		f := strings.Fields(lines[i])
		if len(f) == 2 && strings.EqualFold(f[0], "LABEL") && f[1] == bootloader.PELabel {
			// Our block: the label and its indented lines.
			for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
				i++
			}
			continue
		}
		out = append(out, lines[i])
	}
	for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
		out = out[:len(out)-1]
	}
	out = append(out, "", "LABEL "+bootloader.PELabel, "  MENU LABEL minint PE (refresh)",
		"  LINUX /"+bootloader.PEDir+"/vmlinuz", "  INITRD /"+bootloader.PEDir+"/initramfs.img", "  APPEND "+cmdline)
	return []byte(strings.Join(out, "\n") + "\n")
}

// stageSyslinux puts the PE on the mounted syslinux boot partition at dir
// and adds its label; the old configuration goes to backup first.
func (o *Options) stageSyslinux(dir, backup string) error {
	cfgPath := filepath.Join(dir, "syslinux/syslinux.cfg")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	if err := copyFile(cfgPath, filepath.Join(backup, "boot/syslinux/syslinux.cfg")); err != nil {
		return fmt.Errorf("backing up boot configuration: %w", err)
	}
	o.logf("backed up %s into %s", cfgPath, backup)
	for _, f := range [][2]string{{o.Kernel, "vmlinuz"}, {o.Initramfs, "initramfs.img"}} {
		if err := copyFile(f[0], filepath.Join(dir, bootloader.PEDir, f[1])); err != nil {
			return err
		}
	}
	return durable.WriteFile(cfgPath, withPELabel(cfg, o.PECmdline()), 0o644)
}

// runSyslinux stages the PE on the BIOS boot partition and arms
// syslinux's boot-once, after the partition is unmounted again.
func (o *Options) runSyslinux(res *Result, backup string) error {
	b := o.syslinux
	dir, done, err := mountTemp(filepath.Join(o.SysRoot, b.part.Device), false)
	if err != nil {
		return fmt.Errorf("syslinux boot partition %s: %w", b, err)
	}
	o.logf("mounted the syslinux boot partition %s on %s", b.part.Device, dir)
	err = o.stageSyslinux(dir, backup)
	if uerr := done(); err == nil && uerr != nil {
		err = fmt.Errorf("unmounting the syslinux boot partition %s: %w", b.part.Device, uerr)
	}
	if err != nil {
		return err
	}
	disk := filepath.Join(o.SysRoot, b.disk.Path)
	// The whole disk's page cache may hold the partition's FAT and
	// directories from before the writes made through the partition:
	// drop it, so the boot-once record is placed from what is on disk.
	if f, err := os.Open(disk); err == nil {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeDevice != 0 {
			unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
		}
		f.Close()
	}
	if err := bootloader.SetSyslinuxOnce(disk, b.part.Start, bootloader.PELabel); err != nil {
		return fmt.Errorf("arming the one-shot boot: %w", err)
	}
	res.OneShot = bootloader.PELabel
	o.logf("armed syslinux's boot-once for %s on %s", bootloader.PELabel, b.disk.Path)
	return nil
}
