package diskops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// What an in-place refresh needs from the disks: find the file system
// `minint stage` prepared (by its UUID, since device names may differ
// between the old system and the PE), the ESP beside it, and make the
// staged PE's systemd-boot entry the persistent default while the old
// system is replaced, so that a power cut boots the PE again instead of a
// half-deleted system.

// FindFilesystem finds the partition whose file system has the given UUID
// (case-insensitive) among the disks Discover lists. It refuses when none
// or several match, naming every file system it saw. Boot media are
// skipped: the staged root is never on the PE's own medium.
func FindFilesystem(ctx context.Context, o DiscoverOptions, uuid string) (*Disk, *PartitionInfo, error) {
	uuid = strings.ToLower(strings.TrimSpace(uuid))
	if uuid == "" {
		return nil, nil, fmt.Errorf("%w: empty file system UUID", ErrNotFound)
	}
	disks, err := Discover(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	type hit struct {
		d *Disk
		i int
	}
	var hits []hit
	var seen []string
	for _, d := range disks {
		if d.BootMedium || d.Kind == "rom" {
			continue
		}
		if d.FS != nil && strings.ToLower(d.FS.UUID) == uuid && d.Table == nil {
			return nil, nil, fmt.Errorf("%w: the file system %s fills the whole disk %s (no partition table, so no ESP beside it)", ErrNotFound, uuid, d.Path)
		}
		for i, p := range d.Partitions() {
			if p.FS == nil {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %s %s", partName(d, p), p.FS.Type, p.FS.UUID))
			if strings.ToLower(p.FS.UUID) == uuid {
				hits = append(hits, hit{d, i})
			}
		}
	}
	switch len(hits) {
	case 0:
		if len(seen) == 0 {
			seen = []string{"(no file systems at all)"}
		}
		return nil, nil, fmt.Errorf("%w: no file system with UUID %s; found:\n  %s", ErrNotFound, uuid, strings.Join(seen, "\n  "))
	case 1:
		return hits[0].d, &hits[0].d.Table.Partitions[hits[0].i], nil
	}
	var c []string
	for _, h := range hits {
		c = append(c, partName(h.d, h.d.Table.Partitions[h.i]))
	}
	// A cloned disk carries the same UUIDs: guessing could clean the
	// wrong machine's data.
	return nil, nil, fmt.Errorf("%w: file system UUID %s is on %s (cloned disks?)", ErrAmbiguous, uuid, strings.Join(c, ", "))
}

func partName(d *Disk, p PartitionInfo) string {
	if p.Device != "" {
		return p.Device
	}
	return fmt.Sprintf("%s partition %d", d.Path, p.Number)
}

// FindESP returns the EFI system partition of d: the one GPT partition of
// type ESP. It refuses when there is none or several.
func FindESP(d *Disk) (*PartitionInfo, error) {
	var idx []int
	for i, p := range d.Partitions() {
		if p.TypeName == "esp" {
			idx = append(idx, i)
		}
	}
	switch len(idx) {
	case 0:
		return nil, fmt.Errorf("%w: %s has no EFI system partition", ErrNotFound, d.Path)
	case 1:
		return &d.Table.Partitions[idx[0]], nil
	}
	var c []string
	for _, i := range idx {
		c = append(c, partName(d, d.Table.Partitions[i]))
	}
	return nil, fmt.Errorf("%w: %s has several EFI system partitions: %s", ErrAmbiguous, d.Path, strings.Join(c, ", "))
}

// FindBootPartition returns the FAT partition an MBR disk's syslinux boots
// from (minint's BIOS layout has exactly one): the one partition with a
// FAT file system. It refuses when there is none or several.
func FindBootPartition(d *Disk) (*PartitionInfo, error) {
	var idx []int
	for i, p := range d.Partitions() {
		if p.FS != nil && p.FS.Type == "vfat" {
			idx = append(idx, i)
		}
	}
	switch len(idx) {
	case 0:
		return nil, fmt.Errorf("%w: %s has no FAT boot partition", ErrNotFound, d.Path)
	case 1:
		return &d.Table.Partitions[idx[0]], nil
	}
	var c []string
	for _, i := range idx {
		c = append(c, partName(d, d.Table.Partitions[i]))
	}
	return nil, fmt.Errorf("%w: %s has several FAT partitions: %s", ErrAmbiguous, d.Path, strings.Join(c, ", "))
}

// SetSyslinuxDefault makes label the DEFAULT of syslinux/syslinux.cfg on
// the mounted boot partition, durably (the BIOS counterpart of
// SetLoaderDefault), and returns the previous default. The label must be
// defined in the file.
func SetSyslinuxDefault(bootDir, label string) (old string, err error) {
	if label == "" || strings.ContainsAny(label, " \t\n") {
		return "", fmt.Errorf("%w: syslinux label %q", ErrUnsafePath, label)
	}
	cfg := filepath.Join(bootDir, "syslinux/syslinux.cfg")
	b, err := os.ReadFile(cfg)
	if err != nil {
		return "", err
	}
	var out []string
	found := false
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.EqualFold(f[0], "LABEL") && f[1] == label {
			found = true
		}
		if len(f) >= 1 && strings.EqualFold(f[0], "DEFAULT") {
			if len(f) > 1 && old == "" {
				old = f[1]
			}
			continue
		}
		out = append(out, l)
	}
	if !found {
		return "", fmt.Errorf("%w: %s defines no label %s", ErrNotFound, cfg, label)
	}
	out = append([]string{"DEFAULT " + label}, out...)
	return old, WriteFileSync(cfg, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// SetLoaderDefault makes systemd-boot's loader.conf on the mounted ESP
// name entry (e.g. "minint-pe.conf") as its default, keeping the file's
// other lines, and returns the previous default ("" if none). The file is
// replaced atomically and synced, so after a power cut it holds either
// the old or the new default. The entry must exist: a default naming a
// missing entry would make systemd-boot fall back to whatever it finds.
func SetLoaderDefault(esp, entry string) (old string, err error) {
	if entry == "" || strings.ContainsAny(entry, "/\n") {
		return "", fmt.Errorf("%w: loader entry %q", ErrUnsafePath, entry)
	}
	if _, err := os.Stat(filepath.Join(esp, "loader/entries", entry)); err != nil {
		return "", fmt.Errorf("loader entry %s: %w", entry, err)
	}
	conf := filepath.Join(esp, "loader/loader.conf")
	b, err := os.ReadFile(conf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 1 && f[0] == "default" {
			if len(f) > 1 {
				old = f[1]
			}
			continue
		}
		if l != "" {
			out = append(out, l)
		}
	}
	out = append([]string{"default " + entry}, out...)
	return old, WriteFileSync(conf, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// RemoveLoaderEntry deletes loader/entries/<entry> and the directories
// (relative to the ESP) that held its files; missing ones are fine.
func RemoveLoaderEntry(esp, entry string, dirs ...string) error {
	if entry == "" || strings.ContainsAny(entry, "/\n") {
		return fmt.Errorf("%w: loader entry %q", ErrUnsafePath, entry)
	}
	var errs []error
	if err := os.Remove(filepath.Join(esp, "loader/entries", entry)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, d := range dirs {
		if d == "" || filepath.IsAbs(d) || strings.HasPrefix(filepath.Clean(d), "..") || filepath.Clean(d) == "." {
			errs = append(errs, fmt.Errorf("%w: ESP directory %q", ErrUnsafePath, d))
			continue
		}
		if err := os.RemoveAll(filepath.Join(esp, d)); err != nil {
			errs = append(errs, err)
		}
	}
	syncDir(filepath.Join(esp, "loader/entries"))
	syncDir(esp)
	return errors.Join(errs...)
}

// SetLoaderDefault sets systemd-boot's LoaderEntryDefault variable (what
// `bootctl set-default` writes), which takes precedence over loader.conf.
func (v EFIVars) SetLoaderDefault(entry string) error {
	return v.Set("LoaderEntryDefault", systemdBootGUID, utf16le(entry))
}

// LoaderDefault reads LoaderEntryDefault ("" when unset).
func (v EFIVars) LoaderDefault() (string, error) {
	b, err := v.Get("LoaderEntryDefault", systemdBootGUID)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return utf16zString(b), nil
}

// ClearLoaderDefault removes LoaderEntryDefault (no error when unset).
func (v EFIVars) ClearLoaderDefault() error { return v.Delete("LoaderEntryDefault", systemdBootGUID) }

// Delete removes a variable, clearing the immutable flag efivarfs puts on
// it first; a missing variable is not an error.
func (v EFIVars) Delete(name, guid string) error {
	p := v.path(name, guid)
	clearImmutable(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("efivar %s: %w", name, err)
	}
	return nil
}

func utf16zString(b []byte) string {
	var r []rune
	for i := 0; i+1 < len(b); i += 2 {
		c := rune(b[i]) | rune(b[i+1])<<8
		if c == 0 {
			break
		}
		r = append(r, c)
	}
	return string(r)
}

// WriteFileSync replaces name with data durably: temporary file, fsync,
// rename, fsync of the directory.
func WriteFileSync(name string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + ".minint-new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
