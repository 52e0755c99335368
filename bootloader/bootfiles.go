package bootloader

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/minint/minint/internal/child"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/durable"
)

// BootOptions are shared by the UEFI and BIOS installers.
type BootOptions struct {
	// Root is the mounted, applied root filesystem; its /boot holds the
	// kernel and initrd.
	Root string
	// RootUUID is the root filesystem's UUID, for root=UUID=… .
	RootUUID string
	// Cmdline is appended to "root=UUID=<uuid> rw".
	Cmdline string
	// Title is shown in boot menus (default "minint deployed system").
	Title string
	// EntryID names the loader entry (default "minint").
	EntryID string
	// BackupDir receives every boot file this replaces, under a
	// timestamped directory (usually <root>/minint/bootfiles-backup).
	// Empty means <Root>/minint/bootfiles-backup.
	BackupDir string
	// Extra entries (e.g. the PE, for a later one-shot boot) are copied to
	// the ESP and listed in both loaders' menus after the default one.
	Extra []ExtraEntry
	Now   func() time.Time
}

// ExtraEntry is an additional kernel to boot from the ESP.
type ExtraEntry struct {
	// ID names the entry: loader/entries/<ID>.conf for systemd-boot (the
	// one-shot name is "<ID>.conf"), LABEL <ID> for syslinux; the files go
	// to /<ID>/ on the ESP.
	ID, Title string
	// Kernel and Initrd are paths on the running system.
	Kernel, Initrd string
	// Options is the full kernel command line.
	Options string
}

