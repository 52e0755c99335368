package pe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/wim"
	"golang.org/x/sys/unix"
)

// SystemBackend is the real Backend: disks through diskops and bootloader, images
// through wim, power through reboot(2).
type SystemBackend struct {
	// Discover is passed to diskops.Discover (boot devices, media label),
	// so that the boot medium is never a candidate.
	Discover diskops.DiscoverOptions
	// UseMkfs formats with mkfs.* programs instead of diskops' own writers.
	UseMkfs bool
	// Log receives warnings (nil: none).
	Log func(format string, a ...any)

	mu   sync.Mutex
	disk string // the selected disk, for offset mounts of image files
}

func (b *SystemBackend) SelectDisk(ctx context.Context, rule diskops.Rule) (TargetDisk, error) {
	disks, err := diskops.Discover(ctx, b.Discover)
	if err != nil {
		return TargetDisk{}, err
	}
	d, err := diskops.Select(disks, rule)
	if err != nil {
		return TargetDisk{}, err
	}
	b.mu.Lock()
	b.disk = d.Path
	b.mu.Unlock()
	return TargetDisk{Path: d.Path, Size: d.Size, Desc: diskops.Describe(d)}, nil
}

func (b *SystemBackend) Existing(ctx context.Context, td TargetDisk, l *diskops.Layout) ([]Part, bool) {
	// Read the table straight from the device (or image file): what
	// matters is what is on the disk now.
	f, err := os.Open(td.Path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, false
	}
	fi, _ := f.Stat()
	block := fi.Mode()&os.ModeDevice != 0
	tbl, err := diskops.ReadTable(f, size, 0)
	if err != nil || tbl == nil || tbl.Type != l.Table || len(tbl.Partitions) != len(l.Partitions) {
		return nil, false
	}
	var parts []Part
	for i, pi := range tbl.Partitions {
		spec := l.Partitions[i]
		if l.Table == "gpt" && pi.Name != spec.Name {
			return nil, false
		}
		p := Part{Planned: diskops.Planned{PartitionSpec: spec, Number: pi.Number, Start: pi.Start, Size: pi.Size, TypeID: pi.Type}}
		if n := diskops.PartitionNode(td.Path, pi.Number); block {
			if _, err := os.Stat(n); err == nil {
				p.Node = n
			}
		}
		fs := pi.FS
		if fs == nil {
			fs = diskops.ProbeFilesystem(f, pi.Start, pi.Size)
		}
		if fs != nil {
			p.FSUUID = fs.UUID
			p.Hibernated = fs.Type == diskops.Hibernated
		}
		parts = append(parts, p)
	}
	return parts, true
}

func (b *SystemBackend) Partition(ctx context.Context, td TargetDisk, l *diskops.Layout) ([]Part, error) {
	t, err := diskops.OpenTarget(ctx, td.Path, diskops.TargetOptions{SysRoot: b.Discover.Root, BootDevices: b.Discover.BootDevices, MediaLabel: b.Discover.MediaLabel})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	res, err := diskops.Partition(ctx, t, l, diskops.PartitionOptions{})
	if err != nil && !diskops.IsNoNodes(err) {
		return nil, err
	}
	var parts []Part
	for i, p := range res.Partitions {
		part := Part{Planned: p}
		if i < len(res.Nodes) {
			part.Node = res.Nodes[i]
		}
		parts = append(parts, part)
	}
	return parts, nil
}

func (b *SystemBackend) Format(ctx context.Context, td TargetDisk, parts []Part, only []string) ([]Part, error) {
	t, err := diskops.OpenTarget(ctx, td.Path, diskops.TargetOptions{SysRoot: b.Discover.Root, BootDevices: b.Discover.BootDevices, MediaLabel: b.Discover.MediaLabel})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if t.IsBlock() && allNodes(parts) {
		// OpenTarget holds the whole disk O_EXCL, and then the kernel
		// refuses the O_EXCL open of each partition node that formatting
		// does (EBUSY). The checks are done: release the disk; formatting
		// through the nodes does not use the disk's file.
		t.Close()
	}
	want := func(name string) bool {
		if len(only) == 0 {
			return true
		}
		for _, o := range only {
			if o == name {
				return true
			}
		}
		return false
	}
	res := &diskops.PartitionResult{}
	var idx []int
	for i, p := range parts {
		if p.FS == "" || !want(p.Name) {
			continue
		}
		res.Partitions = append(res.Partitions, p.Planned)
		idx = append(idx, i)
	}
	// Nodes are either all known or none (image files): diskops pairs
	// them with partitions by position.
	for _, i := range idx {
		if parts[i].Node == "" {
			res.Nodes = nil
			break
		}
		res.Nodes = append(res.Nodes, parts[i].Node)
	}
	fss, err := diskops.FormatPartitions(ctx, t, res, b.UseMkfs, nil)
	if err != nil {
		return nil, err
	}
	out := append([]Part(nil), parts...)
	for k, i := range idx {
		if k < len(fss) && fss[k] != nil {
			out[i].FSUUID = fss[k].UUID
		}
	}
	return out, nil
}

