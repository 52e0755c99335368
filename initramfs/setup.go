package initramfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/internal/durable"
)

const (
	setupPkg = "github.com/minint/minint/cmd/minint-setup"
	// setupPath is where minint-setup lies in the PE (pe.DefaultSetupBinary
	// without the leading slash; initramfs must not import pe).
	setupPath = "bin/minint-setup"
)

// setupBinary returns minint-setup as a stand-alone static program. It is
// not one of the busybox-style commands: the PE copies it onto the deployed
// disk, where it runs as init= on the first boot, so it must be a small
// program of its own that dispatches on nothing. Built with go build (its
// own cache makes a rebuild cheap) and kept in the cache keyed like the Go
// part, so the initramfs ID stays stable while the sources do.
func setupBinary(ctx context.Context, src, cache string, logf func(string, ...any)) (File, error) {
	key, err := goInputsKey(ctx, src, []string{setupPkg})
	if err != nil {
		return File{}, err
	}
	bin := filepath.Join(cache, "minint-setup-"+key)
	if _, err := os.Stat(bin); err != nil {
		tmp := bin + ".tmp"
		if _, err := goCmd(ctx, src, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, setupPkg); err != nil {
			os.Remove(tmp)
			return File{}, fmt.Errorf("building minint-setup: %w", err)
		}
		if err := durable.Rename(tmp, bin); err != nil {
			return File{}, err
		}
		logf("initramfs: built minint-setup (%s)", strings.TrimSpace(key[:12]))
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return File{}, err
	}
	touch(bin)
	prune(cache, "minint-setup-*", 3)
	return File{Dest: setupPath, Data: data, Mode: 0o755}, nil
}

// Boot loaders the PE installs on deployed disks, taken from the build
// host (Debian packages syslinux and systemd-boot-efi): the PE has neither
// the programs nor /usr/lib/syslinux.
const (
	systemdBootHost = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	// syslinuxPayloadPE is bootloader.SyslinuxPayloadDir.
	syslinuxPayloadPE = "usr/lib/minint/syslinux"
)

// loaderFiles returns systemd-boot and the syslinux payload for the PE. The
// payload is captured by running the syslinux installer once and cached
// keyed on the installer and its MBR files: a fresh capture differs in the
// scratch file system's serial number, which would change the PE's ID on
// every build. A missing loader is a warning, not an error: the PE still
// boots and deploys, and its bootfiles step then says what is missing.
func loaderFiles(ctx context.Context, cache string, logf func(string, ...any)) []File {
	var out []File
	if b, err := os.ReadFile(systemdBootHost); err == nil {
		out = append(out, File{Dest: strings.TrimPrefix(systemdBootHost, "/"), Data: b, Mode: 0o644})
	} else {
		logf("initramfs: warning: %v: the PE cannot install UEFI boot files (install systemd-boot-efi)", err)
	}
	dir, err := syslinuxPayload(ctx, cache)
	if err != nil {
		logf("initramfs: warning: syslinux payload: %v: the PE cannot install BIOS boot files (install syslinux, syslinux-common, mtools)", err)
		return out
	}
	for _, n := range []string{"ldlinux.sys", "ldlinux.bss", "ldlinux.c32", "mbr.bin", "gptmbr.bin"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			logf("initramfs: warning: syslinux payload: %v", err)
			return out
		}
		out = append(out, File{Dest: syslinuxPayloadPE + "/" + n, Data: b, Mode: 0o644})
	}
	return out
}

func syslinuxPayload(ctx context.Context, cache string) (string, error) {
	prog, err := exec.LookPath("syslinux")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{prog, "/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/syslinux/mbr/gptmbr.bin"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %x\n", f, sha256.Sum256(b))
	}
	dir := filepath.Join(cache, "syslinux-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "gptmbr.bin")); err == nil {
		return dir, nil
	}
	p, err := bootloader.CaptureSyslinux(ctx, prog)
	if err != nil {
		return "", err
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := p.Save(tmp); err != nil {
		return "", err
	}
	os.RemoveAll(dir)
	return dir, os.Rename(tmp, dir)
}

// peinitSize returns the size of peinit built on its own, by which the
// size budget splits the Go binary into init and tools. Cached like
// minint-setup (only the number is kept).
func peinitSize(ctx context.Context, src, cache string, logf func(string, ...any)) (int64, error) {
	key, err := goInputsKey(ctx, src, []string{peinitPkg})
	if err != nil {
		return 0, err
	}
	stamp := filepath.Join(cache, "peinit-size-"+key)
	if b, err := os.ReadFile(stamp); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			touch(stamp)
			return n, nil
		}
	}
	tmp, err := os.CreateTemp(cache, "peinit-*")
	if err != nil {
		return 0, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := goCmd(ctx, src, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp.Name(), peinitPkg); err != nil {
		return 0, fmt.Errorf("building peinit alone for the size budget: %w", err)
	}
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return 0, err
	}
	os.WriteFile(stamp, []byte(strconv.FormatInt(st.Size(), 10)), 0o644)
	prune(cache, "peinit-size-*", 3)
	logf("initramfs: peinit alone is %.1f MiB", float64(st.Size())/(1<<20))
	return st.Size(), nil
}
