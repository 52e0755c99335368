package pe

// In-place refresh: `minint stage` captured the user state into /minint on
// the running system's root, copied the PE there and onto the ESP (or the
// BIOS boot partition), and armed a ONE-SHOT boot of it (systemd-boot's
// LoaderEntryOneShot, or syslinux's boot-once). The PE then runs a
// sequence like
//
//	version: 1
//	steps:
//	  - {type: requirements, min-memory: 256MiB}
//	  - {type: mount, existing: true}   # the staged root, no partitioning
//	  - {type: capture-state}           # consistent re-capture, nothing runs
//	  - {type: fetch, manifest: http://…}
//	  - {type: clean}                   # everything but /minint goes
//	  - {type: apply-image}
//	  - {type: setup, restore-state: {}}
//	  - {type: bootfiles}
//	  - {type: reboot}
//
// Fail-safe ordering: until clean starts, nothing outside /minint has been
// written, and the firmware will boot the old system next time (the
// one-shot is spent), so a failure there reboots into the old system
// (cmd/peinit, when minint.done=reboot and the error is not ErrChanged).
// Right before deleting anything, clean makes the PE the PERSISTENT boot
// choice, so that a power cut during clean or apply boots the PE again and
// it resumes from the journal; bootfiles hands the default to the new
// system and removes the PE's entry. checkOrder enforces the order on the
// host (`minint sequence check`).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/state"
	"golang.org/x/sys/unix"
)

const (
	// stagedSequence is the sequence stage copies, relative to the staged
	// root.
	stagedSequence = "minint/pe/sequence.yaml"
	// cleaningMarker is written into the staging folder right before the
	// first deletion: from then on the root no longer holds what the user
	// state was captured from, and capturing again would replace the good
	// store with an empty one.
	cleaningMarker = "cleaning"
)

// ErrChanged is wrapped by Run's error when a step that changes the disk
// outside the staging folder (partition, format, clean, apply-image,
// setup, bootfiles, run…) had started, in this run or an earlier one in
// the journal. Without it the target is as it was, which for a staged
// refresh means the old system still boots.
var ErrChanged = errors.New("the target disk was already changed")

type changedError struct{ error }

func (e changedError) Unwrap() []error { return []error{e.error, ErrChanged} }

// readOnlyTypes are the steps that change nothing outside the staging
// folder /minint.
var readOnlyTypes = map[string]bool{"requirements": true, "select-disk": true, "mount": true,
	"fetch": true, "capture-state": true, "pull-state": true, "reboot": true, "poweroff": true}

// RefreshBackend is what a backend needs for an in-place refresh, on top
// of Backend. SystemBackend has it; fakes in tests may.
type RefreshBackend interface {
	// Staged finds the file system with this UUID (the root `minint
	// stage` prepared) and the ESP on the same disk: parts are the ESP
	// (Type esp) and the root (Name root), with nodes and UUIDs.
	Staged(ctx context.Context, fsUUID string) (TargetDisk, []Part, error)
	// PinPE makes the staged PE's loader entry (bootloader.PEEntry) the persistent
	// boot default, durably, before anything is deleted.
	PinPE(ctx context.Context, esp Part) error
	// UnpinPE drops that default (bootfiles has just made the new
	// system's entry the default) and removes the PE's entry and files
	// from the ESP.
	UnpinPE(ctx context.Context, esp Part) error
}

func refreshBackend(b Backend) (RefreshBackend, error) {
	rb, ok := b.(RefreshBackend)
	if !ok {
		return nil, fmt.Errorf("this backend (%T) cannot refresh an existing system", b)
	}
	return rb, nil
}

func (r *runner) stagingPath(p ...string) string {
	return filepath.Join(append([]string{r.st.Target, strings.TrimPrefix(answer.Dir, "/")}, p...)...)
}

