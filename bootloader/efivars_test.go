package bootloader

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/disktest"
)

func decodeUTF16z(b []byte) (string, int) {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			return string(utf16.Decode(u)), i + 2
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), len(b)
}

func TestEncodeLoadOption(t *testing.T) {
	e := EFIBootEntry{Description: "minint", SectorSize: 512, Loader: "/EFI/systemd/systemd-bootx64.efi", Args: "quiet",
		Partition: diskops.PartitionInfo{Number: 1, Start: 1 << 20, Size: 64 << 20, UUID: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"}}
	b, err := encodeLoadOption(e)
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint32(b) != 1 {
		t.Errorf("attributes %#x", binary.LittleEndian.Uint32(b))
	}
	dpLen := int(binary.LittleEndian.Uint16(b[4:]))
	desc, n := decodeUTF16z(b[6:])
	if desc != "minint" {
		t.Errorf("description %q", desc)
	}
	dp := b[6+n : 6+n+dpLen]
	// Hard drive node: partition 1 at LBA 2048, 131072 sectors, GPT
	// signature in on-disk byte order.
	if dp[0] != 4 || dp[1] != 1 || binary.LittleEndian.Uint16(dp[2:]) != 42 || binary.LittleEndian.Uint32(dp[4:]) != 1 ||
		binary.LittleEndian.Uint64(dp[8:]) != 2048 || binary.LittleEndian.Uint64(dp[16:]) != 131072 || dp[40] != 2 || dp[41] != 2 {
		t.Errorf("HD node % x", dp[:42])
	}
	if want := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}; string(dp[24:40]) != string(want) {
		t.Errorf("signature % x", dp[24:40])
	}
	fp := dp[42:]
	if fp[0] != 4 || fp[1] != 4 {
		t.Fatalf("file path node % x", fp[:4])
	}
	if path, _ := decodeUTF16z(fp[4:binary.LittleEndian.Uint16(fp[2:])]); path != `\EFI\systemd\systemd-bootx64.efi` {
		t.Errorf("path %q", path)
	}
	end := dp[len(dp)-4:]
	if end[0] != 0x7f || end[1] != 0xff || end[2] != 4 {
		t.Errorf("end node % x", end)
	}
	if args, _ := decodeUTF16z(b[6+n+dpLen:]); args != "quiet" {
		t.Errorf("optional data %q", args)
	}
}

func TestEFIVarsBootEntries(t *testing.T) {
	dir := t.TempDir()
	v := EFIVars{Dir: dir}
	// Existing firmware state: Boot0000 and Boot0001, order 0001,0000.
	v.Set("Boot0000", efiGlobalGUID, []byte{1, 0, 0, 0})
	v.Set("Boot0001", efiGlobalGUID, []byte{1, 0, 0, 0})
	v.Set("BootOrder", efiGlobalGUID, []byte{1, 0, 0, 0})
	e := EFIBootEntry{Description: "minint", Loader: `\EFI\x.efi`, Partition: diskops.PartitionInfo{Number: 1, UUID: "11111111-2222-4333-8444-555555555555"}}
	n, err := v.AddBootEntry(e, true)
	if err != nil || n != 2 {
		t.Fatalf("AddBootEntry = %d, %v", n, err)
	}
	order, _ := v.Get("BootOrder", efiGlobalGUID)
	if string(order) != string([]byte{2, 0, 1, 0, 0, 0}) {
		t.Errorf("BootOrder % x", order)
	}
	// Idempotent: the same description reuses Boot0002, order unchanged.
	if n2, err := v.AddBootEntry(e, true); err != nil || n2 != 2 {
		t.Errorf("second AddBootEntry = %d, %v", n2, err)
	}
	order2, _ := v.Get("BootOrder", efiGlobalGUID)
	if string(order2) != string(order) {
		t.Errorf("BootOrder after re-adding % x", order2)
	}
	// A BootNext-only entry leaves BootOrder alone.
	n3, err := v.AddBootEntry(EFIBootEntry{Description: "pe once", Loader: `\k`, Partition: e.Partition}, false)
	if err != nil || n3 != 3 {
		t.Fatalf("BootNext entry = %d, %v", n3, err)
	}
	if o, _ := v.Get("BootOrder", efiGlobalGUID); string(o) != string(order) {
		t.Errorf("BootOrder changed to % x", o)
	}
	if err := v.SetBootNext(n3); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "BootNext-"+efiGlobalGUID))
	if string(raw) != string([]byte{7, 0, 0, 0, 3, 0}) {
		t.Errorf("BootNext file % x", raw)
	}
	if err := v.SetBootNext(0x77); err == nil {
		t.Error("BootNext to a missing entry accepted")
	}
	v.SetLoaderOneShot("pe.conf")
	if s, _ := v.Get("LoaderEntryOneShot", systemdBootGUID); len(s) != 16 {
		t.Errorf("LoaderEntryOneShot % x", s)
	}
}

