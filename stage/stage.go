// Package stage prepares a running Linux system for an in-place refresh:
// it checks requirements, counts down, captures user state into
// /minint/state (package state), copies the PE and the task sequence into
// /minint/pe, backs up the boot configuration into /minint/backup and
// arranges a one-shot boot into the PE, so that if anything goes wrong
// before the PE takes over, the next boot is the old system again.
//
// The PE's kernel command line gets minint.staged=UUID=<uuid>, the
// filesystem holding /minint, read from the superblock of the device
// under Root. The one-shot boot is systemd-boot's LoaderEntryOneShot on
// UEFI (the ESP mounted where the system keeps it, or found on Root's disk
// and mounted for the time needed) and syslinux's boot-once on BIOS (a
// label on the FAT boot partition of Root's disk, minint's own BIOS boot
// files).
//
// Everything works on Options.Root, Options.SysRoot and an EFI variable
// directory, so tests run it against temporary trees and a plain
// directory standing in for efivarfs. Rebooting is the caller's job
// (cmd/minint).
package stage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/state"
	"github.com/minint/minint/state/netstore"
)

// ErrRequirements is wrapped by the error Run returns when the system does
// not meet the requirements; nothing has been changed then.
var ErrRequirements = errors.New("requirements not met")

// Options say what to stage where.
type Options struct {
	// Root is the running system's root ("/"; a temporary tree in tests).
	Root string
	// Kernel and Initramfs are the PE's files; Sequence is the task
	// sequence file. All are host paths, copied into Root/minint/pe.
	Kernel, Initramfs, Sequence string
	// Cmdline is the PE's kernel command line (e.g. minint.sequence=…,
	// minint.done=reboot). Stage adds minint.staged=UUID=<uuid>, the
	// filesystem holding Root/minint, which is how the PE finds the staged
	// sequence, state and journal.
	Cmdline string
	// StagedFS overrides the probed minint.staged= value (UUID=…); for
	// roots whose device cannot be probed, such as test trees.
	StagedFS string
	// ESP is the mounted EFI system partition holding systemd-boot
	// (default: the first of Root/boot/efi, Root/efi, Root/boot with a
	// loader/ directory; failing those, the one EFI system partition on
	// the disk holding Root, mounted for the time stage needs it).
	ESP string
	// SysRoot is prepended to /sys and /dev when looking up devices
	// ("" for "/").
	SysRoot string
	// EFIVars is the efivarfs directory (default bootloader.DefaultEFIVars).
	EFIVars string
	// Firmware is "uefi" or "bios"; empty tells them apart by
	// SysRoot/sys/firmware/efi (UEFI when EFIVars is given). On BIOS
	// machines stage needs syslinux on a FAT boot partition of Root's
	// disk: the PE gets a label there and syslinux's boot-once is armed.
	Firmware string
	// Spec selects the user state.
	Spec state.Spec
	// StateStore, when set, is a URL or directory the captured state is
	// also pushed to (the replace flow). It needs Spec.Key: the store is
	// signed with it, and the machine that pulls it trusts its public half.
	StateStore string
	// CaptureOnly stops after capturing (and pushing) the state.
	CaptureOnly bool
	// MinFree is the free space Root's filesystem needs beyond the PE
	// files; MinMemory the RAM (bytes, 0: no check); MinCPUs the online
	// CPUs. Firmwares, when set, are the only firmware types ("bios",
	// "uefi") the sequence runs on. cmd/minint fills them from the task
	// sequence's requirements steps.
	MinFree, MinMemory int64
	MinCPUs            int
	Firmwares          []string
	// DryRun checks and prints the plan, and changes nothing.
	DryRun bool
	// Log receives one line per action.
	Log io.Writer
	// Progress, when set, is called with bytes captured.
	Progress func(n int64)

	// Found by Check.
	staged   string                 // "UUID=…"
	espPart  *diskops.PartitionInfo // an unmounted ESP to mount
	espDisk  *diskops.Disk          // its disk
	syslinux *syslinuxBoot          // BIOS: the boot partition
}

