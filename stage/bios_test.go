package stage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/bootloader"
)

// The configuration bootloader.WriteBIOSConfig writes.
const biosCfg = `DEFAULT minint
PROMPT 0
TIMEOUT 0

LABEL minint
  MENU LABEL minint sample OS
  LINUX /minint/6.1.0/vmlinuz
  INITRD /minint/6.1.0/initrd.img
  APPEND root=UUID=1 rw console=ttyS0
`

func TestWithPELabel(t *testing.T) {
	once := string(withPELabel([]byte(biosCfg), "minint.done=reboot minint.staged=UUID=abc"))
	want := biosCfg + `
LABEL minint-pe
  MENU LABEL minint PE (refresh)
  LINUX /minint-pe/vmlinuz
  INITRD /minint-pe/initramfs.img
  APPEND minint.done=reboot minint.staged=UUID=abc
`
	if once != want {
		t.Fatalf("got\n%s\nwant\n%s", once, want)
	}
	// Staging again replaces stage's label, nothing else.
	twice := string(withPELabel([]byte(once), "minint.staged=UUID=def"))
	if strings.Count(twice, "LABEL minint-pe") != 1 || !strings.Contains(twice, "APPEND minint.staged=UUID=def\n") ||
		strings.Contains(twice, "UUID=abc") || !strings.HasPrefix(twice, biosCfg) {
		t.Errorf("second stage:\n%s", twice)
	}
	// A label merely starting with ours is not ours.
	other := biosCfg + "\nLABEL minint-pe-old\n  LINUX /x\n"
	if got := string(withPELabel([]byte(other), "x")); !strings.Contains(got, "LABEL minint-pe-old\n  LINUX /x\n") {
		t.Errorf("removed a label that is not stage's:\n%s", got)
	}
}

// TestStageSyslinuxDir stages onto a directory standing in for the
// mounted boot partition (the host kernel has no vfat; the QEMU test
// TestReplace does it on a real one).
func TestStageSyslinuxDir(t *testing.T) {
	o, _ := fakeSystem(t)
	o.staged = "UUID=abc"
	boot, backup := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(boot, "syslinux"), 0o755)
	os.WriteFile(filepath.Join(boot, "syslinux/syslinux.cfg"), []byte(biosCfg), 0o644)
	if hasSyslinux(boot) {
		t.Fatal("hasSyslinux: true without ldlinux.sys")
	}
	os.WriteFile(filepath.Join(boot, "syslinux/ldlinux.sys"), make([]byte, 4096), 0o444)
	if !hasSyslinux(boot) {
		t.Fatal("hasSyslinux: false with syslinux.cfg and ldlinux.sys")
	}
	if err := o.stageSyslinux(boot, backup); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		filepath.Join(boot, "minint-pe/vmlinuz"):            "kernel",
		filepath.Join(boot, "minint-pe/initramfs.img"):      "initramfs",
		filepath.Join(backup, "boot/syslinux/syslinux.cfg"): biosCfg,
		filepath.Join(boot, "syslinux/syslinux.cfg"):        string(withPELabel([]byte(biosCfg), "minint.done=reboot minint.staged=UUID=abc")),
	} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}

// FuzzWithPELabel: whatever the configuration, the result has exactly one
// stage label, keeps every line that is not part of an earlier stage
// label, and staging twice gives the same file.
func FuzzWithPELabel(f *testing.F) {
	f.Add(biosCfg, "minint.staged=UUID=abc")
	f.Add(biosCfg+"\nLABEL minint-pe\n  LINUX /x\n\tAPPEND y\nLABEL z\n", "a")
	f.Add("", "")
	f.Add("label minint-pe\n  kernel /k\n", "x")
	f.Fuzz(func(t *testing.T, cfg, cmdline string) {
		if strings.ContainsAny(cmdline, "\n\r") {
			return // stage never puts a newline in a command line
		}
		once := withPELabel([]byte(cfg), cmdline)
		if twice := withPELabel(once, cmdline); string(twice) != string(once) {
			t.Fatalf("not idempotent:\n%q\n%q", once, twice)
		}
		n := 0
		for _, l := range strings.Split(string(once), "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.EqualFold(f[0], "LABEL") && f[1] == bootloader.PELabel {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d stage labels in\n%s", n, once)
		}
		for _, l := range strings.Split(cfg, "\n") {
			if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") &&
				!(len(f) == 2 && strings.EqualFold(f[0], "LABEL") && f[1] == bootloader.PELabel) && !strings.Contains(string(once), l) {
				t.Fatalf("line %q lost:\n%s", l, once)
			}
		}
	})
}
