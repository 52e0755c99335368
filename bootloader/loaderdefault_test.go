package bootloader

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/disktest"
)

func TestSetLoaderDefault(t *testing.T) {
	esp := t.TempDir()
	disktest.WriteFile(t, filepath.Join(esp, "loader/entries/minint.conf"), "title old\n")
	if _, err := SetLoaderDefault(esp, "minint-pe.conf"); err == nil {
		t.Fatal("a default naming a missing entry was accepted")
	}
	if _, err := os.Stat(filepath.Join(esp, "loader/loader.conf")); !os.IsNotExist(err) {
		t.Error("the refused default still wrote loader.conf")
	}
	disktest.WriteFile(t, filepath.Join(esp, "loader/entries/minint-pe.conf"), "title PE\n")
	disktest.WriteFile(t, filepath.Join(esp, "loader/loader.conf"), "timeout 3\ndefault   minint.conf\neditor no\n")
	old, err := SetLoaderDefault(esp, "minint-pe.conf")
	if err != nil {
		t.Fatal(err)
	}
	if old != "minint.conf" {
		t.Errorf("old default %q", old)
	}
	b, _ := os.ReadFile(filepath.Join(esp, "loader/loader.conf"))
	if string(b) != "default minint-pe.conf\ntimeout 3\neditor no\n" {
		t.Errorf("loader.conf:\n%s", b)
	}
	if ents, _ := os.ReadDir(filepath.Join(esp, "loader")); len(ents) != 2 {
		t.Errorf("leftover temporary files: %v", ents)
	}
	// Idempotent: a redo after a power cut sees its own default.
	if old, err := SetLoaderDefault(esp, "minint-pe.conf"); err != nil || old != "minint-pe.conf" {
		t.Errorf("again: %q, %v", old, err)
	}
	for _, bad := range []string{"", "../x.conf", "a\nb"} {
		if _, err := SetLoaderDefault(esp, bad); !errors.Is(err, diskops.ErrUnsafePath) {
			t.Errorf("entry %q: %v", bad, err)
		}
	}
}

func TestRemoveLoaderEntry(t *testing.T) {
	esp := t.TempDir()
	disktest.WriteFile(t, filepath.Join(esp, "loader/entries/minint-pe.conf"), "title PE\n")
	disktest.WriteFile(t, filepath.Join(esp, "loader/entries/minint.conf"), "title new\n")
	disktest.WriteFile(t, filepath.Join(esp, "minint-pe/vmlinuz"), "k")
	disktest.WriteFile(t, filepath.Join(esp, "minint/6.1/vmlinuz"), "k")
	if err := RemoveLoaderEntry(esp, "minint-pe.conf", "minint-pe"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"loader/entries/minint-pe.conf": false, "minint-pe": false, "loader/entries/minint.conf": true, "minint/6.1/vmlinuz": true} {
		if _, err := os.Stat(filepath.Join(esp, p)); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
	// Already gone: fine (a redo).
	if err := RemoveLoaderEntry(esp, "minint-pe.conf", "minint-pe"); err != nil {
		t.Errorf("redo: %v", err)
	}
	for _, d := range []string{"/", "..", "../x", "."} {
		if err := RemoveLoaderEntry(esp, "minint-pe.conf", d); !errors.Is(err, diskops.ErrUnsafePath) {
			t.Errorf("dir %q: %v", d, err)
		}
	}
}

func TestLoaderDefaultVariable(t *testing.T) {
	v := EFIVars{Dir: t.TempDir()}
	if got, err := v.LoaderDefault(); err != nil || got != "" {
		t.Errorf("unset: %q, %v", got, err)
	}
	if err := v.SetLoaderDefault("minint-pe.conf"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(v.Dir, "LoaderEntryDefault-"+systemdBootGUID))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := decodeUTF16z(raw[4:]); s != "minint-pe.conf" || raw[0] != efiAttrNVBSRT {
		t.Errorf("variable % x", raw)
	}
	if got, err := v.LoaderDefault(); err != nil || got != "minint-pe.conf" {
		t.Errorf("read back %q, %v", got, err)
	}
	if err := v.ClearLoaderDefault(); err != nil {
		t.Fatal(err)
	}
	if got, err := v.LoaderDefault(); err != nil || got != "" {
		t.Errorf("after clear: %q, %v", got, err)
	}
	if err := v.ClearLoaderDefault(); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
}

func TestSetSyslinuxDefault(t *testing.T) {
	dir := t.TempDir()
	cfg := "DEFAULT minint\nPROMPT 0\nTIMEOUT 0\n\nLABEL minint\n  LINUX /minint/6.1/vmlinuz\n"
	disktest.WriteFile(t, filepath.Join(dir, "syslinux/syslinux.cfg"), cfg)
	if _, err := SetSyslinuxDefault(dir, "minint-pe"); !errors.Is(err, diskops.ErrNotFound) {
		t.Errorf("undefined label: %v", err)
	}
	disktest.WriteFile(t, filepath.Join(dir, "syslinux/syslinux.cfg"), cfg+"\nLABEL minint-pe\n  LINUX /minint-pe/vmlinuz\n")
	old, err := SetSyslinuxDefault(dir, "minint-pe")
	if err != nil || old != "minint" {
		t.Fatalf("old %q, %v", old, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "syslinux/syslinux.cfg"))
	if want := "DEFAULT minint-pe\nPROMPT 0\nTIMEOUT 0\n\nLABEL minint\n  LINUX /minint/6.1/vmlinuz\n\nLABEL minint-pe\n  LINUX /minint-pe/vmlinuz\n"; string(b) != want {
		t.Errorf("syslinux.cfg:\n%s\nwant\n%s", b, want)
	}
}

// TestDefaultConfigBounded: a refresh reads the old system's boot
// configuration within a bound, refuses a larger one with ErrTooLarge and
// leaves it as it was.
func TestDefaultConfigBounded(t *testing.T) {
	esp := t.TempDir()
	disktest.WriteFile(t, filepath.Join(esp, "loader/entries/minint-pe.conf"), "title PE\n")
	big := filepath.Join(esp, "loader/loader.conf")
	disktest.WriteFile(t, big, "default minint.conf\n")
	os.Truncate(big, maxConfig+1)
	if _, err := SetLoaderDefault(esp, "minint-pe.conf"); !errors.Is(err, bounded.ErrTooLarge) {
		t.Errorf("loader.conf of %d bytes: %v", maxConfig+1, err)
	}
	cfg := filepath.Join(esp, "syslinux/syslinux.cfg")
	disktest.WriteFile(t, cfg, "DEFAULT minint\nLABEL minint-pe\n")
	os.Truncate(cfg, maxConfig+1)
	if _, err := SetSyslinuxDefault(esp, "minint-pe"); !errors.Is(err, bounded.ErrTooLarge) {
		t.Errorf("syslinux.cfg of %d bytes: %v", maxConfig+1, err)
	}
	for _, f := range []string{big, cfg} {
		if fi, err := os.Stat(f); err != nil || fi.Size() != maxConfig+1 {
			t.Errorf("%s changed: %v %v", f, fi, err)
		}
	}
}