func (b *SystemBackend) logf(format string, a ...any) {
	if b.Log != nil {
		b.Log(format, a...)
	}
}

func allNodes(parts []Part) bool {
	for _, p := range parts {
		if p.Node == "" {
			return false
		}
	}
	return len(parts) > 0
}

func (b *SystemBackend) Look(ctx context.Context, td TargetDisk, p Part, f func(root string) error) error {
	dev, err := os.Open(td.Path)
	if err != nil {
		return err
	}
	fs := diskops.ProbeFilesystem(dev, p.Start, p.Size)
	dev.Close()
	if fs == nil {
		return fmt.Errorf("%s partition %d: no file system", td.Path, p.Number)
	}
	dir, err := os.MkdirTemp("", "minint-look-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	// Read-only, but with the file system's own recovery (no noload, as
	// a capture mounts): after a power cut the journal the PE wrote and
	// synced may still be only in ext4's log, and a look without replaying
	// it would not see it, and the run would start over instead of
	// resuming. Recovery is what any mount, the system's own included,
	// does first; it changes no file.
	c := capture.Candidate{DiskPath: td.Path, Partition: p.Number, Device: p.Node, Offset: p.Start, Size: p.Size, FS: *fs}
	m, err := c.Mount(dir, diskops.MountOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer m.Close()
	return f(dir)
}

func (b *SystemBackend) Mount(ctx context.Context, p Part, dir string) (func() error, error) {
	o := diskops.MountOptions{FSType: p.FS}
	src := p.Node
	if src == "" {
		b.mu.Lock()
		src = b.disk
		b.mu.Unlock()
		o.Offset, o.Size = p.Start, p.Size
	}
	if o.FSType == "fat32" {
		o.FSType = "vfat"
	}
	m, err := diskops.Mount(src, dir, o)
	if err != nil {
		return nil, err
	}
	return m.Close, nil
}

func (b *SystemBackend) Clean(ctx context.Context, root string) error {
	keep := strings.TrimPrefix(answer.Dir, "/")
	// diskops names its manifest by the second and refuses to overwrite
	// one: a redo within the same second needs the next free name.
	now := time.Now().UTC()
	for i := 0; i < 100; i++ {
		name := "clean-manifest-" + now.Format("20060102T150405Z") + ".jsonl"
		if _, err := os.Lstat(filepath.Join(root, keep, name)); os.IsNotExist(err) {
			break
		}
		now = now.Add(time.Second)
	}
	_, err := diskops.CleanAllBut(ctx, root, diskops.CleanOptions{Keep: keep, Now: func() time.Time { return now }})
	return err
}

func (b *SystemBackend) Apply(ctx context.Context, req ApplyRequest) error {
	w, err := wim.NewReader(req.Image, req.Size)
	if err != nil {
		return err
	}
	return w.Apply(ctx, req.Index, req.Dir, wim.ApplyOptions{Progress: req.Progress, Checksums: req.Checksums, InsecureSkipHashCheck: req.BenchNoHash})
}

// BootFiles installs the loaders the way package bootloader lays them
// out: kernel, initrd and loader configuration on the FAT boot partition (the ESP),
// systemd-boot for UEFI and syslinux for BIOS ("both" writes both, for
// a disk that must boot under either firmware); under Secure Boot (and
// with loader shim) the image's own signed shim and GRUB, refusing before
// anything is written when the image lacks them. The returned entries are
// the loader files on that partition, found by its FAT serial, which
// minint-setup edits to drop init= after the first boot.
func (b *SystemBackend) BootFiles(ctx context.Context, req BootRequest) ([]answer.BootEntry, error) {
	var esp *Part
	for i := range req.Parts {
		if p := &req.Parts[i]; p.Type == "esp" || (esp == nil && (p.FS == "vfat" || p.FS == "fat32")) {
			esp = p
		}
	}
	if esp == nil || (esp.FS != "vfat" && esp.FS != "fat32") {
		return nil, errors.New("boot files need a FAT boot partition in the layout (type: esp, fs: vfat), used by both UEFI and BIOS loaders")
	}
	if req.RootPart.FSUUID == "" {
		return nil, errors.New("the root file system's UUID is unknown (was it formatted?)")
	}
	uefi, bios, shim := false, false, false
	switch req.Loader {
	case "shim":
		uefi, shim = true, true
	case "systemd-boot":
		uefi = true
	case "syslinux":
		bios = true
	case "both":
		uefi, bios = true, true
	default:
		uefi, bios = req.Firmware == "uefi", req.Firmware != "uefi"
		shim = uefi && req.SecureBoot
	}
	if req.SecureBoot && !shim {
		return nil, fmt.Errorf("%w: loader %s is not signed and the firmware enforces Secure Boot; use loader: shim (or auto) with an image that carries shim-signed and grub-efi-amd64-signed", bootloader.ErrNoSignedChain, req.Loader)
	}
	if shim {
		// Refuse before anything on the disk changes.
		if _, err := bootloader.FindSignedChain(req.Root); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "minint-esp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	un, err := b.Mount(ctx, *esp, dir)
	if err != nil {
		return nil, fmt.Errorf("mounting the boot partition: %w", err)
	}
	mounted := true
	defer func() {
		if mounted {
			un()
		}
	}()
	opts := bootloader.BootOptions{Root: req.Root, RootUUID: req.RootPart.FSUUID, Cmdline: req.Cmdline}
	entry := func(p string) answer.BootEntry {
		return answer.BootEntry{Path: p, FSUUID: esp.FSUUID, FSType: "vfat", Device: esp.Node}
	}
	var entries []answer.BootEntry
	if shim {
		var u bootloader.UEFIOptions
		if err := b.efiBootEntry(ctx, req, esp, &u); err != nil {
			return nil, err
		}
		o := bootloader.ShimOptions{BootOptions: opts, ESP: dir, EFIVars: u.EFIVars, ESPPartition: u.ESPPartition, SectorSize: u.SectorSize}
		_, err := bootloader.InstallShim(ctx, o)
		if err != nil && o.EFIVars != nil && !errors.Is(err, bootloader.ErrNoSignedChain) {
			b.logf("warning: %v; relying on \\EFI\\BOOT\\BOOTX64.EFI", err)
			o.EFIVars = nil
			_, err = bootloader.InstallShim(ctx, o)
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry(bootloader.ShimGrubConfig))
	} else if uefi {
		o := bootloader.UEFIOptions{BootOptions: opts, ESP: dir}
		if err := b.efiBootEntry(ctx, req, esp, &o); err != nil {
			return nil, err
		}
		_, err := bootloader.InstallUEFI(ctx, o)
		if err != nil && o.EFIVars != nil {
			// The loader is also at the removable-media path, which
			// firmware without an entry boots: an NVRAM that refuses
			// the entry is worth a warning, not a failed deployment.
			b.logf("warning: %v; relying on \\EFI\\BOOT\\BOOTX64.EFI", err)
			o.EFIVars = nil
			_, err = bootloader.InstallUEFI(ctx, o)
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry("/loader/entries/minint.conf"))
	}
	if bios {
		if _, err := bootloader.WriteBIOSConfig(ctx, bootloader.BIOSOptions{BootOptions: opts, BootDir: dir}); err != nil {
			return nil, err
		}
		entries = append(entries, entry("/syslinux/syslinux.cfg"))
	}
	unix.Sync()
	mounted = false
	if err := un(); err != nil {
		return nil, err
	}
	if bios {
		// syslinux writes the partition's boot sector: not while mounted.
		if _, err := bootloader.InstallSyslinux(ctx, bootloader.SyslinuxOptions{Disk: req.Disk.Path, Partition: esp.Number,
			BackupDir: filepath.Join(req.Root, strings.TrimPrefix(answer.Dir, "/"), "bootfiles-backup")}); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// efiBootEntry asks for a firmware boot entry when the PE runs under UEFI
// with efivarfs: without one the firmware still finds the loader at the
// removable-media path, but may prefer the PE's medium.
func (b *SystemBackend) efiBootEntry(ctx context.Context, req BootRequest, esp *Part, o *bootloader.UEFIOptions) error {
	if req.Firmware != "uefi" {
		return nil
	}
	if ents, err := os.ReadDir(bootloader.DefaultEFIVars); err != nil || len(ents) == 0 {
		return nil // efivarfs not mounted (or its module missing)
	}
	f, err := os.Open(req.Disk.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	tbl, err := diskops.ReadTable(f, size, 0)
	if err != nil || tbl == nil || tbl.Type != "gpt" {
		return nil // firmware entries point at GPT partitions only
	}
	for _, p := range tbl.Partitions {
		if p.Number == esp.Number {
			o.EFIVars = &bootloader.EFIVars{Dir: bootloader.DefaultEFIVars}
			o.ESPPartition, o.SectorSize = p, tbl.SectorSize
		}
	}
	return nil
}

func (b *SystemBackend) Power(ctx context.Context, kind string) error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	if kind == "poweroff" {
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	return unix.Reboot(cmd)
}
