package bootloader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/diskops"
)

// Where a Debian image keeps its Secure Boot chain (packages shim-signed,
// shim-helpers-amd64-signed, grub-efi-amd64-signed, linux-image-amd64).
const (
	ImageShim       = "usr/lib/shim/shimx64.efi.signed"
	ImageMokManager = "usr/lib/shim/mmx64.efi.signed"
	ImageGrub       = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
)

// The chain's place on the ESP. Debian's grubx64.efi has /EFI/debian
// compiled in as its prefix: it reads /EFI/debian/grub.cfg from the
// partition it was loaded from, also when started from the
// removable-media path \EFI\BOOT (where shim looks for grubx64.efi next
// to itself).
const (
	shimDir      = "EFI/debian"
	shimLoader   = `\EFI\debian\shimx64.efi`
	shimGrubCfg  = shimDir + "/grub.cfg"
	removableDir = "EFI/BOOT"
)

// ErrNoSignedChain: the firmware enforces Secure Boot and the image lacks
// what would boot under it. The message says what is missing.
var ErrNoSignedChain = errors.New("the image cannot boot with Secure Boot on")

// SignedChain is an image's Secure Boot chain: shim (signed by Microsoft's
// UEFI CA), GRUB and a kernel signed by the distribution.
type SignedChain struct {
	Shim, MokManager, Grub string // absolute paths in the image; MokManager may be ""
	Kernel                 *Kernel
}

// FindSignedChain looks for the signed chain in the applied image at
// root, without changing anything, and names everything that is missing:
// shim, GRUB, a kernel, or the kernel's signature.
func FindSignedChain(root string) (*SignedChain, error) {
	c := &SignedChain{Shim: filepath.Join(root, ImageShim), Grub: filepath.Join(root, ImageGrub)}
	var lacks []string
	for _, f := range []struct{ path, what string }{
		{c.Shim, "/" + ImageShim + " (Debian package shim-signed)"},
		{c.Grub, "/" + ImageGrub + " (Debian package grub-efi-amd64-signed)"},
	} {
		if err := signedFile(f.path); err != nil {
			lacks = append(lacks, f.what+": "+err.Error())
		}
	}
	if mm := filepath.Join(root, ImageMokManager); signedFile(mm) == nil {
		c.MokManager = mm
	}
	k, err := FindKernel(root)
	switch {
	case err != nil:
		lacks = append(lacks, "a kernel in /boot: "+err.Error())
	case k.Initrd == "":
		lacks = append(lacks, fmt.Sprintf("an initrd next to %s", strings.TrimPrefix(k.Path, root)))
	default:
		if err := signedFile(k.Path); err != nil {
			lacks = append(lacks, fmt.Sprintf("a signed kernel: %s: %v (install the distribution's signed kernel, e.g. Debian's linux-image-amd64)", strings.TrimPrefix(k.Path, root), err))
		}
	}
	c.Kernel = k
	if len(lacks) > 0 {
		return nil, fmt.Errorf("%w: it lacks %s", ErrNoSignedChain, strings.Join(lacks, "; "))
	}
	return c, nil
}

// signedFile checks that f is a PE image with an Authenticode signature.
// Whether the firmware trusts the signer is the firmware's call; this
// catches an image without the signed packages (or with an unsigned
// build of them) before the disk is made bootable.
func signedFile(f string) error {
	b, err := os.ReadFile(f)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("not there")
		}
		return err
	}
	if _, err := authenticode.Signatures(b); err != nil {
		return err
	}
	return nil
}

// ShimOptions configures InstallShim.
type ShimOptions struct {
	BootOptions
	// ESP is the mounted EFI system partition.
	ESP string
	// Timeout is GRUB's menu timeout in seconds (0: no menu).
	Timeout int
	// EFIVars, when set, also gets a firmware boot entry for shim (first
	// in BootOrder). ESPPartition and SectorSize describe the ESP for it.
	EFIVars      *EFIVars
	ESPPartition diskops.PartitionInfo
	SectorSize   int
}

