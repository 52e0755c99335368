package bootloader

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/authenticode/authenticodetest"
)

// signedImageRoot lays out an applied image with a Secure Boot chain:
// signed stand-ins (the systemd EFI stub, signed with a test key) for
// shim, MokManager, GRUB and the kernel.
func signedImageRoot(t *testing.T) (root string, signed []byte) {
	t.Helper()
	stub, err := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
	if err != nil {
		t.Skipf("a PE image to sign: %v (package systemd-boot-efi)", err)
	}
	k := authenticodetest.NewKey(t, "test")
	if signed, err = authenticode.Sign(stub, k.Key, k.Cert); err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	for _, f := range []string{ImageShim, ImageMokManager, ImageGrub, "boot/vmlinuz-6.1.0-9-amd64"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755)
		os.WriteFile(filepath.Join(root, f), signed, 0o644)
	}
	os.WriteFile(filepath.Join(root, "boot/initrd.img-6.1.0-9-amd64"), []byte("initrd"), 0o644)
	return root, signed
}

func TestInstallShim(t *testing.T) {
	root, signed := signedImageRoot(t)
	esp := t.TempDir()
	pe := filepath.Join(t.TempDir(), "pe")
	os.MkdirAll(pe, 0o755)
	os.WriteFile(filepath.Join(pe, "vmlinuz"), []byte("pe kernel"), 0o644)
	os.WriteFile(filepath.Join(pe, "initrd"), []byte("pe initrd"), 0o644)
	uuid := "0b3a4bd2-4a1e-4c55-9e0f-2b8d6f1c7a10"
	res, err := InstallShim(context.Background(), ShimOptions{ESP: esp, BootOptions: BootOptions{
		Root: root, RootUUID: uuid, Cmdline: "console=ttyS0 init=/usr/lib/minint/minint-setup",
		Extra: []ExtraEntry{{ID: "minint-pe", Title: "minint PE", Kernel: filepath.Join(pe, "vmlinuz"), Initrd: filepath.Join(pe, "initrd"), Options: "quiet minint.staged=UUID=" + uuid}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kernel.Version != "6.1.0-9-amd64" {
		t.Errorf("kernel %+v", res.Kernel)
	}
	for _, f := range []string{"EFI/debian/shimx64.efi", "EFI/debian/grubx64.efi", "EFI/debian/mmx64.efi",
		"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/BOOT/mmx64.efi"} {
		if b, err := os.ReadFile(filepath.Join(esp, f)); err != nil || !bytes.Equal(b, signed) {
			t.Errorf("%s: %v", f, err)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(esp, ShimGrubConfig))
	for _, want := range []string{
		"search --no-floppy --fs-uuid --set=root " + uuid + "\n",
		"menuentry 'minint deployed system' {\n\tlinux /boot/vmlinuz-6.1.0-9-amd64 root=UUID=" + uuid + " rw console=ttyS0 init=/usr/lib/minint/minint-setup\n\tinitrd /boot/initrd.img-6.1.0-9-amd64\n}\n",
		"menuentry 'minint PE' {\n\tlinux ($esp)/minint-pe/vmlinuz quiet minint.staged=UUID=" + uuid + "\n\tinitrd ($esp)/minint-pe/initrd.img\n}\n",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Index(string(cfg), "set esp=$root") > strings.Index(string(cfg), "search") {
		t.Error("the ESP must be remembered before root moves to the root file system")
	}
}

func TestFindSignedChainRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(root string)
		want  []string
	}{
		{"no shim", func(r string) { os.Remove(filepath.Join(r, ImageShim)) }, []string{"/" + ImageShim, "shim-signed", "not there"}},
		{"no GRUB", func(r string) { os.Remove(filepath.Join(r, ImageGrub)) }, []string{"grub-efi-amd64-signed"}},
		{"unsigned GRUB", func(r string) { os.WriteFile(filepath.Join(r, ImageGrub), []byte("MZ not a PE"), 0o644) }, []string{ImageGrub, "not a valid PE"}},
		{"unsigned kernel", func(r string) {
			stub, _ := os.ReadFile("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
			os.WriteFile(filepath.Join(r, "boot/vmlinuz-6.1.0-9-amd64"), stub, 0o644)
		}, []string{"a signed kernel", "/boot/vmlinuz-6.1.0-9-amd64", "not signed"}},
		{"no kernel", func(r string) { os.RemoveAll(filepath.Join(r, "boot")) }, []string{"a kernel in /boot"}},
		{"everything", func(r string) { os.RemoveAll(filepath.Join(r, "usr")); os.RemoveAll(filepath.Join(r, "boot")) }, []string{"shim-signed", "grub-efi-amd64-signed", "a kernel"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, _ := signedImageRoot(t)
			c.spoil(root)
			esp := t.TempDir()
			_, err := InstallShim(context.Background(), ShimOptions{ESP: esp, BootOptions: BootOptions{Root: root, RootUUID: "0b3a4bd2-4a1e-4c55-9e0f-2b8d6f1c7a10"}})
			if !errors.Is(err, ErrNoSignedChain) {
				t.Fatalf("got %v, want ErrNoSignedChain", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(esp); len(ents) != 0 {
				t.Errorf("the ESP was written to: %v", ents)
			}
		})
	}
}

func TestGrubQuote(t *testing.T) {
	for in, want := range map[string]string{
		"minint":            "minint",
		"minint PE":         "'minint PE'",
		"":                  "''",
		"it's":              `'it'\''s'`,
		"a=$HOME":           "'a=$HOME'",
		"root=UUID=x rw":    "'root=UUID=x rw'",
		"x;reboot":          "'x;reboot'",
		`say "hi" {braces}`: `'say "hi" {braces}'`,
	} {
		if got := GrubQuote(in); got != want {
			t.Errorf("GrubQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := GrubArgs("root=UUID=x rw quiet"); got != "root=UUID=x rw quiet" {
		t.Errorf("plain arguments stay words: %s", got)
	}
	if got := GrubArgs("a=$x b"); got != "'a=$x b'" {
		t.Errorf("GrubArgs with $: %s", got)
	}
}
