package pe

import (
	"context"
	"io"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/wim"
)

// Backend does everything that touches disks, images and power. The engine
// decides what to do and when; the backend does it. SystemBackend is the
// real one (diskops and wim); tests use fakes.
type Backend interface {
	// SelectDisk picks the target disk (never the boot medium).
	SelectDisk(ctx context.Context, rule diskops.Rule) (TargetDisk, error)
	// Existing returns the partitions of disk if it already carries layout
	// (resume after a reboot), or ok false.
	Existing(ctx context.Context, disk TargetDisk, l *diskops.Layout) (parts []Part, ok bool)
	// Look calls f with the root of the file system on part (the one
	// there now, whatever the layout says), mounted read-only, and
	// unmounts it; an error if it holds none that mounts.
	Look(ctx context.Context, disk TargetDisk, part Part, f func(root string) error) error
	// Partition writes layout to disk.
	Partition(ctx context.Context, disk TargetDisk, l *diskops.Layout) ([]Part, error)
	// Format creates the file systems of parts (only those named, if any)
	// and returns parts with their file system UUIDs filled in.
	Format(ctx context.Context, disk TargetDisk, parts []Part, only []string) ([]Part, error)
	// Mount mounts part on dir; the returned function unmounts.
	Mount(ctx context.Context, part Part, dir string) (unmount func() error, err error)
	// Clean empties the target root except the staging folder, so that an
	// interrupted apply can be redone from scratch.
	Clean(ctx context.Context, root string) error
	// Apply applies an image of a WIM to a directory.
	Apply(ctx context.Context, req ApplyRequest) error
	// BootFiles makes the target bootable and returns the loader files
	// that carry the kernel command line.
	BootFiles(ctx context.Context, req BootRequest) ([]answer.BootEntry, error)
	// Power reboots ("reboot") or powers off ("poweroff").
	Power(ctx context.Context, kind string) error
}

// TargetDisk is the selected disk.
type TargetDisk struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Desc describes it for people (model, size, transport).
	Desc string `json:"desc,omitempty"`
}

// Part is a partition of the target disk.
type Part struct {
	diskops.Planned
	// Node is the device node, e.g. /dev/vda2 (empty for image files,
	// which are addressed by offset).
	Node string `json:"node,omitempty"`
	// FSUUID is the file system's UUID once formatted.
	FSUUID string `json:"fs_uuid,omitempty"`
	// Hibernated is set by Existing when the partition holds the memory
	// image of a hibernated system (diskops.Hibernated): nothing on the
	// disk may be mounted then, not even to look.
	Hibernated bool `json:"-"`
}

// ApplyRequest is what the apply-image step asks of the backend.
type ApplyRequest struct {
	Image    io.ReaderAt // the WIM, Size bytes
	Size     int64
	Index    int    // 1-based
	Dir      string // the mounted target root
	Progress func(done, total int64)
	// Checksums is the image's wim.Checksums from the signed manifest,
	// set only when every byte the apply reads is authenticated by that
	// manifest (wim.ApplyOptions.Checksums says why it must be).
	Checksums wim.Checksums
	// BenchNoHash skips the WIM's own SHA-1 check of each file as well
	// (wim.ApplyOptions.InsecureSkipHashCheck): only for BenchUnhashedMedium.
	BenchNoHash bool
}

// BootRequest is what the bootfiles step asks of the backend.
type BootRequest struct {
	Root     string // the mounted target root
	Disk     TargetDisk
	Parts    []Part
	RootPart Part
	Firmware string // bios or uefi
	// SecureBoot: the firmware enforces Secure Boot; auto then means shim.
	SecureBoot bool
	Loader     string // auto, shim, systemd-boot, syslinux, both
	// Cmdline is the extra kernel command line (root= is the backend's
	// job); it carries answer.InitArg when setup runs at first boot.
	Cmdline string
}