func TestFindKernelNewest(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-5.10.0-30-amd64", "initrd.img-6.1.0-56-amd64", "config-6.1.0-99-amd64"} {
		disktest.WriteFile(t, filepath.Join(root, "boot", n), n)
	}
	k, err := FindKernel(root)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-56-amd64" || k.Initrd != filepath.Join(root, "boot/initrd.img-6.1.0-56-amd64") {
		t.Errorf("got %+v", k)
	}
	if _, err := FindKernel(t.TempDir()); err == nil {
		t.Error("found a kernel in an empty root")
	}
	for _, c := range [][2]string{{"6.1.0-56-amd64", "6.1.0-9-amd64"}, {"6.10", "6.9"}, {"6.1.0-56-amd64", "5.19"}, {"6.1-rc2", "6.1-rc10"}} {
		if compareVersions(c[0], c[1]) <= 0 && c[0] != "6.1-rc2" || (c[0] == "6.1-rc2" && compareVersions(c[0], c[1]) >= 0) {
			t.Errorf("compareVersions(%s, %s) = %d", c[0], c[1], compareVersions(c[0], c[1]))
		}
	}
	vs := []string{"6.10.0-1-amd64", "6.1.0-9-amd64", "5.10.0-30-amd64", "6.1.0-56-amd64", "6.1.0-56-cloud-amd64"}
	sort.Slice(vs, func(i, j int) bool { return compareVersions(vs[i], vs[j]) < 0 })
	if want := "5.10.0-30-amd64 6.1.0-9-amd64 6.1.0-56-amd64 6.1.0-56-cloud-amd64 6.10.0-1-amd64"; strings.Join(vs, " ") != want {
		t.Errorf("sorted %v, want %s", vs, want)
	}
}

// TestInstallUEFIBacksUp: replaced boot files go to the backup directory,
// identical ones are left alone, and the entry carries the command line.
func TestInstallUEFIBacksUp(t *testing.T) {
	root, esp, loader := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "sd-boot.efi")
	disktest.WriteFile(t, filepath.Join(root, "boot/vmlinuz-6.1.0-56-amd64"), "kernel")
	disktest.WriteFile(t, filepath.Join(root, "boot/initrd.img-6.1.0-56-amd64"), "initrd")
	disktest.WriteFile(t, loader, "new loader")
	disktest.WriteFile(t, filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), "old loader")
	disktest.WriteFile(t, filepath.Join(esp, "loader/loader.conf"), "default minint.conf\ntimeout 0\neditor no\n")
	o := UEFIOptions{BootOptions: BootOptions{Root: root, RootUUID: "01234567-89ab-4def-8123-456789abcdef", Cmdline: "init=/usr/lib/minint/setup",
		Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }}, ESP: esp, SystemdBoot: loader}
	r, err := InstallUEFI(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.BackedUp) != 1 {
		t.Fatalf("backed up %v", r.BackedUp)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "minint/bootfiles-backup/20260101T000000Z/esp/EFI/BOOT/BOOTX64.EFI")); string(b) != "old loader" {
		t.Errorf("backup holds %q", b)
	}
	entry, _ := os.ReadFile(filepath.Join(esp, "loader/entries/minint.conf"))
	if !strings.Contains(string(entry), "options root=UUID=01234567-89ab-4def-8123-456789abcdef rw init=/usr/lib/minint/setup\n") ||
		!strings.Contains(string(entry), "linux /minint/6.1.0-56-amd64/vmlinuz\n") {
		t.Errorf("entry:\n%s", entry)
	}
	if _, err := InstallUEFI(context.Background(), UEFIOptions{BootOptions: BootOptions{Root: root, RootUUID: "nope"}, ESP: esp}); err == nil {
		t.Error("accepted root UUID nope")
	}
	if _, err := InstallUEFI(context.Background(), UEFIOptions{BootOptions: BootOptions{Root: t.TempDir(), RootUUID: o.RootUUID}, ESP: esp}); !errors.Is(err, diskops.ErrNotFound) {
		t.Errorf("root without a kernel: %v", err)
	}
}
