// Package bootloader makes a deployed disk bootable and arranges one-shot
// and persistent boots: systemd-boot and its loader entries for UEFI,
// syslinux for BIOS, and the firmware's EFI variables.
//
// # Installing
//
// InstallUEFI copies the newest /boot/vmlinuz-<v> and its initrd of the
// applied root to <ESP>/<id>/<v>/, writes the loader entry
// (root=UUID=<RootUUID> rw <Cmdline>) and loader.conf, and puts
// systemd-boot at \EFI\systemd and at the removable-media path
// \EFI\BOOT\BOOTX64.EFI; with EFIVars set it also adds a firmware entry
// first in BootOrder. WriteBIOSConfig puts the same kernel files and
// /syslinux/syslinux.cfg on the FAT boot partition (the ESP, so one
// partition serves both firmwares), and InstallSyslinux, on that partition
// unmounted, installs syslinux's boot sector and ldlinux, the MBR code
// (gptmbr.bin or mbr.bin) and the bootable flag (diskops.SetBootable).
// BootOptions.Extra adds more entries (e.g. the PE) to both loaders for
// later one-shot boots. Every file replaced with different content is
// first copied under BootOptions.BackupDir.
//
// Under Secure Boot systemd-boot (unsigned) cannot run: InstallShim
// installs the applied image's own signed chain instead — shim, MokManager
// and Debian's signed GRUB from /usr/lib/shim and
// /usr/lib/grub/x86_64-efi-signed to \EFI\debian and the removable-media
// path, and \EFI\debian\grub.cfg booting the image's kernel and initrd
// from the root file system found by its UUID (GRUB checks the kernel's
// signature through shim). FindSignedChain checks, before anything is
// written, that the image has shim, GRUB and a signed kernel, and its
// ErrNoSignedChain names what is missing. A refresh's one-shot boot of the
// PE is not available on such a machine yet (it is systemd-boot's).
//
// A typical PE run: diskops' Discover, Select, OpenTarget, Partition,
// FormatPartitions, Mount of root and ESP, apply the image, InstallUEFI
// and WriteBIOSConfig, unmount the ESP, InstallSyslinux.
//
// # Syslinux without the syslinux program
//
// The PE has neither the syslinux installer nor mtools. A SyslinuxPayload
// (ldlinux.sys, the boot-sector template, ldlinux.c32, mbr.bin,
// gptmbr.bin) is captured once on the build host by CaptureSyslinux
// (`minint disk syslinux-payload DIR`), shipped in the PE at
// SyslinuxPayloadDir, and installed in pure Go. The patching is
// byte-identical to the syslinux 6.04 installer's
// (TestSyslinuxPayloadMatchesInstaller), except that it also updates the
// FAT32 backup boot sector, which fsck compares with the primary.
//
// # One-shot and persistent boots
//
// EFIVars{Dir}.SetBootNext and SetLoaderOneShot (systemd-boot's
// LoaderEntryOneShot) boot another entry once; SetSyslinuxOnce does the
// same for BIOS by rewriting syslinux's ADV in place. An in-place refresh
// needs the opposite, a default that survives power cuts until the new
// system is in place: SetLoaderDefault (loader.conf, replaced atomically),
// EFIVars.SetLoaderDefault (LoaderEntryDefault) and SetSyslinuxDefault
// make the PE the default, and RemoveLoaderEntry takes it away again.
//
// Errors wrap diskops' sentinels (diskops.ErrNotFound for a missing
// kernel, loader or payload; diskops.ErrUnsafePath for an entry name that
// would escape; diskops.ErrFormat for a file system it cannot read).
package bootloader