// mountExisting mounts the staged root found by its UUID (minint.staged=)
// and the journal in its /minint: what partition+format+mount are for a
// new computer.
func (r *runner) mountExisting(s *sequence.Mount) error {
	stage := filepath.Join(s.Target, strings.TrimPrefix(answer.Dir, "/"))
	if r.st.Target == s.Target && r.staging == stage {
		return nil
	}
	if r.env.Staged == "" {
		return errors.New("mount existing: this PE was not started by `minint stage` (no minint.staged=UUID=… on the kernel command line), so there is no existing root to refresh")
	}
	rb, err := refreshBackend(r.env.Backend)
	if err != nil {
		return err
	}
	disk, parts, err := rb.Staged(r.ctx, r.env.Staged)
	if err != nil {
		return fmt.Errorf("finding the staged root: %w", err)
	}
	root, ok := rootPart(parts)
	if !ok {
		return errors.New("the staged disk has no root partition")
	}
	r.unmountAll()
	un, err := r.env.Backend.Mount(r.ctx, root, s.Target)
	if err != nil {
		return fmt.Errorf("mounting the staged root %s: %w", root.FSUUID, err)
	}
	r.st.unmount = append(r.st.unmount, un)
	r.st.Target = s.Target
	fi, err := os.Lstat(stage)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("the file system %s has no %s folder: it was not staged by `minint stage`", r.env.Staged, answer.Dir)
	}
	// The journal belongs to this staging only: a PE staged again (after
	// the old system ran on and its files changed) must start over, not
	// skip the capture. The sequence file is copied anew by every
	// staging, so its inode and time tell stagings apart without trusting
	// the clocks of the old system and the PE to agree.
	r.origin = ""
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(s.Target, stagedSequence), &st) == nil {
		r.origin = fmt.Sprintf("ino %d mtime %d.%09d", st.Ino, st.Mtim.Sec, st.Mtim.Nsec)
	}
	r.jr.Origin = r.origin
	d := disk
	r.st.Disk = &d
	if err := r.adopt(stage); err != nil {
		return err
	}
	// What the disk says now wins over the journal (device names change).
	r.st.Disk, r.st.Parts, r.st.Staged = &d, parts, true
	r.rep.Printf("  existing root %s (%s) mounted at %s", root.FSUUID, root.Node, s.Target)
	return r.save()
}

// espPart is the partition the loaders boot from: the ESP, or on a BIOS
// disk the FAT boot partition syslinux lives on.
func espPart(parts []Part) (Part, bool) {
	for _, p := range parts {
		if p.Type == "esp" {
			return p, true
		}
	}
	for _, p := range parts {
		if p.FS == "vfat" {
			return p, true
		}
	}
	return Part{}, false
}

