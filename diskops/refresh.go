package diskops

import (
	"context"
	"fmt"
	"strings"
)

// What an in-place refresh needs from the disks: find the file system
// `minint stage` prepared (by its UUID, since device names may differ
// between the old system and the PE) and the boot partition beside it.
// Package bootloader then makes the staged PE the persistent boot default
// there while the old system is replaced.

// FindFilesystem finds the partition whose file system has the given UUID
// (case-insensitive) among the disks Discover lists. It refuses when none
// or several match, naming every file system it saw. Boot media are
// skipped: the staged root is never on the PE's own medium.
func FindFilesystem(ctx context.Context, o DiscoverOptions, uuid string) (*Disk, *PartitionInfo, error) {
	uuid = strings.ToLower(strings.TrimSpace(uuid))
	if uuid == "" {
		return nil, nil, fmt.Errorf("%w: empty file system UUID", ErrNotFound)
	}
	disks, err := Discover(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	type hit struct {
		d *Disk
		i int
	}
	var hits []hit
	var seen []string
	for _, d := range disks {
		if d.BootMedium || d.Kind == "rom" {
			continue
		}
		if d.FS != nil && strings.ToLower(d.FS.UUID) == uuid && d.Table == nil {
			return nil, nil, fmt.Errorf("%w: the file system %s fills the whole disk %s (no partition table, so no ESP beside it)", ErrNotFound, uuid, d.Path)
		}
		for i, p := range d.Partitions() {
			if p.FS == nil {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %s %s", partName(d, p), p.FS.Type, p.FS.UUID))
			if strings.ToLower(p.FS.UUID) == uuid {
				hits = append(hits, hit{d, i})
			}
		}
	}
	switch len(hits) {
	case 0:
		if len(seen) == 0 {
			seen = []string{"(no file systems at all)"}
		}
		return nil, nil, fmt.Errorf("%w: no file system with UUID %s; found:\n  %s", ErrNotFound, uuid, strings.Join(seen, "\n  "))
	case 1:
		return hits[0].d, &hits[0].d.Table.Partitions[hits[0].i], nil
	}
	var c []string
	for _, h := range hits {
		c = append(c, partName(h.d, h.d.Table.Partitions[h.i]))
	}
	// A cloned disk carries the same UUIDs: guessing could clean the
	// wrong machine's data.
	return nil, nil, fmt.Errorf("%w: file system UUID %s is on %s (cloned disks?)", ErrAmbiguous, uuid, strings.Join(c, ", "))
}

func partName(d *Disk, p PartitionInfo) string {
	if p.Device != "" {
		return p.Device
	}
	return fmt.Sprintf("%s partition %d", d.Path, p.Number)
}

// FindESP returns the EFI system partition of d: the one GPT partition of
// type ESP. It refuses when there is none or several.
func FindESP(d *Disk) (*PartitionInfo, error) {
	var idx []int
	for i, p := range d.Partitions() {
		if p.TypeName == "esp" {
			idx = append(idx, i)
		}
	}
	switch len(idx) {
	case 0:
		return nil, fmt.Errorf("%w: %s has no EFI system partition", ErrNotFound, d.Path)
	case 1:
		return &d.Table.Partitions[idx[0]], nil
	}
	var c []string
	for _, i := range idx {
		c = append(c, partName(d, d.Table.Partitions[i]))
	}
	return nil, fmt.Errorf("%w: %s has several EFI system partitions: %s", ErrAmbiguous, d.Path, strings.Join(c, ", "))
}

// FindBootPartition returns the FAT partition an MBR disk's syslinux boots
// from (minint's BIOS layout has exactly one): the one partition with a
// FAT file system. It refuses when there is none or several.
func FindBootPartition(d *Disk) (*PartitionInfo, error) {
	var idx []int
	for i, p := range d.Partitions() {
		if p.FS != nil && p.FS.Type == "vfat" {
			idx = append(idx, i)
		}
	}
	switch len(idx) {
	case 0:
		return nil, fmt.Errorf("%w: %s has no FAT boot partition", ErrNotFound, d.Path)
	case 1:
		return &d.Table.Partitions[idx[0]], nil
	}
	var c []string
	for _, i := range idx {
		c = append(c, partName(d, d.Table.Partitions[i]))
	}
	return nil, fmt.Errorf("%w: %s has several FAT partitions: %s", ErrAmbiguous, d.Path, strings.Join(c, ", "))
}
