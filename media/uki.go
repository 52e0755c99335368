package media

import (
	"bytes"
	"context"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minint/minint/authenticode"
)

// UKI describes a unified kernel image: the systemd EFI stub with the
// kernel, initramfs, command line and os-release added as PE sections, so
// that UEFI firmware boots the PE from one file with no boot loader.
type UKI struct {
	Stub      string // linuxx64.efi.stub
	Kernel    string
	Initramfs string
	Cmdline   string
	OSRelease string
	Epoch     time.Time // written as the PE timestamp
}

// sectionAlign is where added sections start. The 6.1-era stub declares a
// SectionAlignment of 512, but the kernel and initrd are mapped at page
// granularity by firmware, so page alignment is the safe choice.
const sectionAlign = 0x1000

// Build writes the UKI to out with objcopy and then fixes the PE timestamp
// (objcopy stamps the current time and ignores SOURCE_DATE_EPOCH) and the
// PE checksum, so that equal inputs give equal bytes.
func (u UKI) Build(ctx context.Context, objcopy, tmpDir, out string) error {
	f, err := pe.Open(u.Stub)
	if err != nil {
		return fmt.Errorf("EFI stub %s: %w", u.Stub, err)
	}
	var end uint64
	for _, s := range f.Sections {
		if e := uint64(s.VirtualAddress) + uint64(max(s.VirtualSize, s.Size)); e > end {
			end = e
		}
	}
	f.Close()

	cmdline := filepath.Join(tmpDir, "uki.cmdline")
	osrel := filepath.Join(tmpDir, "uki.osrel")
	if err := os.WriteFile(cmdline, []byte(u.Cmdline), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(osrel, []byte(u.OSRelease), 0o644); err != nil {
		return err
	}
	args := []string{}
	vma := alignUp(end, sectionAlign)
	for _, s := range []struct{ name, path string }{
		{".osrel", osrel}, {".cmdline", cmdline}, {".linux", u.Kernel}, {".initrd", u.Initramfs},
	} {
		fi, err := os.Stat(s.path)
		if err != nil {
			return err
		}
		args = append(args,
			"--add-section", s.name+"="+s.path,
			"--change-section-vma", fmt.Sprintf("%s=%#x", s.name, vma),
			"--set-section-flags", s.name+"=readonly,data")
		vma = alignUp(vma+uint64(fi.Size()), sectionAlign)
	}
	args = append(args, u.Stub, out)
	cmd := exec.CommandContext(ctx, objcopy, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("objcopy (building the UKI): %v: %s", err, bytes.TrimSpace(msg))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if err := setPETimestamp(b, uint32(u.Epoch.Unix())); err != nil {
		return fmt.Errorf("UKI %s: %w", out, err)
	}
	return os.WriteFile(out, b, 0o644)
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// setPETimestamp sets the COFF TimeDateStamp and recomputes the optional
// header checksum (firmware ignores it, but a wrong one is still wrong).
func setPETimestamp(b []byte, ts uint32) error {
	cs, err := authenticode.ChecksumOffset(b)
	if err != nil {
		return err
	}
	off := int(binary.LittleEndian.Uint32(b[0x3c:]))
	binary.LittleEndian.PutUint32(b[off+8:], ts)
	binary.LittleEndian.PutUint32(b[cs:], authenticode.Checksum(b, cs))
	return nil
}

// buildUKI writes the plan's unified kernel image with cmdline to out,
// signed with the plan's key when it has one. The signature is checked
// against the certificate before the image is used.
func (p *Plan) buildUKI(ctx context.Context, stub, objcopy, tmpDir, cmdline, out string) error {
	u := UKI{Stub: stub, Kernel: p.Kernel, Initramfs: p.Initramfs, Cmdline: cmdline,
		OSRelease: fmt.Sprintf("ID=minint\nNAME=\"minint PE\"\nVERSION_ID=%s\n", p.MediaID), Epoch: p.Epoch}
	if err := u.Build(ctx, objcopy, tmpDir, out); err != nil {
		return err
	}
	os.Remove(filepath.Join(tmpDir, "uki.cmdline"))
	os.Remove(filepath.Join(tmpDir, "uki.osrel"))
	if p.signer == nil {
		return nil
	}
	img, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	signed, err := authenticode.Sign(img, p.signer, p.cert)
	if err != nil {
		return fmt.Errorf("signing the UKI: %w", err)
	}
	if err := authenticode.Verify(signed, p.cert); err != nil {
		return fmt.Errorf("signing the UKI: the signature does not verify: %w", err)
	}
	return os.WriteFile(out, signed, 0o644)
}
