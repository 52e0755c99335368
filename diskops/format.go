package diskops

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/internal/child"
	"hash/crc32"
	"os"
	"os/exec"
	"strconv"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/google/uuid"
)

// FormatSpec says which filesystem to create.
type FormatSpec struct {
	FS    string `yaml:"fs" json:"fs"` // vfat (or fat32), ext4, swap
	Label string `yaml:"label,omitempty" json:"label,omitempty"`
	UUID  string `yaml:"uuid,omitempty" json:"uuid,omitempty"`
	// HiddenSectors is the partition's start sector (FAT boot records).
	HiddenSectors uint32 `yaml:"-" json:"-"`
	// Mkfs makes ext4 use mkfs.ext4 from PATH instead of the built-in
	// writer (go-diskfs).
	Mkfs bool `yaml:"mkfs,omitempty" json:"mkfs,omitempty"`
	// Progress, if set, is called with the bytes written so far (total 0:
	// the built-in ext4 writer's total is not known in advance; it writes
	// every inode table, a few percent of the filesystem).
	Progress func(done, total int64) `yaml:"-" json:"-"`
}

// formatStorage is go-diskfs's view of the range being formatted: it
// reports the bytes written and hands the writer's runs of zeros to the
// device. go-diskfs writes every inode table and the journal out as zeros
// (1.2 GiB for a 32 GiB file system, ~4% of any disk): on real disks that
// is seconds to minutes of writing, in a PE under TCG seconds of copying.
// A block device clears them with its write-zeroes command (BLKZEROOUT,
// which reads back as zeros by contract; the kernel writes zero pages
// itself where the device has no such command), an image file gets a hole.
type formatStorage struct {
	backend.Storage
	f        *os.File
	block    bool
	progress func(done, total int64)
	done     *int64
}

func (s formatStorage) Writable() (backend.WritableFile, error) {
	w, err := s.Storage.Writable()
	if err != nil {
		return nil, err
	}
	return formatFile{w, s}, nil
}

type formatFile struct {
	backend.WritableFile
	s formatStorage
}

// zeroRun is the smallest write worth offloading: below it the check and
// the call cost more than the copy.
const zeroRun = 64 << 10

func (w formatFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.write(p, off)
	if w.s.progress != nil {
		*w.s.done += int64(n)
		w.s.progress(*w.s.done, 0)
	}
	return n, err
}

func (w formatFile) write(p []byte, off int64) (int, error) {
	if len(p) < zeroRun || !allZero(p) {
		return w.WritableFile.WriteAt(p, off)
	}
	// Whole pages only, so that no cached page is half cleared under a
	// write still in the page cache; the ends are written as usual.
	start := (off + 4095) &^ 4095
	end := (off + int64(len(p))) &^ 4095
	if end-start < zeroRun || offloadZero(w.s.f, w.s.block, start, end-start) != nil {
		return w.WritableFile.WriteAt(p, off)
	}
	if _, err := w.WritableFile.WriteAt(p[:start-off], off); err != nil {
		return 0, err
	}
	if _, err := w.WritableFile.WriteAt(p[end-off:], end); err != nil {
		return int(end - off), err
	}
	return len(p), nil
}