// InstallShim makes root bootable under UEFI with Secure Boot on, with the
// image's own signed chain: shim, MokManager and GRUB go to \EFI\debian
// and to the removable-media path \EFI\BOOT (shim as BOOTX64.EFI), and
// \EFI\debian\grub.cfg boots the image's newest kernel and initrd from the
// root file system, found by its UUID, with root=UUID=… rw and the extra
// command line. The kernel stays in the image's /boot: GRUB verifies it
// through shim against the distribution's key. Nothing is written when
// the image lacks part of the chain (FindSignedChain's error).
func InstallShim(ctx context.Context, o ShimOptions) (*BootResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.ESP == "" {
		return nil, fmt.Errorf("boot files: no ESP given")
	}
	c, err := FindSignedChain(o.Root)
	if err != nil {
		return nil, err
	}
	in := &installer{backup: filepath.Join(o.BackupDir, o.Now().UTC().Format("20060102T150405Z")), res: &BootResult{Kernel: c.Kernel}}
	extras, err := in.copyExtras(o.ESP, o.Extra)
	if err != nil {
		return in.res, err
	}
	steps := [][2]string{
		{shimDir + "/shimx64.efi", c.Shim},
		{shimDir + "/grubx64.efi", c.Grub},
		{removableDir + "/BOOTX64.EFI", c.Shim},
		{removableDir + "/grubx64.efi", c.Grub},
	}
	if c.MokManager != "" {
		steps = append(steps, [2]string{shimDir + "/mmx64.efi", c.MokManager}, [2]string{removableDir + "/mmx64.efi", c.MokManager})
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return in.res, err
		}
		if err := in.copy(o.ESP, s[0], s[1]); err != nil {
			return in.res, fmt.Errorf("boot files: %s: %w", s[0], err)
		}
	}
	if err := in.write(o.ESP, shimGrubCfg, o.grubConfig(c.Kernel, extras), 0o644); err != nil {
		return in.res, err
	}
	if o.EFIVars != nil {
		n, err := o.EFIVars.AddBootEntry(EFIBootEntry{Description: o.Title, Partition: o.ESPPartition, SectorSize: o.SectorSize, Loader: shimLoader}, true)
		if err != nil {
			return in.res, fmt.Errorf("firmware boot entry: %w", err)
		}
		in.res.BootNum = &n
	}
	return in.res, nil
}

// ShimGrubConfig is where InstallShim writes GRUB's menu on the ESP (for
// the first-boot setup, which edits the command line).
const ShimGrubConfig = "/" + shimGrubCfg

// grubConfig renders \EFI\debian\grub.cfg: the deployed system first, from
// the root file system by UUID; extra entries (the PE) from the ESP,
// which is GRUB's $root when it starts.
func (o ShimOptions) grubConfig(k *Kernel, extras []loaderEntry) []byte {
	rel := func(p string) string { return "/" + strings.TrimPrefix(strings.TrimPrefix(p, o.Root), "/") }
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by minint's bootfiles step: the image's signed chain (shim, GRUB, kernel).\n")
	fmt.Fprintf(&b, "set esp=$root\nset default=0\nset timeout=%d\n", o.Timeout)
	fmt.Fprintf(&b, "search --no-floppy --fs-uuid --set=root %s\n", o.RootUUID)
	fmt.Fprintf(&b, "menuentry %s {\n\tlinux %s %s\n\tinitrd %s\n}\n", GrubQuote(o.Title), rel(k.Path), GrubArgs(o.options()), rel(k.Initrd))
	for _, x := range extras {
		fmt.Fprintf(&b, "menuentry %s {\n\tlinux ($esp)%s %s\n", GrubQuote(x.Title), x.Linux, GrubArgs(x.Options))
		if x.Initrd != "" {
			fmt.Fprintf(&b, "\tinitrd ($esp)%s\n", x.Initrd)
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// grubSpecial are the characters GRUB's shell expands or splits on,
// besides blanks.
const grubSpecial = "$;&|<>'\"\\`{}#"

// GrubQuote makes s one word for GRUB's shell (a menu title): as it is
// when it holds nothing GRUB would expand or split on, else in single
// quotes.
func GrubQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, grubSpecial+" \t") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// GrubArgs writes a kernel command line for GRUB's linux command: as it
// is (GRUB joins the words with spaces again, and tools that edit the
// file later find each argument as a word) unless it holds characters
// GRUB would expand, then quoted whole.
func GrubArgs(s string) string {
	if !strings.ContainsAny(s, grubSpecial) {
		return s
	}
	return GrubQuote(s)
}
