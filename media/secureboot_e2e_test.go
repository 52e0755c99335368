package media_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/authenticode/authenticodetest"
	"github.com/minint/minint/media"
	"github.com/minint/minint/qemu"
)

// TestSecureBootOwnKey boots unified kernel images over the network on
// OVMF whose db holds only the ovmf package's snakeoil test key, as an
// organization's machines would hold its own key: the UKI minint signed
// with that key boots the PE (which reports Secure Boot on), while the
// same UKI unsigned, or signed with another key, is refused by the
// firmware itself — the test waits for the firmware's own message.
func TestSecureBootOwnKey(t *testing.T) {
	e2eISO(t)
	ctx := context.Background()
	dir := t.TempDir()
	// The snakeoil key ships encrypted (password "snakeoil"); an
	// organization hands minint a decrypted copy in a protected file.
	key := filepath.Join(dir, "snakeoil.key")
	if msg, err := exec.Command("openssl", "pkey", "-in", qemu.SnakeoilKey, "-passin", "pass:snakeoil", "-out", key).CombinedOutput(); err != nil {
		t.Fatalf("decrypting the snakeoil key: %v\n%s", err, msg)
	}
	tftp := filepath.Join(dir, "tftp")
	nb, err := media.BuildNetboot(ctx, media.NetbootOptions{Options: media.Options{
		Kernel: isoPE.Kernel, Initramfs: isoPE.Initramfs, Cmdline: "minint.net=0 minint.events=serial minint.failwait=0",
		SecureBootKey: key, SecureBootCert: qemu.SnakeoilCert}}, tftp)
	if err != nil {
		t.Fatal(err)
	}
	// The same UKI, unsigned, and signed with a key the firmware does not know.
	unsigned := filepath.Join(tftp, "unsigned.efi")
	if err := (media.UKI{Stub: media.DefaultHostPaths.EFIStub, Kernel: isoPE.Kernel, Initramfs: isoPE.Initramfs,
		Cmdline: nb.Cmdline}).Build(ctx, "objcopy", dir, unsigned); err != nil {
		t.Fatal(err)
	}
	img, _ := os.ReadFile(unsigned)
	other := authenticodetest.NewKey(t, "not in db")
	foreign, err := authenticode.Sign(img, other.Key, other.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tftp, "foreign.efi"), foreign, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("signed-boots", func(t *testing.T) {
		res, err := qemu.Run(ctx, qemu.Options{BootFrom: "net", TFTPDir: tftp, BootFile: media.NetbootUKI,
			Firmware: qemu.UEFI, SecureBoot: qemu.SecureBootSnakeoil, Timeout: 6 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("banner at %.1fs, done at %.1fs", res.Banner.Seconds(), res.Done.Seconds())
		for _, e := range res.Events {
			if e.Kind == "inventory" {
				checkSecureBoot(t, &e, true)
				return
			}
		}
		t.Error("no inventory event")
	})
	refused := regexp.MustCompile(`failed to (load|start) Boot[0-9A-F]{4} .*: (Access Denied|Security Violation)`)
	for _, c := range []struct{ name, file string }{
		{"unsigned-refused", "unsigned.efi"},
		{"foreign-key-refused", "foreign.efi"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vm, err := qemu.Start(ctx, qemu.Options{BootFrom: "net", TFTPDir: tftp, BootFile: c.file,
				Firmware: qemu.UEFI, SecureBoot: qemu.SecureBootSnakeoil})
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Kill()
			wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
			defer cancel()
			banner := qemu.BannerRE
			line, err := vm.WaitFor(wctx, regexp.MustCompile(refused.String()+`|`+banner.String()))
			if err != nil {
				t.Fatalf("no refusal from the firmware: %v", err)
			}
			if banner.MatchString(line.Text) {
				t.Fatalf("the firmware started %s: %s", c.file, line.Text)
			}
			t.Logf("firmware at %.1fs: %s", line.At.Seconds(), line.Text)
		})
	}
}
