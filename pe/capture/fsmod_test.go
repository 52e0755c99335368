package capture

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/kmod"
)

// fakeKernel points LoadFilesystem at a fake /proc/filesystems and module
// tree; loading a module "registers" the file systems in registers.
func fakeKernel(t *testing.T, registers map[string]string) (loaded *[]string) {
	t.Helper()
	dir := t.TempDir()
	proc := filepath.Join(dir, "filesystems")
	os.WriteFile(proc, []byte("nodev\tsysfs\nnodev\tproc\n\text4\n"), 0o644)
	mods := filepath.Join(dir, "modules")
	os.MkdirAll(mods, 0o755)
	os.WriteFile(filepath.Join(mods, kmod.DepFile), []byte("kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\nkernel/lib/libcrc32c.ko:\nkernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko\n"), 0o644)
	os.WriteFile(filepath.Join(mods, kmod.AliasFile), []byte("alias fs-xfs xfs\nalias fs-btrfs btrfs\n"), 0o644)
	var got []string
	saved := []any{procFilesystems, modulesDir, loadModule}
	procFilesystems = proc
	modulesDir = func() string { return mods }
	loadModule = func(db *kmod.DB, name string) error {
		ms, err := db.Resolve(name)
		if err != nil {
			return err
		}
		got = append(got, ms...)
		if fs, ok := registers[name]; ok {
			f, _ := os.OpenFile(proc, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("\t" + fs + "\n")
			f.Close()
		}
		return nil
	}
	t.Cleanup(func() {
		procFilesystems = saved[0].(string)
		modulesDir = saved[1].(func() string)
		loadModule = saved[2].(func(*kmod.DB, string) error)
	})
	return &got
}

func TestLoadFilesystem(t *testing.T) {
	loaded := fakeKernel(t, map[string]string{"fs-xfs": "xfs"})
	if err := LoadFilesystem("ext4"); err != nil || len(*loaded) != 0 {
		t.Errorf("ext4 (known): %v, loaded %v", err, *loaded)
	}
	if err := LoadFilesystem("xfs"); err != nil || strings.Join(*loaded, " ") != "libcrc32c xfs" {
		t.Errorf("xfs: %v, loaded %v; want libcrc32c then xfs", err, *loaded)
	}
	// Known now: not loaded twice.
	if err := LoadFilesystem("xfs"); err != nil || len(*loaded) != 2 {
		t.Errorf("xfs again: %v, loaded %v", err, *loaded)
	}
	// A module that loads but registers nothing is reported, not trusted.
	if err := LoadFilesystem("btrfs"); err == nil || !strings.Contains(err.Error(), "still does not list") {
		t.Errorf("btrfs not registered: %v", err)
	}
	if err := LoadFilesystem("zfs"); !errors.Is(err, errNoFSModule) {
		t.Errorf("zfs: %v", err)
	}
	modulesDir = func() string { return filepath.Join(t.TempDir(), "none") }
	if err := LoadFilesystem("f2fs"); !errors.Is(err, errNoFSModule) || !strings.Contains(err.Error(), "module index") {
		t.Errorf("no module tree: %v", err)
	}
}
