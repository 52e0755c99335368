package bootloader

import (
	"bytes"
	"context"
	"fmt"
	"github.com/minint/minint/internal/child"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/disktest"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// hostKernel is this host's newest kernel (scripts/setup-host.sh installs
// it), whose modules the guests load.
func hostKernel(t *testing.T) (path, version string) {
	t.Helper()
	k, err := FindKernel("/")
	if err != nil {
		t.Skipf("no host kernel (scripts/setup-host.sh): %v", err)
	}
	return k.Path, k.Version
}

// tinyInitrd is a gzip'd cpio with busybox and an /init that prints a
// marker with the kernel command line and powers off.
func tinyInitrd(t *testing.T, guestArgs ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	os.MkdirAll(filepath.Join(dir, "dev"), 0o755)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("busybox-static: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755)
	last := "/bin/busybox poweroff -f\n"
	if len(guestArgs) > 0 {
		// The one-shot driver, built static for the guest.
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "bin/efiguest"), "./testdata/efiguest")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the guest program: %v\n%s", err, out)
		}
		q := make([]string, len(guestArgs))
		for i, a := range guestArgs {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		// efivarfs is a module in Debian's kernel.
		_, kver := hostKernel(t)
		ko, err := os.ReadFile("/lib/modules/" + kver + "/kernel/fs/efivarfs/efivarfs.ko")
		if err != nil {
			t.Skipf("efivarfs module: %v", err)
		}
		os.WriteFile(filepath.Join(dir, "efivarfs.ko"), ko, 0o644)
		last = "/bin/busybox insmod /efivarfs.ko\n/bin/efiguest " + strings.Join(q, " ") + "\n" + last
	}
	os.WriteFile(filepath.Join(dir, "init"), []byte("#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n"+
		"echo \"MININT-BOOTED cmdline=[$(/bin/busybox cat /proc/cmdline)]\"\n"+last), 0o755)
	cmd := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	return out
}