func (o *Options) bios() bool {
	switch o.Firmware {
	case "bios":
		return true
	case "uefi":
		return false
	}
	if o.EFIVars != "" {
		return false
	}
	_, err := os.Stat(filepath.Join(o.SysRoot, "/sys/firmware/efi"))
	return err != nil
}

// Result says what was staged.
type Result struct {
	Plan     []string           `json:"plan"`
	Manifest *state.Manifest    `json:"-"`
	Entries  int                `json:"stateEntries"`
	Bytes    int64              `json:"stateBytes"`
	Stats    state.CaptureStats `json:"captureStats"`
	ESP      string             `json:"esp,omitempty"`
	OneShot  string             `json:"oneShot,omitempty"`
	// Cmdline is the PE's full kernel command line, minint.staged=
	// included.
	Cmdline string `json:"cmdline,omitempty"`
}

func (o *Options) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", a...)
	}
}

func (o *Options) minint(p ...string) string {
	return filepath.Join(append([]string{o.Root, "minint"}, p...)...)
}

// findESP looks for a mounted ESP with systemd-boot's loader directory.
// It returns "" without error when there is none mounted where systems
// usually mount it, for locateESP to look on the disk.
func (o *Options) findESP() (string, error) {
	if o.ESP != "" {
		if fi, err := os.Stat(filepath.Join(o.ESP, "loader")); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("ESP %s has no loader/ directory (systemd-boot)", o.ESP)
		}
		return o.ESP, nil
	}
	for _, d := range []string{"boot/efi", "efi", "boot"} {
		p := filepath.Join(o.Root, d)
		if fi, err := os.Stat(filepath.Join(p, "loader")); err == nil && fi.IsDir() {
			return p, nil
		}
	}
	return "", nil
}

// locateESP finds the EFI system partition on the disk holding Root when
// none is mounted (many systems never mount it), and checks it by
// mounting it read-only for a moment. More than one is refused: which one
// the firmware boots is not something to guess.
func (o *Options) locateESP(disk string, need int64) error {
	if disk == "" {
		return errors.New("no mounted ESP with loader/ under /boot/efi, /efi or /boot, and the root filesystem is not on a partitioned disk: mount the ESP and give --esp")
	}
	d, parts, err := diskops.PartitionsOfType(context.Background(), o.SysRoot, disk, "esp")
	if err != nil {
		return fmt.Errorf("no mounted ESP with loader/, and looking for one on %s: %w", disk, err)
	}
	switch len(parts) {
	case 0:
		return fmt.Errorf("no mounted ESP with loader/ under /boot/efi, /efi or /boot, and no EFI system partition on %s", d.Path)
	case 1:
	default:
		var c []string
		for _, p := range parts {
			c = append(c, describePart(d, p))
		}
		return fmt.Errorf("no mounted ESP, and %d EFI system partitions on %s: %s; mount the one with systemd-boot and give --esp", len(parts), d.Path, strings.Join(c, ", "))
	}
	p := parts[0]
	if p.Device == "" {
		return fmt.Errorf("EFI system partition %s has no device node", describePart(d, p))
	}
	if mps := diskops.MountPoints(o.SysRoot, p.Device); len(mps) > 0 {
		// Mounted somewhere unusual: use it there.
		o.ESP = filepath.Join(o.SysRoot, mps[0])
		if fi, err := os.Stat(filepath.Join(o.ESP, "loader")); err != nil || !fi.IsDir() {
			return fmt.Errorf("EFI system partition %s, mounted on %s, has no loader/ directory (systemd-boot)", describePart(d, p), mps[0])
		}
		if free := freeBytes(o.ESP); free >= 0 && free < need {
			return fmt.Errorf("EFI system partition %s: %s free, the PE needs %s", describePart(d, p), human(free), human(need))
		}
		return nil
	}
	dir, done, err := mountTemp(filepath.Join(o.SysRoot, p.Device), true)
	if err != nil {
		return fmt.Errorf("EFI system partition %s: %w", describePart(d, p), err)
	}
	defer done()
	if fi, err := os.Stat(filepath.Join(dir, "loader")); err != nil || !fi.IsDir() {
		return fmt.Errorf("EFI system partition %s has no loader/ directory (systemd-boot)", describePart(d, p))
	}
	if free := freeBytes(dir); free >= 0 && free < need {
		return fmt.Errorf("EFI system partition %s: %s free, the PE needs %s", describePart(d, p), human(free), human(need))
	}
	o.espPart, o.espDisk = &p, d
	return nil
}

