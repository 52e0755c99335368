package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
)

// TestDeploySecureBoot is a new computer whose firmware enforces Secure
// Boot with Microsoft's keys (OVMF's ms variables), with minint's ISO
// written to a USB stick: the stick boots through shim, Debian's GRUB and
// kernel; the PE reports Secure Boot on and the kernel locked down,
// deploys an image that carries shim, signed GRUB and the signed kernel,
// and bootfiles installs that chain, so that the deployed system boots
// with Secure Boot on too (its own report reads the SecureBoot variable).
func TestDeploySecureBoot(t *testing.T) {
	t.Parallel()
	f := setup(t)
	root, tree, err := f.sampleRoot(t, "A", "secureboot")
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(t.TempDir(), "pkg")
	if err := f.packageRoot(root, pkg); err != nil {
		t.Fatal(err)
	}
	iso := f.iso(t, sequence("medium:/minint/image/manifest.json", ""), pkg)
	disk := filepath.Join(t.TempDir(), "disk.img")
	v := startVM(t, qemu.Options{ISO: iso, BootFrom: "disk", BootDiskInterface: "usb",
		Firmware: qemu.UEFI, SecureBoot: qemu.SecureBootMicrosoft, Mem: "512M",
		Disks:     []qemu.Disk{{Path: disk, Size: 512 << 20, Boot: true}},
		DiskFirst: true, AllowReboot: true, WorkDir: t.TempDir(),
		// Each wait (the PE's inventory, then deployment, reboot and the
		// deployed system's first boot) may take minutes on a busy host.
		Timeout: 10 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	inv, err := v.WaitEvent(ctx, "the PE's inventory", qemu.IsEvent("inventory", ""))
	if err != nil {
		t.Fatal(err)
	}
	if sb, _ := inv.Data["secure_boot"].(bool); !sb || inv.Data["lockdown"] != "integrity" {
		t.Errorf("PE inventory: secure_boot %v, lockdown %v; want true, integrity", inv.Data["secure_boot"], inv.Data["lockdown"])
	}
	if bm, _ := inv.Data["boot_medium"].(map[string]any); bm == nil || !strings.HasPrefix(bm["device"].(string), "/dev/sd") {
		t.Errorf("boot medium %v, want the USB stick (/dev/sd*)", inv.Data["boot_medium"])
	}
	s := f.waitDeployedTree(t, v, tree)
	if s.SecureBoot != "on" {
		t.Errorf("the deployed system reports Secure Boot %q, want on", s.SecureBoot)
	}
	if st := stepStates(v); st["partition-uefi"] != "done" || st["bootfiles"] != "done" {
		t.Errorf("steps %v: want partition-uefi and bootfiles done", st)
	}
	d := inspect(t, disk)
	for _, want := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/debian/shimx64.efi", "EFI/debian/grubx64.efi", "EFI/debian/grub.cfg"} {
		if !d.has(want) {
			t.Errorf("ESP lacks %s: %v", want, d.Files)
		}
	}
}
