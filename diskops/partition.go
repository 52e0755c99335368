package diskops

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// PartitionOptions tunes Partition.
type PartitionOptions struct {
	// DryRun plans and checks everything but writes nothing.
	DryRun bool
	// NodeTimeout bounds the wait for partition device nodes (default 10s).
	NodeTimeout time.Duration
}

// PartitionResult is what Partition did.
type PartitionResult struct {
	Table      string    `json:"table"`
	Partitions []Planned `json:"partitions"`
	// Nodes are the partition device nodes, in layout order, when the
	// kernel created them (block devices only).
	Nodes []string `json:"nodes,omitempty"`
	// Wiped lists the byte ranges zeroed before the table was written.
	Wiped [][2]int64 `json:"wiped,omitempty"`
}

// Partition writes layout to t: it plans first (so a layout that does not
// fit writes nothing), wipes old signatures (the tables at both ends of the
// disk and the first MiB of every old and new partition, which holds every
// filesystem's superblock), writes the new table, asks the kernel to re-read
// it and waits for the partition nodes. For an image file there are no
// nodes to wait for. When the kernel does not produce the nodes the table is
// written and the error wraps ErrNoPartitionNodes; the result is still valid
// and callers can address partitions by offset.
func Partition(ctx context.Context, t *Target, l *Layout, o PartitionOptions) (*PartitionResult, error) {
	planned, err := l.Plan(t.Size, t.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Path, err)
	}
	res := &PartitionResult{Table: l.Table, Partitions: planned}
	ranges := [][2]int64{{0, Align}, {t.Size - Align, Align}}
	if old, err := ReadTable(t.File, t.Size, t.SectorSize); err == nil && old != nil {
		for _, p := range old.Partitions {
			// Superblocks live at the start (filesystems) and the end (md
			// 0.90/1.0, ZFS labels) of a partition.
			ranges = append(ranges, [2]int64{p.Start, min(p.Size, Align)}, [2]int64{p.Start + p.Size - min(p.Size, Align), min(p.Size, Align)})
		}
	}
	for _, p := range planned {
		ranges = append(ranges, [2]int64{p.Start, Align})
	}
	res.Wiped = ranges
	if o.DryRun {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, r := range ranges {
		if err := zeroRange(t.File, r[0], r[1], t.Size); err != nil {
			return nil, fmt.Errorf("%s: wiping old signatures at %d: %w", t.Path, r[0], err)
		}
	}
	ss := int64(t.SectorSize)
	switch l.Table {
	case "gpt":
		tab := &gpt.Table{LogicalSectorSize: t.SectorSize, PhysicalSectorSize: t.SectorSize, ProtectiveMBR: true, GUID: randomUUID()}
		for _, p := range planned {
			var attr uint64
			if p.Bootable {
				attr |= 1 << 2 // legacy BIOS bootable, read by gptmbr.bin
			}
			tab.Partitions = append(tab.Partitions, &gpt.Partition{
				Index: p.Number, Start: uint64(p.Start / ss), End: uint64((p.Start+p.Size)/ss - 1), Size: uint64(p.Size),
				Type: gpt.Type(p.TypeID), Name: p.Name, GUID: randomUUID(), Attributes: attr,
			})
		}
		if err := tab.Write(t.File, t.Size); err != nil {
			return nil, fmt.Errorf("%s: writing GPT: %w", t.Path, err)
		}
	case "mbr":
		tab := &mbr.Table{LogicalSectorSize: t.SectorSize, PhysicalSectorSize: t.SectorSize}
		for _, p := range planned {
			tab.Partitions = append(tab.Partitions, &mbr.Partition{
				Index: p.Number, Bootable: p.Bootable, Type: mbr.Type(p.MBRType),
				Start: uint32(p.Start / ss), Size: uint32(p.Size / ss),
				// CHS 1023/254/63 says "use the LBA fields" to every BIOS.
				StartHead: 254, StartSector: 0xFF, StartCylinder: 0xFF, EndHead: 254, EndSector: 0xFF, EndCylinder: 0xFF,
			})
		}
		if err := tab.Write(t.File, t.Size); err != nil {
			return nil, fmt.Errorf("%s: writing MBR: %w", t.Path, err)
		}
		// go-diskfs leaves the disk signature zero; Windows and blkid's
		// PARTUUID want one.
		sig := make([]byte, 4)
		rand.Read(sig)
		if _, err := t.File.WriteAt(sig, 440); err != nil {
			return nil, err
		}
	}
	if err := t.File.Sync(); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Path, err)
	}
	if !t.IsBlock() {
		return res, nil
	}
	if err := rereadPartitions(ctx, t); err != nil {
		return res, fmt.Errorf("%w: %v", ErrNoPartitionNodes, err)
	}
	timeout := o.NodeTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	nodes, err := waitPartitionNodes(ctx, t.Path, len(planned), timeout)
	if err != nil {
		return res, err
	}
	res.Nodes = nodes
	return res, nil
}

// IsNoNodes reports whether err only says that partition nodes are missing
// (the table itself was written).
func IsNoNodes(err error) bool { return errors.Is(err, ErrNoPartitionNodes) }