func describePart(d *diskops.Disk, p diskops.PartitionInfo) string {
	s := p.Device
	if s == "" {
		s = fmt.Sprintf("%s partition %d", d.Path, p.Number)
	}
	if p.FS != nil {
		s += fmt.Sprintf(" (%s", p.FS.Type)
		if p.FS.Label != "" {
			s += " " + p.FS.Label
		}
		if p.FS.UUID != "" {
			s += " UUID=" + p.FS.UUID
		}
		s += ")"
	}
	return s
}

// mountTemp mounts a vfat partition on a new temporary directory; done
// unmounts it and removes the directory.
func mountTemp(dev string, ro bool) (string, func() error, error) {
	dir, err := os.MkdirTemp("", "minint-esp-")
	if err != nil {
		return "", nil, err
	}
	m, err := diskops.Mount(dev, dir, diskops.MountOptions{FSType: "vfat", ReadOnly: ro})
	if err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	return dir, func() error {
		err := m.Close()
		if err == nil {
			err = os.Remove(dir)
		}
		return err
	}, nil
}

func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// PECmdline is the PE's kernel command line: the caller's plus where
// /minint is.
func (o *Options) PECmdline() string {
	return strings.TrimSpace(strings.TrimSpace(o.Cmdline) + " minint.staged=" + o.staged)
}

