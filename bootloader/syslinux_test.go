package bootloader

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/disktest"
)

// TestSyslinuxPayloadMatchesInstaller: the Go installer, given where the
// syslinux program put ldlinux.sys on another volume, patches it to the
// very bytes the program wrote, so re-installing over the program's work
// changes nothing.
func TestSyslinuxPayloadMatchesInstaller(t *testing.T) {
	disktest.NeedTool(t, "syslinux")
	mcopy := disktest.NeedTool(t, "mcopy")
	p, err := CaptureSyslinux(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.Save(dir); err != nil {
		t.Fatal(err)
	}
	if mbr, _ := os.ReadFile("/usr/lib/syslinux/mbr/gptmbr.bin"); len(p.GPTMBR) == 0 || !bytes.Equal(p.GPTMBR, mbr) {
		t.Errorf("payload gptmbr.bin: %d bytes", len(p.GPTMBR))
	}
	if q, err := LoadSyslinuxPayload(dir); err != nil || !bytes.Equal(q.Ldlinux, p.Ldlinux) || !bytes.Equal(q.BootSector, p.BootSector) ||
		!bytes.Equal(q.MBR, p.MBR) || !bytes.Equal(q.GPTMBR, p.GPTMBR) || !bytes.Equal(q.LdlinuxC32, p.LdlinuxC32) {
		t.Fatalf("payload round trip: %v", err)
	}

	img := filepath.Join(t.TempDir(), "a.img")
	f, _ := os.Create(img)
	defer f.Close()
	f.Truncate(64 << 20)
	if _, err := diskops.FormatFAT32(f, 0, 64<<20, diskops.FATOptions{VolumeID: 0x12345678}); err != nil {
		t.Fatal(err)
	}
	// Push ldlinux.sys away from where it sat in the captured volume.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, bytes.Repeat([]byte("j"), 3<<20), 0o644)
	disktest.Run(t, mcopy, "-i", img, junk, "::/junk")
	disktest.Run(t, "mmd", "-i", img, "::/syslinux")
	disktest.Run(t, "syslinux", "--install", "--directory", "/syslinux", img)
	before, _ := os.ReadFile(img)
	if err := installPayload(f, 0, p); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(img)
	// The one intended difference: the FAT32 backup boot sector (sector 6),
	// which the program leaves stale and fsck then complains about.
	if !bytes.Equal(after[6*512:7*512], after[:512]) {
		t.Error("backup boot sector differs from the boot sector")
	}
	copy(after[6*512:7*512], before[6*512:7*512])
	if !bytes.Equal(before, after) {
		n := 0
		for i := range before {
			if before[i] != after[i] {
				if n < 10 {
					t.Errorf("byte %d (sector %d +%d): installer wrote %#x, Go wrote %#x", i, i/512, i%512, before[i], after[i])
				}
				n++
			}
		}
		t.Fatalf("%d bytes differ", n)
	}
	// Sanity: the comparison is not vacuous, ldlinux.sys did move.
	v, _ := openFAT32(f, 0)
	chain, _, _ := v.lookup("SYSLINUX", "LDLINUX SYS")
	if chain[0] < 3<<20/512 {
		t.Errorf("ldlinux.sys at cluster %d: the junk did not push it", chain[0])
	}
}
