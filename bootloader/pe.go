package bootloader

// The staged PE's boot entry: what `minint stage` adds beside the installed
// system and arms for one boot, what a refresh pins as the persistent
// default while it replaces the system, and what bootfiles removes again.
// The stage and the PE agree on these names through this one definition.
const (
	// PEEntry is the systemd-boot loader entry (loader/entries/PEEntry).
	PEEntry = "minint-pe.conf"
	// PEDir holds the PE's kernel and initramfs on the boot partition.
	PEDir = "minint-pe"
	// PELabel is the syslinux label on BIOS machines; bootfiles' new
	// syslinux.cfg drops it.
	PELabel = "minint-pe"
)
