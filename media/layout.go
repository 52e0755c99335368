package media

import (
	"fmt"

	"github.com/minint/minint/bootloader"
)

// The medium's layout. Everything that boots the PE lives at fixed paths,
// so that a later step (customizing a built ISO, serving it over the
// network) knows what to replace:
//
//	/boot/vmlinuz            the kernel: one copy, loaded by ISOLINUX (BIOS)
//	                         and by GRUB (UEFI); Debian's signed kernel
//	/boot/initrd             the PE's initramfs: one copy, likewise
//	/boot/grub/grub.cfg      GRUB's menu: the kernel command line for UEFI
//	/isolinux/isolinux.cfg   ISOLINUX's menu: the same command line for BIOS
//	/isolinux/isolinux.bin, ldlinux.c32   ISOLINUX itself
//	/boot/efiboot.img        the EFI system partition (El Torito EFI entry
//	                         and hybrid partition 2): the boot loaders only
//	/minint/media.json       the media ID and build facts; /minint/… the
//	                         sequence, images and other extra files
//
// The ESP holds, with the default (shim) chain:
//
//	/EFI/BOOT/BOOTX64.EFI    shim, signed by Microsoft's UEFI CA
//	/EFI/BOOT/grubx64.efi    Debian's signed GRUB for CDs and disks
//	                         (gcdx64.efi), which shim verifies and starts
//	/EFI/BOOT/mmx64.efi      shim's MOK manager, which shim starts when
//	                         asked to enroll a key (or when it refuses one)
//	/boot/grub/grub.cfg      a bootstrap that sends GRUB to the ISO 9660
//	                         file system on the same disk
//
// and with an organization's own key (the UKI chain) only
// /EFI/BOOT/BOOTX64.EFI: a unified kernel image (kernel, initramfs,
// command line) signed with that key.
//
// What Secure Boot verifies: the firmware checks shim against db
// (Microsoft's CA), shim checks GRUB and GRUB checks the kernel against
// Debian's CA built into shim. The initramfs and both menus are not
// signed — under Debian's signed GRUB the kernel's lockdown is what
// protects the running system — so they can be replaced in a built medium
// without breaking any signature. With the UKI chain the initramfs and
// command line are inside the signed image: changing them means signing
// again with the organization's key.
const (
	KernelPath      = "boot/vmlinuz"
	InitrdPath      = "boot/initrd"
	GrubConfigPath  = "boot/grub/grub.cfg"
	IsolinuxPath    = "isolinux"
	IsolinuxCfgPath = "isolinux/isolinux.cfg"
	ESPImagePath    = "boot/efiboot.img"
	MediaDir        = "minint"
	MediaJSONPath   = "minint/media.json"
	bootCatalogPath = "isolinux/boot.cat"
)

// Paths inside the EFI system partition.
const (
	espLoader      = "/EFI/BOOT/BOOTX64.EFI" // the removable-media path UEFI boots
	espGrub        = "/EFI/BOOT/grubx64.efi" // the second stage shim loads, next to itself
	espMokManager  = "/EFI/BOOT/mmx64.efi"
	espGrubConfig  = "/boot/grub/grub.cfg"
	netbootGrubDir = "grub" // grubnetx64.efi's prefix, relative to the TFTP/HTTP root
)

// Boot chains: how UEFI firmware starts the PE.
const (
	// ChainShim: Microsoft-signed shim → Debian-signed GRUB → Debian-signed
	// kernel, initramfs loaded by GRUB. Boots with Secure Boot on on
	// firmware that trusts Microsoft's UEFI CA (almost every PC), and
	// without Secure Boot.
	ChainShim = "shim"
	// ChainUKI: one unified kernel image signed with the organization's
	// own key, for firmware whose db holds that key.
	ChainUKI = "uki"
)

// IsolinuxConfig is ISOLINUX's (and PXELINUX's) configuration booting
// kernel and initrd (paths as the loader sees them) with cmdline.
func IsolinuxConfig(kernel, initrd, cmdline string) []byte {
	return []byte(fmt.Sprintf(`SERIAL 0 115200
DEFAULT minint
PROMPT 0
TIMEOUT 0
LABEL minint
  KERNEL %s
  INITRD %s
  APPEND %s
`, kernel, initrd, cmdline))
}

// GrubConfig is GRUB's menu booting kernel and initrd (paths on GRUB's
// $root) with cmdline. GRUB also talks on the first serial port, so that
// a serial console shows its errors (a kernel refused under Secure Boot,
// a missing file).
func GrubConfig(kernel, initrd, cmdline string) []byte {
	return []byte(fmt.Sprintf(`# minint PE (generated; the same command line as /isolinux/isolinux.cfg)
serial --unit=0 --speed=115200
terminal_input --append serial
terminal_output --append serial
set default=0
set timeout=0
menuentry "minint PE" {
	linux %s %s
	initrd %s
}
`, kernel, bootloader.GrubArgs(cmdline), initrd))
}

// grubBootstrap is the ESP's /boot/grub/grub.cfg. Debian's gcdx64.efi
// sources $prefix/grub.cfg with the prefix compiled in (/boot/grub) on the
// device it was loaded from:
//   - from a CD, GRUB sees the whole CD (cd0) and the prefix is the ISO's
//     own /boot/grub: this file is never read;
//   - from a disk whose firmware used the El Torito image (EDK2 and OVMF
//     do, since the hybrid MBR is not a protective one) likewise;
//   - from a disk whose firmware used partition 2, the prefix is on the
//     ESP: this file then points GRUB at the ISO 9660 file system that
//     starts at sector 0 of the same disk — never at another medium, as
//     the embedded search for Debian's /.disk/info would (minint media
//     have none: go-diskfs cannot write a name starting with a dot) — and
//     falls back to searching for a minint medium only if the disk name
//     cannot be taken apart.
var grubBootstrap = []byte(`# minint: GRUB was started from the EFI partition of a minint hybrid ISO;
# the PE's menu is on the ISO 9660 file system of the same disk.
if regexp --set=1:minint_disk '^([^,]+),' "$root" ; then
	set root=$minint_disk
else
	search --no-floppy --file --set=root /minint/media.json
fi
set prefix=($root)/boot/grub
configfile $prefix/grub.cfg
`)