// bootQEMU boots img and returns the console output once the marker line
// appeared (or fails after a timeout).
// With persist the guest's writes reach img; reboots are allowed and the
// run lasts until the guest powers off.
func bootQEMU(t *testing.T, img, firmware string, persist bool) string {
	t.Helper()
	args := []string{"-accel", "tcg", "-m", "256", "-nographic", "-serial", "stdio", "-monitor", "none", "-net", "none",
		"-drive", "file=" + img + ",format=raw,if=virtio"}
	if !persist {
		args = append(args, "-snapshot")
	}
	if firmware == "uefi" {
		vars := filepath.Join(t.TempDir(), "vars.fd")
		b, err := os.ReadFile(ovmfVars)
		if err != nil {
			t.Skipf("OVMF: %v", err)
		}
		os.WriteFile(vars, b, 0o644)
		args = append(args, "-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode, "-drive", "if=pflash,format=raw,file="+vars)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := child.Run(cmd) // no guest left behind by a killed test
	s := out.String()
	if !strings.Contains(s, "MININT-BOOTED") {
		t.Fatalf("%s boot: no marker (%v); console tail:\n%s", firmware, err, tail(s, 3000))
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestBootFilesQEMU lays a tiny applied root on a disk image with this
// package (GPT: ESP + ext4 root), writes the boot files for both firmwares
// and boots the image in QEMU under SeaBIOS and OVMF: each must start the
// newest kernel with root=UUID=<root> rw and the extra command line.
func TestBootFilesQEMU(t *testing.T) {
	disktest.NeedE2E(t)
	hk, kver := hostKernel(t)
	for _, p := range []string{hk, ovmfCode, "/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "/usr/lib/syslinux/mbr/gptmbr.bin"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (scripts/setup-host.sh)", p)
		}
	}
	disktest.NeedTool(t, "syslinux")
	disktest.NeedTool(t, "mcopy")
	disktest.NeedTool(t, "qemu-system-x86_64")
	ctx := context.Background()
	tg := imageTarget(t, 160<<20)
	l, err := diskops.ParseLayout([]byte(`partitions:
  - {name: esp, size: 64M, type: esp, fs: vfat, label: ESP}
  - {name: root, size: rest, type: linux, fs: ext4, label: root}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := diskops.Partition(ctx, tg, l, diskops.PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fss, err := diskops.FormatPartitions(ctx, tg, res, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootUUID := fss[1].UUID
	tab, err := diskops.ReadTable(tg.File, tg.Size, 512)
	if err != nil {
		t.Fatal(err)
	}
	espPart := tab.Partitions[0]
	tg.Close()

	// The applied root: the real kernel as the newest version, an older
	// decoy that must not be chosen, and a staging folder. Its initrd
	// drives the one-shot switches from inside the UEFI guest.
	mnt := filepath.Join(t.TempDir(), "root")
	m, err := diskops.Mount(tg.Path, mnt, diskops.MountOptions{Offset: res.Partitions[1].Start, Size: res.Partitions[1].Size})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	kernel, _ := os.ReadFile(hk)
	initrd := tinyInitrd(t, "-esp-num", "1", "-esp-start", fmt.Sprint(espPart.Start), "-esp-size", fmt.Sprint(espPart.Size), "-esp-partuuid", espPart.UUID,
		"-kernel", `\minint\`+kver+`\vmlinuz`, "-args", `initrd=\minint\`+kver+`\initrd.img console=ttyS0 minint.fw=bootnext`)
	disktest.WriteFile(t, filepath.Join(mnt, "boot/vmlinuz-"+kver), string(kernel))
	disktest.WriteFile(t, filepath.Join(mnt, "boot/initrd.img-"+kver), string(initrd))
	disktest.WriteFile(t, filepath.Join(mnt, "boot/vmlinuz-6.1.0-9-amd64"), "decoy: not a kernel")
	disktest.WriteFile(t, filepath.Join(mnt, "boot/initrd.img-6.1.0-9-amd64"), "decoy")
	os.MkdirAll(filepath.Join(mnt, "minint"), 0o755)

	// The ESP is built in a directory (the host kernel has no vfat), with
	// an old loader in place that must be backed up.
	esp := t.TempDir()
	disktest.WriteFile(t, filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), "previous loader")
	base := BootOptions{Root: mnt, RootUUID: rootUUID, Now: func() time.Time { return time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC) },
		Extra: []ExtraEntry{{ID: "other", Kernel: hk, Initrd: filepath.Join(mnt, "boot/initrd.img-"+kver), Options: "console=ttyS0 minint.fw=oneshot"}}}
	uo := UEFIOptions{BootOptions: base, ESP: esp}
	uo.Cmdline = "console=ttyS0 minint.fw=uefi"
	ur, err := InstallUEFI(ctx, uo)
	if err != nil {
		t.Fatal(err)
	}
	if ur.Kernel.Version != kver {
		t.Errorf("chose kernel %s", ur.Kernel.Version)
	}
	backup := filepath.Join(mnt, "minint/bootfiles-backup/20261128T090000Z/esp/EFI/BOOT/BOOTX64.EFI")
	if b, err := os.ReadFile(backup); err != nil || string(b) != "previous loader" {
		t.Errorf("backup of the old loader: %q, %v (backed up: %v)", b, err, ur.BackedUp)
	}
	bo := BIOSOptions{BootOptions: base, BootDir: esp}
	bo.Cmdline = "console=ttyS0 minint.fw=bios"
	if _, err := WriteBIOSConfig(ctx, bo); err != nil {
		t.Fatal(err)
	}
	// BIOS the way the PE does it: no syslinux program, a captured payload
	// written as files, then patched in place.
	payload, err := CaptureSyslinux(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := payload.WriteFiles(esp); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(esp, "*"))
	espSpec := tg.Path + "@@" + fmt.Sprint(res.Partitions[0].Start)
	disktest.Run(t, "mcopy", append([]string{"-s", "-i", espSpec}, append(ents, "::/")...)...)
	if _, err := InstallSyslinux(ctx, SyslinuxOptions{Disk: tg.Path, Partition: 1, BackupDir: t.TempDir(), Payload: payload, Syslinux: "/nonexistent/syslinux", SyslinuxDir: "/nonexistent"}); err != nil {
		t.Fatal(err)
	}
	if out := disktest.Run(t, "sgdisk", "-A", "1:show", tg.Path); !strings.Contains(out, "legacy BIOS bootable") {
		t.Errorf("partition 1 attributes: %s", out)
	}
	disktest.Run(t, "sgdisk", "-v", tg.Path)
	esppart := extract(t, tg.Path, res.Partitions[0])
	if out := disktest.Run(t, "fsck.vfat", "-n", esppart); !disktest.FsckVFATClean(out) {
		t.Errorf("ESP after installing boot files:\n%s", out)
	}

	want := regexp.QuoteMeta("root=UUID=" + rootUUID + " rw console=ttyS0 minint.fw=")
	inOrder := func(fw, out string, res ...string) {
		t.Helper()
		rest := out
		for _, r := range res {
			loc := regexp.MustCompile(r).FindStringIndex(rest)
			if loc == nil {
				t.Fatalf("%s: no %q in the console after the previous step:\n%s", fw, r, tail(out, 4000))
			}
			rest = rest[loc[1]:]
		}
	}
	// UEFI: systemd-boot starts the default entry, whose guest adds a
	// Boot#### for the kernel itself and sets BootNext; the firmware starts
	// it once; that guest sets systemd-boot's LoaderEntryOneShot; the
	// third boot is the "other" entry.
	out := bootQEMU(t, tg.Path, "uefi", false)
	inOrder("uefi", out,
		`MININT-BOOTED cmdline=\[.*`+want+`uefi[ \]]`, `EFIGUEST: BootNext=Boot[0-9A-F]{4} set`,
		`MININT-BOOTED cmdline=\[.*minint.fw=bootnext[ \]]`, `EFIGUEST: LoaderEntryOneShot set`,
		`MININT-BOOTED cmdline=\[.*minint.fw=oneshot[ \]]`, `EFIGUEST: nothing to do`)

	// BIOS: syslinux's boot-once label wins once, then the default again.
	if err := SetSyslinuxOnce(tg.Path, espPart.Start, "other"); err != nil {
		t.Fatal(err)
	}
	out = bootQEMU(t, tg.Path, "bios", true)
	inOrder("bios once", out, `MININT-BOOTED cmdline=\[.*minint.fw=oneshot[ \]]`)
	out = bootQEMU(t, tg.Path, "bios", true)
	inOrder("bios", out, `MININT-BOOTED cmdline=\[.*`+want+`bios[ \]]`)
}

// TestBootMBRBIOS: an MBR disk (syslinux mbr.bin, active flag) boots
// under SeaBIOS from a FAT boot partition prepared the same way.
func TestBootMBRBIOS(t *testing.T) {
	disktest.NeedE2E(t)
	hk, kver := hostKernel(t)
	for _, p := range []string{hk, "/usr/lib/syslinux/mbr/mbr.bin"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (scripts/setup-host.sh)", p)
		}
	}
	disktest.NeedTool(t, "syslinux")
	disktest.NeedTool(t, "mcopy")
	ctx := context.Background()
	tg := imageTarget(t, 100<<20)
	l, err := diskops.ParseLayout([]byte(`table: mbr
partitions:
  - {name: boot, size: 48M, type: fat32, fs: vfat, label: BOOT}
  - {name: root, size: rest, type: linux, fs: ext4}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := diskops.Partition(ctx, tg, l, diskops.PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fss, err := diskops.FormatPartitions(ctx, tg, res, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.Close()
	// The root's files only need to be readable here: a plain directory.
	root := t.TempDir()
	kernel, _ := os.ReadFile(hk)
	disktest.WriteFile(t, filepath.Join(root, "boot/vmlinuz-"+kver), string(kernel))
	disktest.WriteFile(t, filepath.Join(root, "boot/initrd.img-"+kver), string(tinyInitrd(t)))
	boot := t.TempDir()
	o := BIOSOptions{BootOptions: BootOptions{Root: root, RootUUID: fss[1].UUID, Cmdline: "console=ttyS0 minint.fw=mbr"}, BootDir: boot}
	if _, err := WriteBIOSConfig(ctx, o); err != nil {
		t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(boot, "*"))
	disktest.Run(t, "mcopy", append([]string{"-s", "-i", tg.Path + "@@" + fmt.Sprint(res.Partitions[0].Start)}, append(ents, "::/")...)...)
	if _, err := InstallSyslinux(ctx, SyslinuxOptions{Disk: tg.Path, Partition: 1}); err != nil {
		t.Fatal(err)
	}
	if out := disktest.Run(t, "sfdisk", "-d", tg.Path); !strings.Contains(out, "bootable") {
		t.Errorf("no active partition:\n%s", out)
	}
	out := bootQEMU(t, tg.Path, "bios", false)
	want := `MININT-BOOTED cmdline=\[.*` + regexp.QuoteMeta("root=UUID="+fss[1].UUID+" rw console=ttyS0 minint.fw=mbr") + `[ \]]`
	if !regexp.MustCompile(want).MatchString(out) {
		t.Errorf("wrong command line:\n%s", tail(out, 1500))
	}
}

// guestModules resolves kernel modules with their modules.dep
// dependencies, dependencies first.
func guestModules(t *testing.T, kver string, names ...string) []string {
	t.Helper()
	dep, err := os.ReadFile(filepath.Join("/lib/modules", kver, "modules.dep"))
	if err != nil {
		t.Skipf("modules.dep: %v", err)
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	for _, l := range strings.Split(string(dep), "\n") {
		mod, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[strings.TrimSuffix(filepath.Base(mod), ".ko")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(m string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			visit(d)
		}
		order = append(order, m)
	}
	for _, n := range names {
		m, ok := byName[n]
		if !ok {
			t.Fatalf("module %s not in modules.dep", n)
		}
		visit(m)
	}
	return order
}

// TestDeployInGuest runs the PE's disk work inside a QEMU guest with the
// Debian kernel (real BLKRRPART, partition nodes, vfat and ext4 mounted by
// the kernel, syslinux from the payload), then boots the deployed disk
// under SeaBIOS and OVMF. The same guest checks internal/durable on vfat
// and ext4 through a power cut (checkDurableCut).
func TestDeployInGuest(t *testing.T) {
	disktest.NeedE2E(t)
	hk, kver := hostKernel(t)
	for _, p := range []string{hk, ovmfCode, "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (scripts/setup-host.sh)", p)
		}
	}
	disktest.NeedTool(t, "syslinux")
	disktest.NeedTool(t, "qemu-system-x86_64")
	for _, tool := range []string{"mcopy", "e2fsck", "debugfs"} {
		disktest.NeedTool(t, tool)
	}
	ctx := context.Background()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "init"), "./testdata/peguest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v\n%s", err, out)
	}
	var list []string
	for _, m := range guestModules(t, kver, "virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "crc32c_generic", "ext4") {
		b, err := os.ReadFile(filepath.Join("/lib/modules/"+kver, m))
		if err != nil {
			t.Fatal(err)
		}
		disktest.WriteFile(t, filepath.Join(dir, "lib/modules", m), string(b))
		list = append(list, "/lib/modules/"+m)
	}
	disktest.WriteFile(t, filepath.Join(dir, "modules.list"), strings.Join(list, "\n")+"\n")
	kernel, _ := os.ReadFile(hk)
	disktest.WriteFile(t, filepath.Join(dir, "payload/boot/vmlinuz-"+kver), string(kernel))
	disktest.WriteFile(t, filepath.Join(dir, "payload/boot/initrd.img-"+kver), string(tinyInitrd(t)))
	sdboot, _ := os.ReadFile("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
	disktest.WriteFile(t, filepath.Join(dir, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"), string(sdboot))
	payload, err := CaptureSyslinux(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := payload.Save(filepath.Join(dir, "payload/syslinux")); err != nil {
		t.Fatal(err)
	}
	cpio := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1")
	cpio.Dir = dir
	initrd, err := cpio.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	initrdPath := filepath.Join(t.TempDir(), "pe.cpio.gz")
	os.WriteFile(initrdPath, initrd, 0o644)
	img := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(img)
	f.Truncate(200 << 20)
	f.Close()
	scratch := filepath.Join(t.TempDir(), "scratch.img")
	f, _ = os.Create(scratch)
	f.Truncate(96 << 20)
	f.Close()

	qctx, cancel := context.WithTimeout(ctx, 240*time.Second)
	defer cancel()
	var out bytes.Buffer
	q := exec.CommandContext(qctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-serial", "stdio", "-monitor", "none",
		"-no-reboot", "-net", "none", "-kernel", hk, "-initrd", initrdPath, "-append", "console=ttyS0 panic=-1",
		"-drive", "file="+img+",format=raw,if=virtio", "-drive", "file="+scratch+",format=raw,if=virtio")
	q.Stdout, q.Stderr = &out, &out
	child.Run(q)
	s := out.String()
	m := regexp.MustCompile(`PEGUEST: DEPLOYED root=UUID=([0-9a-f-]{36})`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("the guest did not deploy:\n%s", tail(s, 3000))
	}
	if !strings.Contains(s, "PEGUEST: partition nodes [/dev/vda1 /dev/vda2]") || !strings.Contains(s, "as ext4 and /dev/vda1 as vfat") {
		t.Errorf("guest log:\n%s", tail(s, 3000))
	}
	disktest.Run(t, "sgdisk", "-v", img)
	checkDurableCut(t, scratch, s)
	want := regexp.QuoteMeta("root=UUID=" + m[1] + " rw console=ttyS0 minint.fw=deployed")
	for _, fw := range []string{"bios", "uefi"} {
		out := bootQEMU(t, img, fw, false)
		if !regexp.MustCompile(`MININT-BOOTED cmdline=\[.*` + want + `[ \]]`).MatchString(out) {
			t.Errorf("%s: deployed disk booted with the wrong command line:\n%s", fw, tail(out, 1500))
		}
	}
}
