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
	IsolinuxBin string // isolinux.bin (package isolinux)
	IsohdpfxBin string // isohdpfx.bin, the hybrid MBR code (package isolinux)
	LdlinuxC32  string // ldlinux.c32 (package syslinux-common)
	EFIStub     string // linuxx64.efi.stub (package systemd-boot-efi)
}

// DefaultHostPaths are the Debian locations.
var DefaultHostPaths = HostPaths{
	IsolinuxBin: "/usr/lib/ISOLINUX/isolinux.bin",
	IsohdpfxBin: "/usr/lib/ISOLINUX/isohdpfx.bin",
	LdlinuxC32:  "/usr/lib/syslinux/modules/bios/ldlinux.c32",
	EFIStub:     "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
}

func (h HostPaths) withDefaults() HostPaths {
	d := DefaultHostPaths
	if h.IsolinuxBin != "" {
		d.IsolinuxBin = h.IsolinuxBin
	}
	if h.IsohdpfxBin != "" {
		d.IsohdpfxBin = h.IsohdpfxBin
	}
	if h.LdlinuxC32 != "" {
		d.LdlinuxC32 = h.LdlinuxC32
	}
	if h.EFIStub != "" {
		d.EFIStub = h.EFIStub
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

// checkHost verifies everything an ISO build needs before anything is
// written, so that a missing package costs nothing.
func (h HostPaths) check() (tools map[string]string, err error) {
	var errs []error
	for _, f := range []struct{ path, pkg string }{
		{h.IsolinuxBin, "isolinux"},
		{h.IsohdpfxBin, "isolinux"},
		{h.LdlinuxC32, "syslinux-common"},
		{h.EFIStub, "systemd-boot-efi"},
	} {
		if err := hostFile(f.path, f.pkg); err != nil {
			errs = append(errs, err)
		}
	}
	tools = map[string]string{}
	for _, t := range []struct{ name, pkg string }{
		{"objcopy", "binutils"},
		{"mkfs.vfat", "dosfstools"},
		{"mcopy", "mtools"},
		{"mmd", "mtools"},
	} {
		p, err := hostTool(t.name, t.pkg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tools[t.name] = p
	}
	return tools, errors.Join(errs...)
}
