package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/durable"
)

// maxConfig bounds the boot configurations read here: in a refresh they
// are the old system's, which whoever ran it could have made any size,
// and a PE that ran out of memory reading one would stop without saying
// why.
const maxConfig = 1 << 20

// The persistent boot default of an in-place refresh: the staged PE's
// entry is made the default while the old system is replaced, so that a
// power cut boots the PE again instead of a half-deleted system, and the
// new system's entry takes over once it is in place.

// SetSyslinuxDefault makes label the DEFAULT of syslinux/syslinux.cfg on
// the mounted boot partition, durably (the BIOS counterpart of
// SetLoaderDefault), and returns the previous default. The label must be
// defined in the file.
func SetSyslinuxDefault(bootDir, label string) (old string, err error) {
	if label == "" || strings.ContainsAny(label, " \t\n") {
		return "", fmt.Errorf("%w: syslinux label %q", diskops.ErrUnsafePath, label)
	}
	cfg := filepath.Join(bootDir, "syslinux/syslinux.cfg")
	b, err := bounded.ReadFile(cfg, maxConfig)
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
		return "", fmt.Errorf("%w: %s defines no label %s", diskops.ErrNotFound, cfg, label)
	}
	out = append([]string{"DEFAULT " + label}, out...)
	return old, durable.WriteFile(cfg, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// SetLoaderDefault makes systemd-boot's loader.conf on the mounted ESP
// name entry (e.g. "minint-pe.conf") as its default, keeping the file's
// other lines, and returns the previous default ("" if none). The file is
// replaced atomically and synced, so after a power cut it holds either
// the old or the new default. The entry must exist: a default naming a
// missing entry would make systemd-boot fall back to whatever it finds.
func SetLoaderDefault(esp, entry string) (old string, err error) {
	if entry == "" || strings.ContainsAny(entry, "/\n") {
		return "", fmt.Errorf("%w: loader entry %q", diskops.ErrUnsafePath, entry)
	}
	if _, err := os.Stat(filepath.Join(esp, "loader/entries", entry)); err != nil {
		return "", fmt.Errorf("loader entry %s: %w", entry, err)
	}
	conf := filepath.Join(esp, "loader/loader.conf")
	b, err := bounded.ReadFile(conf, maxConfig)
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
	return old, durable.WriteFile(conf, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// RemoveLoaderEntry deletes loader/entries/<entry> and the directories
// (relative to the ESP) that held its files; missing ones are fine.
func RemoveLoaderEntry(esp, entry string, dirs ...string) error {
	if entry == "" || strings.ContainsAny(entry, "/\n") {
		return fmt.Errorf("%w: loader entry %q", diskops.ErrUnsafePath, entry)
	}
	var errs []error
	if err := os.Remove(filepath.Join(esp, "loader/entries", entry)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, d := range dirs {
		if d == "" || filepath.IsAbs(d) || strings.HasPrefix(filepath.Clean(d), "..") || filepath.Clean(d) == "." {
			errs = append(errs, fmt.Errorf("%w: ESP directory %q", diskops.ErrUnsafePath, d))
			continue
		}
		if err := os.RemoveAll(filepath.Join(esp, d)); err != nil {
			errs = append(errs, err)
		}
	}
	durable.SyncDir(filepath.Join(esp, "loader/entries"))
	durable.SyncDir(esp)
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