// copyExtras copies the extra entries' files and returns them with the
// ESP-side paths filled in.
func (in *installer) copyExtras(esp string, extras []ExtraEntry) ([]loaderEntry, error) {
	var out []loaderEntry
	for _, x := range extras {
		if x.ID == "" || strings.ContainsAny(x.ID, "/\\ ") {
			return nil, fmt.Errorf("boot files: extra entry id %q must be a plain name", x.ID)
		}
		e := loaderEntry{ID: x.ID, Title: x.Title, Linux: "/" + x.ID + "/vmlinuz", Options: x.Options}
		if e.Title == "" {
			e.Title = x.ID
		}
		if err := in.copy(esp, x.ID+"/vmlinuz", x.Kernel); err != nil {
			return nil, fmt.Errorf("boot files: entry %s: %w", x.ID, err)
		}
		if x.Initrd != "" {
			e.Initrd = "/" + x.ID + "/initrd.img"
			if err := in.copy(esp, x.ID+"/initrd.img", x.Initrd); err != nil {
				return nil, fmt.Errorf("boot files: entry %s: %w", x.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (o *BootOptions) defaults() error {
	if o.Root == "" {
		return fmt.Errorf("boot files: no root given")
	}
	if o.RootUUID == "" {
		return fmt.Errorf("boot files: no root filesystem UUID given")
	}
	// The UUID goes into loader entries verbatim: only the canonical form.
	if !uuidRE.MatchString(o.RootUUID) {
		return fmt.Errorf("boot files: root UUID %q: want the form 01234567-89ab-cdef-0123-456789abcdef", o.RootUUID)
	}
	if o.Title == "" {
		o.Title = "minint deployed system"
	}
	if o.EntryID == "" {
		o.EntryID = "minint"
	}
	if strings.ContainsAny(o.EntryID, "/\\ ") {
		return fmt.Errorf("boot files: entry id %q must be a plain name", o.EntryID)
	}
	if o.BackupDir == "" {
		o.BackupDir = filepath.Join(o.Root, "minint", "bootfiles-backup")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func (o *BootOptions) options() string {
	s := "root=UUID=" + o.RootUUID + " rw"
	if c := strings.TrimSpace(o.Cmdline); c != "" {
		s += " " + c
	}
	return s
}

// BootResult says what an installer wrote.
type BootResult struct {
	Kernel   *Kernel  `json:"kernel"`
	Written  []string `json:"written"`
	BackedUp []string `json:"backed-up,omitempty"`
	// BootNum is the firmware entry created (UEFI with efivarfs only).
	BootNum *uint16 `json:"boot-num,omitempty"`
}

// installer writes files, keeping a backup of each one it replaces with
// different content.
type installer struct {
	backup string // timestamped backup dir
	res    *BootResult
}

func (in *installer) write(base, rel string, data []byte, mode os.FileMode) error {
	dst := filepath.Join(base, rel)
	if old, err := os.ReadFile(dst); err == nil {
		if bytes.Equal(old, data) {
			in.res.Written = append(in.res.Written, dst)
			return nil
		}
		// Every file this writes lives on the boot partition.
		b := filepath.Join(in.backup, "esp", rel)
		if err := os.MkdirAll(filepath.Dir(b), 0o755); err != nil {
			return err
		}
		if err := durable.WriteFile(b, old, 0o644); err != nil {
			return fmt.Errorf("backing up %s: %w", dst, err)
		}
		in.res.BackedUp = append(in.res.BackedUp, b)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := durable.WriteFile(dst, data, mode); err != nil {
		return err
	}
	in.res.Written = append(in.res.Written, dst)
	return nil
}

func (in *installer) copy(base, rel, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return in.write(base, rel, data, 0o644)
}

// UEFIOptions configures InstallUEFI.
type UEFIOptions struct {
	BootOptions
	// ESP is the mounted EFI system partition.
	ESP string
	// SystemdBoot is systemd-bootx64.efi; empty searches the root's
	// /usr/lib/systemd/boot/efi, then the running system's.
	SystemdBoot string
	// Timeout is loader.conf's menu timeout in seconds (0: no menu).
	Timeout int
	// EFIVars, when set, also gets a firmware boot entry (Boot#### first in
	// BootOrder). ESPPartition and SectorSize describe the ESP for it.
	EFIVars      *EFIVars
	ESPPartition diskops.PartitionInfo
	SectorSize   int
}

// InstallUEFI makes root bootable under UEFI with systemd-boot: the newest
// kernel and its initrd are copied to <ESP>/<id>/<version>/, a loader entry
// <ESP>/loader/entries/<id>.conf points at them with root=UUID=… rw and
// the extra command line, loader.conf makes it the default, and the loader
// goes to \EFI\systemd\systemd-bootx64.efi and to the removable-media path
// \EFI\BOOT\BOOTX64.EFI, so firmware without a boot entry finds it too.
func InstallUEFI(ctx context.Context, o UEFIOptions) (*BootResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.ESP == "" {
		return nil, fmt.Errorf("boot files: no ESP given")
	}
	k, err := FindKernel(o.Root)
	if err != nil {
		return nil, err
	}
	if k.Initrd == "" {
		return nil, fmt.Errorf("%w: kernel %s has no initrd next to it", diskops.ErrNotFound, k.Path)
	}
	loader := o.SystemdBoot
	if loader == "" {
		for _, c := range []string{filepath.Join(o.Root, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"), "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"} {
			if _, err := os.Stat(c); err == nil {
				loader = c
				break
			}
		}
		if loader == "" {
			return nil, fmt.Errorf("%w: systemd-bootx64.efi neither in %s nor on this system (Debian package systemd-boot-efi)", diskops.ErrNotFound, o.Root)
		}
	}
	in := &installer{backup: filepath.Join(o.BackupDir, o.Now().UTC().Format("20060102T150405Z")), res: &BootResult{Kernel: k}}
	dir := o.EntryID + "/" + k.Version
	steps := []struct{ rel, src string }{
		{dir + "/vmlinuz", k.Path},
		{dir + "/initrd.img", k.Initrd},
		{"EFI/systemd/systemd-bootx64.efi", loader},
		{"EFI/BOOT/BOOTX64.EFI", loader},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := in.copy(o.ESP, s.rel, s.src); err != nil {
			return in.res, fmt.Errorf("boot files: %s: %w", s.rel, err)
		}
	}
	entry := loaderEntry{ID: o.EntryID, Title: o.Title, Version: k.Version, Linux: "/" + dir + "/vmlinuz", Initrd: "/" + dir + "/initrd.img", Options: o.options()}
	if err := in.write(o.ESP, "loader/entries/"+o.EntryID+".conf", entry.Bytes(), 0o644); err != nil {
		return in.res, err
	}
	extras, err := in.copyExtras(o.ESP, o.Extra)
	if err != nil {
		return in.res, err
	}
	for _, x := range extras {
		if err := in.write(o.ESP, "loader/entries/"+x.ID+".conf", x.Bytes(), 0o644); err != nil {
			return in.res, err
		}
	}
	conf := fmt.Sprintf("default %s.conf\ntimeout %d\neditor no\n", o.EntryID, o.Timeout)
	if err := in.write(o.ESP, "loader/loader.conf", []byte(conf), 0o644); err != nil {
		return in.res, err
	}
	if o.EFIVars != nil {
		n, err := o.EFIVars.AddBootEntry(EFIBootEntry{Description: o.Title, Partition: o.ESPPartition, SectorSize: o.SectorSize, Loader: `\EFI\systemd\systemd-bootx64.efi`}, true)
		if err != nil {
			return in.res, fmt.Errorf("firmware boot entry: %w", err)
		}
		in.res.BootNum = &n
	}
	return in.res, nil
}

// loaderEntry is a systemd-boot (Boot Loader Specification type 1) entry.
type loaderEntry struct {
	ID, Title, Version     string
	Linux, Initrd, Options string
}

// Bytes renders the entry file.
func (e loaderEntry) Bytes() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "title %s\n", e.Title)
	if e.Version != "" {
		fmt.Fprintf(&b, "version %s\n", e.Version)
	}
	fmt.Fprintf(&b, "linux %s\n", e.Linux)
	if e.Initrd != "" {
		fmt.Fprintf(&b, "initrd %s\n", e.Initrd)
	}
	if e.Options != "" {
		fmt.Fprintf(&b, "options %s\n", e.Options)
	}
	return []byte(b.String())
}

// BIOSOptions configures WriteBIOSConfig.
type BIOSOptions struct {
	BootOptions
	// BootDir is the mounted FAT partition BIOS boots from, normally the
	// ESP (so that one partition serves both firmwares and a refresh of
	// the root filesystem never touches the loader).
	BootDir string
	// Payload's ldlinux.sys/.c32 are written too, for InstallSyslinux's
	// pure-Go path; nil loads SyslinuxPayloadDir when it exists (the PE).
	Payload *SyslinuxPayload
}

// WriteBIOSConfig prepares the BIOS side on the FAT boot partition: the
// newest kernel and initrd under /<id>/<version>/ (the same files the UEFI
// entry uses) and /syslinux/syslinux.cfg booting them with root=UUID=… rw
// and the extra command line. InstallSyslinux then makes the partition
// bootable.
func WriteBIOSConfig(ctx context.Context, o BIOSOptions) (*BootResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.BootDir == "" {
		return nil, fmt.Errorf("boot files: no BIOS boot partition directory given")
	}
	k, err := FindKernel(o.Root)
	if err != nil {
		return nil, err
	}
	in := &installer{backup: filepath.Join(o.BackupDir, o.Now().UTC().Format("20060102T150405Z")), res: &BootResult{Kernel: k}}
	dir := o.EntryID + "/" + k.Version
	if err := in.copy(o.BootDir, dir+"/vmlinuz", k.Path); err != nil {
		return in.res, err
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "DEFAULT %s\nPROMPT 0\nTIMEOUT 0\n\nLABEL %s\n  MENU LABEL %s\n  LINUX /%s/vmlinuz\n", o.EntryID, o.EntryID, o.Title, dir)
	if k.Initrd != "" {
		if err := in.copy(o.BootDir, dir+"/initrd.img", k.Initrd); err != nil {
			return in.res, err
		}
		fmt.Fprintf(&conf, "  INITRD /%s/initrd.img\n", dir)
	}
	fmt.Fprintf(&conf, "  APPEND %s\n", o.options())
	extras, err := in.copyExtras(o.BootDir, o.Extra)
	if err != nil {
		return in.res, err
	}
	for _, x := range extras {
		fmt.Fprintf(&conf, "\nLABEL %s\n  MENU LABEL %s\n  LINUX %s\n", x.ID, x.Title, x.Linux)
		if x.Initrd != "" {
			fmt.Fprintf(&conf, "  INITRD %s\n", x.Initrd)
		}
		fmt.Fprintf(&conf, "  APPEND %s\n", x.Options)
	}
	if err := in.write(o.BootDir, "syslinux/syslinux.cfg", []byte(conf.String()), 0o644); err != nil {
		return in.res, err
	}
	pl := o.Payload
	if pl == nil {
		pl, _ = LoadSyslinuxPayload(SyslinuxPayloadDir)
	}
	if pl != nil {
		if err := pl.WriteFiles(o.BootDir); err != nil {
			return in.res, err
		}
		in.res.Written = append(in.res.Written, filepath.Join(o.BootDir, "syslinux/ldlinux.sys"), filepath.Join(o.BootDir, "syslinux/ldlinux.c32"))
	}
	return in.res, ctx.Err()
}

// SyslinuxOptions configures InstallSyslinux.
type SyslinuxOptions struct {
	// Disk is the whole disk (device or image file).
	Disk string
	// Partition is the number of the FAT partition prepared by
	// WriteBIOSConfig. It must not be mounted while syslinux writes it.
	Partition int
	// Syslinux is the installer program (default "syslinux" from PATH,
	// the mtools flavour, which needs no mount and no vfat in the kernel).
	Syslinux string
	// SyslinuxDir holds mbr.bin and gptmbr.bin (default /usr/lib/syslinux/mbr).
	SyslinuxDir string
	// BackupDir receives the disk's previous MBR boot code.
	BackupDir string
	// Payload, when set, installs syslinux in pure Go (after
	// Payload.WriteFiles put ldlinux.sys/.c32 on the partition) instead of
	// running the syslinux program; this is the PE's way. Nil loads
	// SyslinuxPayloadDir when it exists, else runs the program.
	Payload *SyslinuxPayload
}

// InstallSyslinux installs syslinux's volume boot record and ldlinux.sys /
// ldlinux.c32 (into /syslinux) on the FAT partition, writes syslinux's MBR
// code (gptmbr.bin or mbr.bin by table type) into the disk's first 440
// bytes, and marks the partition bootable (MBR active flag, or the GPT
// legacy-BIOS-bootable attribute gptmbr.bin looks for). The partition
// table itself is not otherwise changed.
func InstallSyslinux(ctx context.Context, o SyslinuxOptions) (*BootResult, error) {
	if o.Disk == "" || o.Partition < 1 {
		return nil, fmt.Errorf("boot files: BIOS needs the disk and the boot partition number")
	}
	prog := o.Syslinux
	if prog == "" {
		prog = "syslinux"
	}
	p := ""
	if o.Payload == nil {
		// The PE ships a payload instead of the program.
		o.Payload, _ = LoadSyslinuxPayload(SyslinuxPayloadDir)
	}
	if o.Payload == nil {
		var err error
		if p, err = exec.LookPath(prog); err != nil {
			return nil, fmt.Errorf("%w: %s (the BIOS loader installer, Debian package syslinux) is not available and no syslinux payload was given: %v", diskops.ErrNotFound, prog, err)
		}
	}
	f, err := os.OpenFile(o.Disk, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	tab, err := diskops.ReadTable(f, size, 0)
	if err != nil || tab == nil {
		return nil, fmt.Errorf("%s: no partition table to boot from (%v)", o.Disk, err)
	}
	var part *diskops.PartitionInfo
	for i := range tab.Partitions {
		if tab.Partitions[i].Number == o.Partition {
			part = &tab.Partitions[i]
		}
	}
	if part == nil {
		return nil, fmt.Errorf("%s: no partition %d", o.Disk, o.Partition)
	}
	if fs := diskops.ProbeFilesystem(f, part.Start, part.Size); fs == nil || fs.Type != "vfat" {
		return nil, fmt.Errorf("%s partition %d: BIOS boot needs a FAT filesystem there, found %+v", o.Disk, o.Partition, fs)
	}
	mbrName := map[string]string{"gpt": "gptmbr.bin", "mbr": "mbr.bin"}[tab.Type]
	dir := o.SyslinuxDir
	if dir == "" {
		dir = "/usr/lib/syslinux/mbr"
	}
	code, err := os.ReadFile(filepath.Join(dir, mbrName))
	if o.Payload != nil {
		if c := map[string][]byte{"gptmbr.bin": o.Payload.GPTMBR, "mbr.bin": o.Payload.MBR}[mbrName]; len(c) > 0 {
			code, err = c, nil
		}
	}
	if err != nil || len(code) == 0 || len(code) > 440 {
		return nil, fmt.Errorf("%w: syslinux %s in %s (Debian package syslinux-common): %v", diskops.ErrNotFound, mbrName, dir, err)
	}
	res := &BootResult{}
	old := make([]byte, 440)
	if _, err := f.ReadAt(old, 0); err != nil {
		return nil, err
	}
	if !bytes.Equal(old[:len(code)], code) && !bytes.Equal(old, make([]byte, len(old))) && o.BackupDir != "" {
		b := filepath.Join(o.BackupDir, time.Now().UTC().Format("20060102T150405Z"), "mbr-bootcode.bin")
		os.MkdirAll(filepath.Dir(b), 0o755)
		if err := os.WriteFile(b, old, 0o644); err != nil {
			return nil, err
		}
		res.BackedUp = append(res.BackedUp, b)
	}
	f.Sync()
	if o.Payload != nil {
		if err := installPayload(f, part.Start, o.Payload); err != nil {
			return res, fmt.Errorf("%s partition %d: installing syslinux: %w", o.Disk, o.Partition, err)
		}
	} else {
		out, err := child.CombinedOutput(exec.CommandContext(ctx, p, "--install", "--directory", "/syslinux", "--offset", fmt.Sprint(part.Start), o.Disk))
		if err != nil {
			return res, fmt.Errorf("syslinux --install: %v: %s", err, out)
		}
	}
	res.Written = append(res.Written, fmt.Sprintf("%s partition %d: boot sector, /syslinux/ldlinux.sys, /syslinux/ldlinux.c32", o.Disk, o.Partition))
	// syslinux rewrites the boot sector only; FAT32 keeps a backup copy
	// (BPB_BkBootSec) that fsck compares with it.
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, part.Start); err != nil {
		return res, err
	}
	if string(bs[82:87]) == "FAT32" {
		if bk := int64(binary.LittleEndian.Uint16(bs[50:])); bk > 0 && bk < int64(binary.LittleEndian.Uint16(bs[14:])) {
			if _, err := f.WriteAt(bs, part.Start+bk*512); err != nil {
				return res, err
			}
		}
	}
	if _, err := f.WriteAt(code, 0); err != nil {
		return res, err
	}
	res.Written = append(res.Written, o.Disk+": MBR boot code "+mbrName)
	if err := diskops.SetBootable(f, size, tab, o.Partition); err != nil {
		return res, err
	}
	return res, f.Sync()
}