func (r *runner) clean(s *sequence.Clean) error {
	if !r.st.Staged || r.st.Target == "" {
		return errors.New("clean needs the existing root mounted (mount with existing: true)")
	}
	img := r.st.Image
	if img == nil {
		return errors.New("no verified package: a fetch step must succeed before anything is deleted")
	}
	if img.Path == "" {
		return fmt.Errorf("the package is read from %s while applying (stream mode): clean needs it staged and verified in full first (fetch mode: stage)", img.URL)
	}
	if !img.Verified {
		return fmt.Errorf("the package %s has not been verified whole yet: clean needs it verified before anything is deleted", img.Path)
	}
	if fi, err := os.Stat(img.Path); err != nil || fi.Size() != img.Entry.Size {
		return fmt.Errorf("the verified package %s is no longer there or changed size: fetch again before cleaning", img.Path)
	}
	// The state must verify now with the keys setup's restore-state will
	// trust: after clean, a store the first boot refuses is data lost.
	keys, err := r.stateKeys()
	if err != nil {
		return err
	}
	if _, _, err := state.ReadSigned(r.stagingPath("state"), keys); err != nil {
		return fmt.Errorf("no complete, signed user state in %s (capture-state must succeed before clean): %w", r.stagingPath("state"), err)
	}
	rb, esp, err := r.refreshESP()
	if err != nil {
		return err
	}
	if err := rb.PinPE(r.ctx, esp); err != nil {
		return fmt.Errorf("making the PE the boot default (nothing was deleted): %w", err)
	}
	r.st.Pinned = true
	if err := r.save(); err != nil {
		return err
	}
	r.rep.Printf("  the PE (%s) is now the boot default until bootfiles", bootloader.PEEntry)
	r.rep.Emit(progress.Event{Kind: "refresh", State: "pinned", Msg: bootloader.PEEntry})
	if err := r.hook(s.Name, "pinned"); err != nil {
		return err
	}
	if err := durable.WriteFile(r.stagingPath(cleaningMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := r.env.Backend.Clean(r.ctx, r.st.Target); err != nil {
		return err
	}
	unixSync()
	return nil
}

// refreshESP is the backend's refresh side and the staged root's ESP (or
// BIOS boot partition), where the PE is pinned and unpinned.
func (r *runner) refreshESP() (RefreshBackend, Part, error) {
	rb, err := refreshBackend(r.env.Backend)
	if err != nil {
		return nil, Part{}, err
	}
	esp, ok := espPart(r.st.Parts)
	if !ok {
		return nil, Part{}, errors.New("no ESP known for the staged root")
	}
	return rb, esp, nil
}

// unpin runs after bootfiles in a refresh: the new system's entry is the
// default now, so the PE's default, entry and files go.
func (r *runner) unpin() error {
	rb, esp, err := r.refreshESP()
	if err != nil {
		return err
	}
	if err := rb.UnpinPE(r.ctx, esp); err != nil {
		return fmt.Errorf("removing the PE's boot entry: %w", err)
	}
	r.st.Pinned = false
	r.rep.Printf("  removed the PE's boot entry %s and its files from the ESP", bootloader.PEEntry)
	r.rep.Emit(progress.Event{Kind: "refresh", State: "unpinned", Msg: bootloader.PEEntry})
	return nil
}

// Staged implements RefreshBackend.
func (b *SystemBackend) Staged(ctx context.Context, fsUUID string) (TargetDisk, []Part, error) {
	d, p, err := diskops.FindFilesystem(ctx, b.Discover, fsUUID)
	if err != nil {
		return TargetDisk{}, nil, err
	}
	// GPT: the ESP (UEFI, or a BIOS disk with both loaders); MBR: the
	// FAT partition syslinux boots from.
	name, typ := "esp", "esp"
	e, err := diskops.FindESP(d)
	if err != nil && d.Table != nil && d.Table.Type == "mbr" {
		name, typ = "boot", "fat32"
		e, err = diskops.FindBootPartition(d)
	}
	if err != nil {
		return TargetDisk{}, nil, err
	}
	if e.FS == nil || e.FS.Type != "vfat" {
		return TargetDisk{}, nil, fmt.Errorf("the boot partition %s holds no FAT file system", e.Device)
	}
	part := func(pi *diskops.PartitionInfo, name, typ string) Part {
		return Part{Planned: diskops.Planned{PartitionSpec: diskops.PartitionSpec{Name: name, Type: typ, FS: pi.FS.Type, Label: pi.FS.Label},
			Number: pi.Number, Start: pi.Start, Size: pi.Size, TypeID: pi.Type}, Node: pi.Device, FSUUID: pi.FS.UUID}
	}
	b.mu.Lock()
	b.disk = d.Path
	b.mu.Unlock()
	return TargetDisk{Path: d.Path, Size: d.Size, Desc: diskops.Describe(d)}, []Part{part(e, name, typ), part(p, "root", "linux")}, nil
}

// withESP mounts the ESP on a temporary directory for f.
func (b *SystemBackend) withESP(ctx context.Context, esp Part, f func(dir string) error) error {
	dir, err := os.MkdirTemp("", "minint-esp")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	un, err := b.Mount(ctx, esp, dir)
	if err != nil {
		return fmt.Errorf("mounting the ESP: %w", err)
	}
	err = f(dir)
	unix.Sync()
	if uerr := un(); err == nil {
		err = uerr
	}
	return err
}

// PinPE implements RefreshBackend. Under UEFI: loader.conf's default
// (durable on the disk, survives an NVRAM reset) and LoaderEntryDefault,
// which systemd-boot prefers to loader.conf and which the old system may
// have set to its own entry. Under BIOS: syslinux.cfg's DEFAULT becomes
// the label stage added (bootloader.PELabel), whose boot-once is spent.
func (b *SystemBackend) PinPE(ctx context.Context, esp Part) error {
	return b.withESP(ctx, esp, func(dir string) error {
		if _, err := os.Stat("/sys/firmware/efi"); err != nil {
			old, err := bootloader.SetSyslinuxDefault(dir, bootloader.PELabel)
			if err != nil {
				return err
			}
			b.logf("syslinux.cfg: DEFAULT %s (was %q)", bootloader.PELabel, old)
			return nil
		}
		old, err := bootloader.SetLoaderDefault(dir, bootloader.PEEntry)
		if err != nil {
			return err
		}
		b.logf("loader.conf: default %s (was %q)", bootloader.PEEntry, old)
		if !bootloader.HaveEFIVars(bootloader.DefaultEFIVars) {
			return nil
		}
		v := bootloader.EFIVars{Dir: bootloader.DefaultEFIVars}
		if err := v.SetLoaderDefault(bootloader.PEEntry); err != nil {
			// Without the variable loader.conf decides, unless the old
			// system's own variable overrides it: then it must go.
			if cur, _ := v.LoaderDefault(); cur != "" && cur != bootloader.PEEntry {
				if cerr := v.ClearLoaderDefault(); cerr != nil {
					return fmt.Errorf("LoaderEntryDefault is %q and can be neither set (%v) nor cleared (%v)", cur, err, cerr)
				}
			}
			b.logf("warning: LoaderEntryDefault: %v; relying on loader.conf", err)
		}
		return nil
	})
}

// UnpinPE implements RefreshBackend.
func (b *SystemBackend) UnpinPE(ctx context.Context, esp Part) error {
	if bootloader.HaveEFIVars(bootloader.DefaultEFIVars) {
		v := bootloader.EFIVars{Dir: bootloader.DefaultEFIVars}
		if cur, err := v.LoaderDefault(); err == nil && cur == bootloader.PEEntry {
			if err := v.ClearLoaderDefault(); err != nil {
				return err
			}
		}
	}
	return b.withESP(ctx, esp, func(dir string) error {
		return bootloader.RemoveLoaderEntry(dir, bootloader.PEEntry, bootloader.PEDir)
	})
}

// loadStaged reads the sequence from the staged root (trusted like the
// disk the PE was started from: stage put it there as root).
func loadStaged(ctx context.Context, rb RefreshBackend, b Backend, fsUUID string) (*sequence.Sequence, error) {
	_, parts, err := rb.Staged(ctx, fsUUID)
	if err != nil {
		return nil, fmt.Errorf("minint.staged=UUID=%s: %w", fsUUID, err)
	}
	root, _ := rootPart(parts)
	dir, err := os.MkdirTemp("", "minint-staged")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	un, err := b.Mount(ctx, root, dir)
	if err != nil {
		return nil, fmt.Errorf("mounting the staged root %s: %w", root.Node, err)
	}
	defer un()
	p := filepath.Join(dir, stagedSequence)
	src, err := bounded.ReadFile(p, sequence.MaxSize)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("the staged root %s has no /%s", root.Node, stagedSequence)
		}
		return nil, err
	}
	return sequence.Parse("/"+stagedSequence, src)
}