// Format creates a filesystem in the size bytes of f starting at off, then
// probes it back and checks that the label and UUID are what was asked.
func Format(ctx context.Context, f *os.File, off, size int64, s FormatSpec) (*Filesystem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var want *Filesystem
	var err error
	switch s.FS {
	case "vfat", "fat32":
		var vol uint32
		if s.UUID != "" {
			if vol, err = parseVolumeID(s.UUID); err != nil {
				return nil, err
			}
		}
		want, err = FormatFAT32(f, off, size, FATOptions{Label: s.Label, VolumeID: vol, HiddenSectors: s.HiddenSectors})
	case "ext4":
		want, err = formatExt4(ctx, f, off, size, s)
	case "swap":
		want, err = formatSwap(f, off, size, s)
	default:
		return nil, fmt.Errorf("unknown filesystem %q: want vfat, ext4 or swap", s.FS)
	}
	if err != nil {
		return nil, fmt.Errorf("%s at %d: %w", f.Name(), off, err)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	got := ProbeFilesystem(f, off, size)
	if got == nil || got.Type != want.Type || got.Label != want.Label || got.UUID != want.UUID {
		return nil, fmt.Errorf("%s at %d: %w: formatted %+v but probing finds %+v", f.Name(), off, ErrVerify, want, got)
	}
	return got, nil
}

func formatExt4(ctx context.Context, f *os.File, off, size int64, s FormatSpec) (*Filesystem, error) {
	if len(s.Label) > 16 {
		return nil, fmt.Errorf("ext4 label %q is longer than 16 bytes", s.Label)
	}
	u := s.UUID
	if u == "" {
		u = randomUUID()
	}
	parsed, err := uuid.Parse(u)
	if err != nil || len(u) != 36 {
		return nil, fmt.Errorf("ext4 UUID %q: want the form 01234567-89ab-cdef-0123-456789abcdef", u)
	}
	want := &Filesystem{Type: "ext4", Label: s.Label, UUID: parsed.String()}
	if s.Mkfs {
		return want, mkfsExt4(ctx, f, off, size, s.Label, want.UUID)
	}
	if size < 8<<20 {
		return nil, fmt.Errorf("%w: ext4 needs at least 8 MiB, got %s", ErrTooSmall, bytesize.Size(size).Human())
	}
	// Old superblocks in the range would confuse a later probe if the new
	// filesystem did not overwrite them; clear the first MiB.
	if err := zeroRange(f, off, 1<<20, off+size); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := formatStorage{Storage: file.New(f, false), f: f, block: fi.Mode()&os.ModeDevice != 0,
		progress: s.Progress, done: new(int64)}
	// 4 KiB blocks from 128 MiB up: go-diskfs picks 1 KiB below 512 MiB,
	// and an ext4 with 1 KiB blocks cannot hold an inode's xattrs beyond
	// ~1 KiB, so applying an image with larger ones (ACLs, IMA, a user's
	// xattrs) would fail with "no space left" on a small root. (Below
	// 128 MiB go-diskfs cannot lay out 4 KiB blocks with a resize inode.)
	p := &ext4.Params{UUID: &parsed, VolumeName: s.Label}
	if size >= 128<<20 {
		p.SectorsPerBlock = 8
	}
	_, err = ext4.Create(b, size, off, 512, p)
	if err != nil {
		return nil, fmt.Errorf("creating ext4: %w", err)
	}
	if s.Label == "" {
		// go-diskfs substitutes "diskfs_ext4" for an empty label.
		if err := setExt4Label(f, off, ""); err != nil {
			return nil, err
		}
	}
	return want, nil
}

// setExt4Label rewrites the primary superblock's volume name and, with
// metadata_csum, its checksum (crc32c, as the kernel computes it).
func setExt4Label(f *os.File, off int64, label string) error {
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, off+1024); err != nil {
		return err
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return fmt.Errorf("no ext4 superblock at %d", off+1024)
	}
	clear(sb[0x78:0x88])
	copy(sb[0x78:0x88], label)
	if binary.LittleEndian.Uint32(sb[0x64:])&0x400 != 0 {
		binary.LittleEndian.PutUint32(sb[0x3FC:], ^crc32.Checksum(sb[:0x3FC], crc32.MakeTable(crc32.Castagnoli)))
	}
	_, err := f.WriteAt(sb, off+1024)
	return err
}

