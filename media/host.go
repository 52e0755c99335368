package media

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ErrMissingHost reports a host program or data file that the build needs
// and that is not installed. The error text names the Debian package that
// provides it.
var ErrMissingHost = errors.New("missing host dependency")

// HostPaths locates the host files a build reads. The zero value means the
// Debian bookworm locations; tests and other distributions may override.
type HostPaths struct {
	IsolinuxBin  string // isolinux.bin (package isolinux)
	IsohdpfxBin  string // isohdpfx.bin, the hybrid MBR code (package isolinux)
	LdlinuxC32   string // ldlinux.c32 (package syslinux-common)
	EFIStub      string // linuxx64.efi.stub (package systemd-boot-efi), for UKIs
	Shim         string // shimx64.efi.signed, Microsoft-signed (package shim-signed)
	MokManager   string // mmx64.efi.signed (package shim-helpers-amd64-signed, pulled in by shim-signed)
	GrubCD       string // gcdx64.efi.signed, Debian-signed GRUB for CDs and disks (package grub-efi-amd64-signed)
	GrubNet      string // grubnetx64.efi.signed, the same for network boot
	LPXELinux    string // lpxelinux.0, PXELINUX with HTTP (package pxelinux), BIOS network boot
	UndionlyKPXE string // undionly.kpxe, iPXE for BIOS PXE (package ipxe)
}

// DefaultHostPaths are the Debian locations.
var DefaultHostPaths = HostPaths{
	IsolinuxBin:  "/usr/lib/ISOLINUX/isolinux.bin",
	IsohdpfxBin:  "/usr/lib/ISOLINUX/isohdpfx.bin",
	LdlinuxC32:   "/usr/lib/syslinux/modules/bios/ldlinux.c32",
	EFIStub:      "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
	Shim:         "/usr/lib/shim/shimx64.efi.signed",
	MokManager:   "/usr/lib/shim/mmx64.efi.signed",
	GrubCD:       "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
	GrubNet:      "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
	LPXELinux:    "/usr/lib/PXELINUX/lpxelinux.0",
	UndionlyKPXE: "/usr/lib/ipxe/undionly.kpxe",
}

func (h HostPaths) withDefaults() HostPaths {
	d := DefaultHostPaths
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&d.IsolinuxBin, h.IsolinuxBin}, {&d.IsohdpfxBin, h.IsohdpfxBin}, {&d.LdlinuxC32, h.LdlinuxC32},
		{&d.EFIStub, h.EFIStub}, {&d.Shim, h.Shim}, {&d.MokManager, h.MokManager},
		{&d.GrubCD, h.GrubCD}, {&d.GrubNet, h.GrubNet}, {&d.LPXELinux, h.LPXELinux}, {&d.UndionlyKPXE, h.UndionlyKPXE},
	} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	return d
}

// hostFile checks that a data file from a host package exists.
func hostFile(path, pkg string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w: %s not found: install the Debian package %s (apt-get install %s)", ErrMissingHost, path, pkg, pkg)
	}
	return nil
}

// hostTool finds a program from a host package on PATH (also looking in
// /sbin and /usr/sbin, where mkfs.vfat lives but a normal user's PATH may
// not reach).
func hostTool(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: program %s not found: install the Debian package %s (apt-get install %s)", ErrMissingHost, name, pkg, pkg)
}

// need says which parts of the host a build uses.
type need struct {
	iso     bool // ISOLINUX, the hybrid MBR, the ESP image
	chain   string
	netboot bool
}

// check verifies everything a build needs before anything is written, so
// that a missing package costs nothing, and returns the programs' paths.
func (h HostPaths) check(n need) (tools map[string]string, err error) {
	type file struct{ path, pkg string }
	var files []file
	var progs []file
	if n.iso {
		files = append(files, file{h.IsolinuxBin, "isolinux"}, file{h.IsohdpfxBin, "isolinux"}, file{h.LdlinuxC32, "syslinux-common"})
		progs = append(progs, file{"mkfs.vfat", "dosfstools"}, file{"mcopy", "mtools"}, file{"mmd", "mtools"})
	}
	if n.netboot {
		files = append(files, file{h.LPXELinux, "pxelinux"}, file{h.LdlinuxC32, "syslinux-common"}, file{h.UndionlyKPXE, "ipxe"})
	}
	switch n.chain {
	case ChainShim:
		files = append(files, file{h.Shim, "shim-signed"}, file{h.MokManager, "shim-helpers-amd64-signed"})
		if n.netboot {
			files = append(files, file{h.GrubNet, "grub-efi-amd64-signed"})
		} else {
			files = append(files, file{h.GrubCD, "grub-efi-amd64-signed"})
		}
	case ChainUKI:
		files = append(files, file{h.EFIStub, "systemd-boot-efi"})
		progs = append(progs, file{"objcopy", "binutils"})
	}
	var errs []error
	for _, f := range files {
		if err := hostFile(f.path, f.pkg); err != nil {
			errs = append(errs, err)
		}
	}
	tools = map[string]string{}
	for _, t := range progs {
		p, err := hostTool(t.path, t.pkg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tools[t.path] = p
	}
	return tools, errors.Join(errs...)
}