// Check returns one line per unmet requirement; empty means go.
func Check(o *Options) []string {
	var bad []string
	if fi, err := os.Stat(o.Root); err != nil || !fi.IsDir() {
		return []string{fmt.Sprintf("root %s is not a directory", o.Root)}
	}
	if os.Geteuid() != 0 {
		bad = append(bad, "must run as root (captures every user's files)")
	}
	if o.StateStore != "" && o.Spec.Key == nil {
		bad = append(bad, "a state store needs a state key (Spec.Key, --state-key): pull-state refuses an unsigned store")
	}
	var need int64
	if !o.CaptureOnly {
		for _, f := range []struct{ what, p string }{{"PE kernel", o.Kernel}, {"PE initramfs", o.Initramfs}, {"task sequence", o.Sequence}} {
			fi, err := os.Stat(f.p)
			if f.p == "" || err != nil || !fi.Mode().IsRegular() {
				bad = append(bad, fmt.Sprintf("%s %q: not a readable file", f.what, f.p))
				continue
			}
			need += fi.Size()
		}
		if strings.Contains(" "+o.Cmdline, " minint.staged=") {
			bad = append(bad, "the PE command line must not set minint.staged=: stage adds it (the filesystem holding /minint)")
		}
		if strings.Contains(" "+o.Cmdline, " minint.sequence=") {
			bad = append(bad, "the PE command line must not set minint.sequence=: a staged refresh runs the sequence staged with it (--sequence)")
		}
		// With StagedFS given nothing is probed: the disk is unknown
		// then, and the ESP must be mounted.
		var disk string
		var b *diskops.BackingDevice
		var berr error
		if o.StagedFS == "" {
			if b, berr = diskops.BackingDeviceOf(o.SysRoot, o.Root); berr == nil {
				disk = b.Disk
			}
		}
		switch {
		case o.StagedFS != "":
			if !strings.HasPrefix(o.StagedFS, "UUID=") || len(o.StagedFS) == len("UUID=") || strings.ContainsAny(o.StagedFS, " \t") {
				bad = append(bad, fmt.Sprintf("staged filesystem %q: give UUID=<uuid>", o.StagedFS))
			}
			o.staged = o.StagedFS
		case berr != nil:
			bad = append(bad, fmt.Sprintf("finding the filesystem of %s for the PE: %v", o.Root, berr))
		case b.FS.UUID == "":
			bad = append(bad, fmt.Sprintf("the filesystem of %s (%s on %s) has no UUID for the PE to find it by", o.Root, b.FS.Type, b.Path))
		default:
			o.staged = "UUID=" + b.FS.UUID
		}
		o.espPart, o.espDisk, o.syslinux = nil, nil, nil
		if o.Firmware != "" && o.Firmware != "bios" && o.Firmware != "uefi" {
			bad = append(bad, fmt.Sprintf("firmware %q: give bios or uefi", o.Firmware))
		} else if o.bios() {
			if err := o.locateSyslinux(disk, need); err != nil {
				bad = append(bad, err.Error())
			}
		} else {
			esp, err := o.findESP()
			switch {
			case err != nil:
				bad = append(bad, err.Error())
			case esp != "":
				o.ESP = esp
				if free := freeBytes(esp); free >= 0 && free < need {
					bad = append(bad, fmt.Sprintf("ESP %s: %s free, the PE needs %s", esp, human(free), human(need)))
				}
			default:
				if err := o.locateESP(disk, need); err != nil {
					bad = append(bad, err.Error())
				}
			}
			ev := o.efiVars()
			if fi, err := os.Stat(ev); err != nil || !fi.IsDir() {
				bad = append(bad, fmt.Sprintf("no EFI variables at %s: not booted under UEFI", ev))
			} else if (bootloader.EFIVars{Dir: ev}).Flag("SecureBoot") {
				// The one-shot boot goes through systemd-boot's
				// LoaderEntryOneShot, which the signed shim and GRUB that
				// boot such a machine do not read.
				bad = append(bad, "the firmware enforces Secure Boot: a refresh's one-shot boot of the PE needs systemd-boot, which is not signed; refresh with Secure Boot off, or redeploy from minint's ISO or network boot (both boot with Secure Boot on)")
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(o.Root, &st); err == nil {
		if free := int64(st.Bavail) * int64(st.Bsize); free < need*2+o.MinFree {
			bad = append(bad, fmt.Sprintf("free space on %s: %s, need %s (the PE twice plus %s)", o.Root, human(free), human(need*2+o.MinFree), human(o.MinFree)))
		}
	}
	if o.MinMemory > 0 {
		var si syscall.Sysinfo_t
		if err := syscall.Sysinfo(&si); err == nil && int64(si.Totalram)*int64(si.Unit) < o.MinMemory {
			bad = append(bad, fmt.Sprintf("memory: %s, the sequence needs %s", human(int64(si.Totalram)*int64(si.Unit)), human(o.MinMemory)))
		}
	}
	if n := runtime.NumCPU(); o.MinCPUs > 0 && n < o.MinCPUs {
		bad = append(bad, fmt.Sprintf("CPUs: %d, the sequence needs %d", n, o.MinCPUs))
	}
	if len(o.Firmwares) > 0 && !o.CaptureOnly {
		fw := "uefi"
		if o.bios() {
			fw = "bios"
		}
		if !slices.Contains(o.Firmwares, fw) {
			bad = append(bad, fmt.Sprintf("firmware: this machine boots with %s, the sequence runs on %s only", fw, strings.Join(o.Firmwares, ", ")))
		}
	}
	if o.StateStore != "" && !netstore.IsRemote(o.StateStore) && !filepath.IsAbs(o.StateStore) {
		bad = append(bad, fmt.Sprintf("state store %q: give an http(s) URL or an absolute directory", o.StateStore))
	}
	return bad
}

func (o *Options) efiVars() string {
	if o.EFIVars == "" {
		return bootloader.DefaultEFIVars
	}
	return o.EFIVars
}

// Run stages the refresh. It refuses with ErrRequirements, changing
// nothing, when Check finds problems. The order matters: the one-shot
// boot is armed last, so an interruption anywhere before leaves a system
// that boots as before.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if bad := Check(&o); len(bad) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrRequirements, strings.Join(bad, "\n  "))
	}
	res := &Result{ESP: o.ESP, Cmdline: o.PECmdline()}
	plan := func(format string, a ...any) {
		s := fmt.Sprintf(format, a...)
		res.Plan = append(res.Plan, s)
		o.logf("%s%s", map[bool]string{true: "would ", false: ""}[o.DryRun], s)
	}
	store := o.minint("state")
	if o.Spec.Key != nil {
		plan("capture user state into %s, signed with state key %s", store, sign.KeyID(o.Spec.Key.Public().(ed25519.PublicKey)))
	} else {
		// The PE's capture-state captures and signs again before anything
		// is deleted; this capture is what it reuses the spec of.
		plan("capture user state into %s (unsigned: the PE captures and signs it again)", store)
	}
	if o.StateStore != "" {
		plan("push the state to %s", o.StateStore)
	}
	if !o.CaptureOnly {
		plan("copy the PE and the sequence into %s", o.minint("pe"))
		plan("back up the boot configuration into %s", o.minint("backup"))
		switch {
		case o.syslinux != nil:
			plan("mount the syslinux boot partition %s on a temporary directory", o.syslinux)
			plan("copy the PE to %s/%s and add the syslinux label %s with APPEND %s", o.syslinux.part.Device, bootloader.PEDir, bootloader.PELabel, o.PECmdline())
			plan("unmount %s", o.syslinux.part.Device)
			plan("arm syslinux's boot-once for %s", bootloader.PELabel)
		case o.espPart != nil:
			plan("mount the EFI system partition %s on a temporary directory", describePart(o.espDisk, *o.espPart))
			plan("copy the PE to %s/%s and write loader entry %s with options %s", o.espPart.Device, bootloader.PEDir, bootloader.PEEntry, o.PECmdline())
			plan("unmount %s", o.espPart.Device)
			plan("arm a one-shot boot of %s (LoaderEntryOneShot in %s)", bootloader.PEEntry, o.efiVars())
		default:
			plan("copy the PE to %s and write loader entry %s with options %s", filepath.Join(o.ESP, bootloader.PEDir), bootloader.PEEntry, o.PECmdline())
			plan("arm a one-shot boot of %s (LoaderEntryOneShot in %s)", bootloader.PEEntry, o.efiVars())
		}
	}
	if o.DryRun {
		return res, nil
	}
	if err := os.MkdirAll(o.minint(), 0o700); err != nil {
		return res, err
	}
	spec := o.Spec
	spec.Progress = o.Progress
	m, stats, err := state.CaptureStat(ctx, o.Root, store, spec)
	if err != nil {
		// A half-made store may hold copies (files from another
		// filesystem) filling the disk; it has no index, so it is of no
		// use anyway.
		if rerr := os.RemoveAll(store); rerr != nil {
			o.logf("removing the incomplete store %s: %v", store, rerr)
		}
		return res, fmt.Errorf("capturing state: %w", err)
	}
	res.Manifest, res.Entries, res.Bytes, res.Stats = m, len(m.Entries), m.Bytes, stats
	o.logf("captured %d entries, %d bytes (%d files linked, %d copied, %d duplicates)", len(m.Entries), m.Bytes, stats.Linked, stats.Copied, stats.Deduplicated)
	if o.StateStore != "" {
		if err := netstore.Push(ctx, store, o.StateStore, netstore.Options{}); err != nil {
			return res, fmt.Errorf("pushing state: %w", err)
		}
		o.logf("pushed the state to %s", o.StateStore)
	}
	if o.CaptureOnly {
		return res, nil
	}
	unmount := func() error { return nil }
	pe := o.minint("pe")
	for _, f := range [][2]string{{o.Kernel, "vmlinuz"}, {o.Initramfs, "initramfs.img"}, {o.Sequence, "sequence.yaml"}} {
		if err := copyFile(f[0], filepath.Join(pe, f[1])); err != nil {
			return res, err
		}
	}
	backup := filepath.Join(o.minint("backup"), time.Now().UTC().Format("20060102T150405Z"))
	if o.syslinux != nil {
		if err := o.backupRoot(backup); err != nil {
			return res, fmt.Errorf("backing up boot configuration: %w", err)
		}
		return res, o.runSyslinux(res, backup)
	}
	if o.espPart != nil {
		dir, done, err := mountTemp(filepath.Join(o.SysRoot, o.espPart.Device), false)
		if err != nil {
			return res, fmt.Errorf("EFI system partition %s: %w", o.espPart.Device, err)
		}
		o.ESP, res.ESP = dir, o.espPart.Device
		o.logf("mounted the EFI system partition %s on %s", o.espPart.Device, dir)
		defer func() {
			// Unmounted before the one-shot is armed: a half-written
			// ESP never meets the firmware.
			if done != nil {
				done()
			}
		}()
		unmount = func() error {
			err := done()
			done = nil
			if err != nil {
				return fmt.Errorf("unmounting the EFI system partition %s: %w", o.espPart.Device, err)
			}
			o.logf("unmounted %s", o.espPart.Device)
			return nil
		}
	}
	if err := o.backup(backup); err != nil {
		return res, fmt.Errorf("backing up boot configuration: %w", err)
	}
	espPE := filepath.Join(o.ESP, bootloader.PEDir)
	for _, f := range [][2]string{{o.Kernel, "vmlinuz"}, {o.Initramfs, "initramfs.img"}} {
		if err := copyFile(f[0], filepath.Join(espPE, f[1])); err != nil {
			return res, err
		}
	}
	entry := fmt.Sprintf("title minint PE (refresh)\nlinux /%[1]s/vmlinuz\ninitrd /%[1]s/initramfs.img\noptions %[2]s\n", bootloader.PEDir, o.PECmdline())
	if err := os.MkdirAll(filepath.Join(o.ESP, "loader/entries"), 0o755); err != nil {
		return res, err
	}
	if err := durable.WriteFile(filepath.Join(o.ESP, "loader/entries", bootloader.PEEntry), []byte(entry), 0o644); err != nil {
		return res, err
	}
	if err := unmount(); err != nil {
		return res, err
	}
	if err := (bootloader.EFIVars{Dir: o.efiVars()}).SetLoaderOneShot(bootloader.PEEntry); err != nil {
		return res, fmt.Errorf("arming the one-shot boot: %w", err)
	}
	res.OneShot = bootloader.PEEntry
	o.logf("armed a one-shot boot of %s", bootloader.PEEntry)
	return res, nil
}

// backup copies the loader configuration and the boot variables that
// stage or the PE may change into dir.
func (o *Options) backup(dir string) error {
	loader := filepath.Join(o.ESP, "loader")
	err := filepath.WalkDir(loader, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(o.ESP, p)
		return copyFile(p, filepath.Join(dir, "esp", rel))
	})
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(o.efiVars())
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "Boot") || strings.HasPrefix(n, "Loader") {
			if err := copyFile(filepath.Join(o.efiVars(), n), filepath.Join(dir, "efivars", n)); err != nil {
				return err
			}
		}
	}
	if err := o.backupRoot(dir); err != nil {
		return err
	}
	o.logf("backed up the boot configuration into %s", dir)
	return nil
}

// backupRoot copies the boot configuration files on the root filesystem.
func (o *Options) backupRoot(dir string) error {
	for _, f := range []string{"boot/extlinux/extlinux.conf", "boot/syslinux/syslinux.cfg", "boot/grub/grub.cfg", "etc/fstab"} {
		if _, err := os.Stat(filepath.Join(o.Root, f)); err == nil {
			if err := copyFile(filepath.Join(o.Root, f), filepath.Join(dir, "root", f)); err != nil {
				return err
			}
		}
	}
	return nil
}

// human writes a byte count the way people read it.
func human(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := durable.Create(dst, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Commit()
}