// mkfsExt4 runs the system's mkfs.ext4 on the range through a path that
// addresses it: the file itself when the range is all of it.
func mkfsExt4(ctx context.Context, f *os.File, off, size int64, label, u string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if off != 0 || (fi.Mode().IsRegular() && fi.Size() != size) {
		return fmt.Errorf("mkfs.ext4 can only format a whole device or file, not %d bytes at offset %d", size, off)
	}
	args := []string{"-F", "-q", "-U", u}
	if label != "" {
		args = append(args, "-L", label)
	}
	args = append(args, f.Name(), strconv.FormatInt(size/1024, 10))
	out, err := child.CombinedOutput(exec.CommandContext(ctx, "mkfs.ext4", args...))
	if err != nil {
		return fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	return nil
}

// formatSwap writes a Linux swap signature (version 1), as mkswap does.
func formatSwap(f *os.File, off, size int64, s FormatSpec) (*Filesystem, error) {
	const page = 4096
	if size < 10*page {
		return nil, fmt.Errorf("%w: swap needs at least 40 KiB", ErrTooSmall)
	}
	if len(s.Label) > 16 {
		return nil, fmt.Errorf("swap label %q is longer than 16 bytes", s.Label)
	}
	u := s.UUID
	if u == "" {
		u = randomUUID()
	}
	parsed, err := uuid.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("swap UUID %q: %v", u, err)
	}
	b := make([]byte, page)
	binary.LittleEndian.PutUint32(b[1024:], 1)
	binary.LittleEndian.PutUint32(b[1028:], uint32(size/page-1))
	copy(b[1024+12:], parsed[:])
	copy(b[1024+28:], s.Label)
	copy(b[page-10:], "SWAPSPACE2")
	if _, err := f.WriteAt(b, off); err != nil {
		return nil, err
	}
	return &Filesystem{Type: "swap", Label: s.Label, UUID: parsed.String()}, nil
}

// FormatPartitions formats every partition of a PartitionResult whose spec
// names a filesystem, through the partition's device node when the kernel
// made one and at its offset on the disk otherwise. progress, if not nil,
// is called before each partition.
func FormatPartitions(ctx context.Context, t *Target, res *PartitionResult, useMkfs bool, progress func(p Planned)) ([]*Filesystem, error) {
	return FormatPartitionsProgress(ctx, t, res, useMkfs, progress, nil)
}

// FormatPartitionsProgress is FormatPartitions that also reports the bytes
// each filesystem writer has written (see FormatSpec.Progress).
func FormatPartitionsProgress(ctx context.Context, t *Target, res *PartitionResult, useMkfs bool, progress func(p Planned), bytes func(done, total int64)) ([]*Filesystem, error) {
	out := make([]*Filesystem, len(res.Partitions))
	for i, p := range res.Partitions {
		if p.FS == "" {
			continue
		}
		if progress != nil {
			progress(p)
		}
		spec := FormatSpec{FS: p.FS, Label: p.Label, UUID: p.UUID, HiddenSectors: uint32(p.Start / int64(t.SectorSize)), Mkfs: useMkfs, Progress: bytes}
		var fs *Filesystem
		var err error
		if i < len(res.Nodes) {
			var pf *os.File
			// Not O_EXCL: t already holds the whole disk exclusively, which
			// keeps everyone else off its partitions, and an exclusive open
			// of a partition would conflict with that very claim (EBUSY).
			pf, err = os.OpenFile(res.Nodes[i], os.O_RDWR, 0)
			if err != nil {
				return out, fmt.Errorf("partition %d (%s): %w", p.Number, p.Name, err)
			}
			fs, err = Format(ctx, pf, 0, p.Size, spec)
			pf.Close()
		} else {
			if useMkfs {
				return out, fmt.Errorf("partition %d (%s): mkfs.ext4 needs a partition device node", p.Number, p.Name)
			}
			fs, err = Format(ctx, t.File, p.Start, p.Size, spec)
		}
		if err != nil {
			return out, fmt.Errorf("partition %d (%s): %w", p.Number, p.Name, err)
		}
		out[i] = fs
	}
	return out, nil
}
