// Package diskops is everything minint does to disks: discover block devices
// from sysfs, select the target with a declarative rule, partition it from a
// layout, format and mount filesystems, clean an applied root except the
// staging folder, and erase disks. Making the result bootable is package
// bootloader's job, on top of this one.
//
// It runs inside the PE (a u-root initramfs without util-linux) and on a
// developer's host against image files and loop devices, so it is pure Go:
// sysfs and ioctls through golang.org/x/sys/unix, partition tables through
// go-diskfs, FAT32 through its own formatter.
//
// Every destructive function checks before it writes and refuses rather than
// guesses: a rule matching two disks, a layout that does not fit, a disk that
// is mounted or read-only give an error naming the device and the reason, and
// nothing is written. Errors wrap the sentinels below so that callers (the
// task-sequence engine) can tell them apart with errors.Is.
package diskops

import "errors"

var (
	// ErrNoDevice: the named device does not exist.
	ErrNoDevice = errors.New("no such device")
	// ErrNoMatch: a selection rule matched no candidate disk.
	ErrNoMatch = errors.New("no disk matches")
	// ErrAmbiguous: a selection rule matched more than one disk.
	ErrAmbiguous = errors.New("more than one disk matches")
	// ErrInUse: the device (or one of its partitions) is mounted, used as
	// swap, held by another device, or is the boot medium.
	ErrInUse = errors.New("device in use")
	// ErrReadOnly: the device is read-only.
	ErrReadOnly = errors.New("device is read-only")
	// ErrTooSmall: the layout or filesystem does not fit the device.
	ErrTooSmall = errors.New("device too small")
	// ErrLayout: the layout itself is invalid (does not add up, unknown
	// type, …), independently of any disk.
	ErrLayout = errors.New("invalid layout")
	// ErrRule: the selection rule itself is invalid.
	ErrRule = errors.New("invalid selection rule")
	// ErrNoPartitionNodes: the kernel did not create device nodes for the
	// new partitions (e.g. a loop device without partition scanning).
	ErrNoPartitionNodes = errors.New("partition device nodes did not appear")
	// ErrUnsafePath: a path escapes the tree it must stay in, or is a
	// symlink where a real directory is required.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrVerify: data read back differs from what was written.
	ErrVerify = errors.New("verification failed")
	// ErrNotFound: a required file (kernel, boot loader) was not found.
	ErrNotFound = errors.New("not found")
)
