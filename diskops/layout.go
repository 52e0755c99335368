package diskops

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/internal/strictyaml"
)

// Layout is a partitioning plan, shared with the task sequence's partition
// step. Example:
//
//	table: gpt
//	partitions:
//	  - {name: esp, size: 256MiB, type: esp, fs: vfat, label: ESP}
//	  - {name: root, size: rest, type: linux, fs: ext4, label: root}
type Layout struct {
	// Table is "gpt" (the default) or "mbr".
	Table      string          `yaml:"table,omitempty" json:"table,omitempty"`
	Partitions []PartitionSpec `yaml:"partitions" json:"partitions"`
}

// PartitionSpec is one partition of a Layout.
type PartitionSpec struct {
	// Name is the GPT partition name (ignored for MBR) and how the task
	// sequence refers to the partition.
	Name string `yaml:"name" json:"name"`
	// Size is absolute ("256M", see package bytesize), a percentage of
	// the disk's usable space ("50%") or "rest" (what is left; at most one
	// partition).
	Size PartSize `yaml:"size" json:"size"`
	// Type is esp, linux, root-x86-64, bios-boot, swap, msdata, fat32,
	// msr, lvm, home, a GPT type GUID, or an MBR type byte ("0x83").
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// FS is the filesystem Format creates: vfat, ext4, swap, or empty.
	FS    string `yaml:"fs,omitempty" json:"fs,omitempty"`
	Label string `yaml:"label,omitempty" json:"label,omitempty"`
	// UUID is the filesystem UUID (ext4: RFC 4122 form; vfat: XXXX-XXXX),
	// random when empty.
	UUID string `yaml:"uuid,omitempty" json:"uuid,omitempty"`
	// Bootable sets the MBR active flag, or the GPT "legacy BIOS
	// bootable" attribute.
	Bootable bool `yaml:"bootable,omitempty" json:"bootable,omitempty"`
}

// Align is where partitions start and how their sizes are rounded.
const Align = 1 << 20

// ReadLayout reads a YAML layout file and validates it.
func ReadLayout(path string) (*Layout, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l, err := ParseLayout(b)
	var e *strictyaml.Error
	if errors.As(err, &e) && e.Line > 0 {
		return nil, fmt.Errorf("%s:%d:%d: %w: %s", path, e.Line, e.Col, ErrLayout, e.Msg)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// ParseLayout parses and validates a YAML layout.
func ParseLayout(b []byte) (*Layout, error) {
	var l Layout
	if err := strictyaml.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	return &l, l.Validate()
}

// Validate checks the layout on its own, without a disk.
func (l *Layout) Validate() error {
	if l.Table == "" {
		l.Table = "gpt"
	}
	if l.Table != "gpt" && l.Table != "mbr" {
		return fmt.Errorf("%w: table %q: want gpt or mbr", ErrLayout, l.Table)
	}
	if len(l.Partitions) == 0 {
		return fmt.Errorf("%w: no partitions", ErrLayout)
	}
	if l.Table == "mbr" && len(l.Partitions) > 4 {
		return fmt.Errorf("%w: %d partitions, but an MBR holds at most 4 (extended partitions are not supported)", ErrLayout, len(l.Partitions))
	}
	if l.Table == "gpt" && len(l.Partitions) > 128 {
		return fmt.Errorf("%w: %d partitions, but a GPT holds 128", ErrLayout, len(l.Partitions))
	}
	rest, pct := 0, 0.0
	names := map[string]bool{}
	for i, p := range l.Partitions {
		where := fmt.Sprintf("partition %d", i+1)
		if p.Name != "" {
			where += fmt.Sprintf(" (%s)", p.Name)
			if names[p.Name] {
				return fmt.Errorf("%w: %s: name used twice", ErrLayout, where)
			}
			names[p.Name] = true
		}
		if l.Table == "gpt" && len([]rune(p.Name)) > 36 {
			return fmt.Errorf("%w: %s: GPT names hold at most 36 characters", ErrLayout, where)
		}
		switch {
		case p.Size == PartSize{}:
			return fmt.Errorf("%w: %s: no size (want e.g. 256M, 50%% or rest)", ErrLayout, where)
		case p.Size.Rest:
			rest++
		case p.Size.Percent > 0:
			pct += p.Size.Percent
		}
		if _, _, err := resolveType(l.Table, p.Type); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrLayout, where, err)
		}
		switch p.FS {
		case "", "ext4", "swap":
		case "vfat", "fat32":
			if len(p.Label) > 11 {
				return fmt.Errorf("%w: %s: FAT labels hold at most 11 characters, %q has %d", ErrLayout, where, p.Label, len(p.Label))
			}
		default:
			return fmt.Errorf("%w: %s: filesystem %q: want vfat, ext4, swap or none", ErrLayout, where, p.FS)
		}
		if p.FS == "ext4" && len(p.Label) > 16 {
			return fmt.Errorf("%w: %s: ext4 labels hold at most 16 bytes", ErrLayout, where)
		}
		if p.UUID != "" {
			if err := checkFSUUID(p.FS, p.UUID); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrLayout, where, err)
			}
		}
	}
	if rest > 1 {
		return fmt.Errorf("%w: %d partitions have size rest; at most one may", ErrLayout, rest)
	}
	if pct > 100 {
		return fmt.Errorf("%w: percentages add up to %g%%", ErrLayout, pct)
	}
	return nil
}

// PartSize is a partition's size in a layout: a size (package bytesize:
// 256M = 256 MiB, 4GB = 4×10⁹ bytes, rounded up to the 1 MiB alignment),
// a percentage of the disk's usable space ("50%", "12.5%") or "rest".
type PartSize struct {
	Bytes   bytesize.Size // when neither Percent nor Rest
	Percent float64       // in (0, 100]
	Rest    bool
}

// ParsePartSize reads a partition size.
func ParsePartSize(s string) (PartSize, error) {
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return PartSize{}, fmt.Errorf("no size (want e.g. 256M, 50%% or rest)")
	case strings.EqualFold(t, "rest"):
		return PartSize{Rest: true}, nil
	case strings.HasSuffix(t, "%"):
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
		if err != nil || !(f > 0 && f <= 100) {
			return PartSize{}, fmt.Errorf("size %q: want a percentage in (0, 100]", s)
		}
		return PartSize{Percent: f}, nil
	}
	n, err := bytesize.Parse(t)
	if err != nil {
		return PartSize{}, fmt.Errorf("%w (or a percentage such as 50%%, or rest)", err)
	}
	if n < Align {
		return PartSize{}, fmt.Errorf("size %s is below the 1 MiB alignment", n.Explain())
	}
	return PartSize{Bytes: n}, nil
}

// String writes the size as ParsePartSize reads it; "" for the zero
// PartSize (no size given).
func (p PartSize) String() string {
	switch {
	case p.Rest:
		return "rest"
	case p.Percent > 0:
		return strconv.FormatFloat(p.Percent, 'f', -1, 64) + "%"
	case p.Bytes > 0:
		return p.Bytes.String()
	}
	return ""
}

// UnmarshalYAML reports a bad size at its line and column.
func (p *PartSize) UnmarshalYAML(n ast.Node) error {
	text, _ := strictyaml.Scalar(n)
	v, err := ParsePartSize(text)
	if err != nil {
		return strictyaml.Errorf(n, "%v", err)
	}
	*p = v
	return nil
}

// MarshalText writes String (JSON plans, journals).
func (p PartSize) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (p *PartSize) UnmarshalText(b []byte) error {
	v, err := ParsePartSize(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Planned is a partition placed on a particular disk.
type Planned struct {
	PartitionSpec
	Number  int    `json:"number"`
	Start   int64  `json:"start"` // bytes
	Size    int64  `json:"size"`  // bytes
	TypeID  string `json:"type-id"`
	MBRType byte   `json:"-"`
}

// Plan places the layout's partitions on a disk of diskSize bytes with the
// given logical sector size: each starts on a 1 MiB boundary, percentages
// are of the usable space, and "rest" takes what is left. It fails with
// ErrTooSmall when the layout does not fit.
func (l *Layout) Plan(diskSize int64, sectorSize int) ([]Planned, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if sectorSize <= 0 {
		sectorSize = 512
	}
	first := int64(Align)
	end := diskSize
	if l.Table == "gpt" {
		end -= 33 * int64(sectorSize) // backup entries + header
		if sectorSize == 4096 {
			end = diskSize - 6*4096
		}
	}
	if l.Table == "mbr" && diskSize > (1<<32)*int64(sectorSize) {
		return nil, fmt.Errorf("%w: the disk has %s but an MBR addresses at most 2 TiB; use table: gpt", ErrLayout, bytesize.Size(diskSize).Human())
	}
	end = end / Align * Align
	usable := end - first
	if usable <= 0 {
		return nil, fmt.Errorf("%w: a %s disk has no room for partitions", ErrTooSmall, bytesize.Size(diskSize).Human())
	}
	var fixed int64
	sizes := make([]int64, len(l.Partitions))
	restIdx := -1
	for i, p := range l.Partitions {
		switch {
		case p.Size.Rest:
			restIdx = i
			continue
		case p.Size.Percent > 0:
			sizes[i] = int64(float64(usable)*p.Size.Percent/100) / Align * Align
			if sizes[i] == 0 {
				return nil, fmt.Errorf("%w: partition %d (%s): %s of %s is less than 1 MiB", ErrTooSmall, i+1, p.Name, p.Size, bytesize.Size(usable).Human())
			}
		default:
			sizes[i] = int64(p.Size.Bytes)
			if sizes[i] <= usable { // larger ones fail below; rounding them up could overflow
				sizes[i] = (sizes[i] + Align - 1) / Align * Align
			}
		}
		// Saturating: a hostile layout's sizes cannot wrap around.
		fixed = min(fixed, math.MaxInt64-Align-sizes[i]) + sizes[i]
	}
	if fixed > usable || (restIdx >= 0 && fixed+Align > usable) {
		need := fixed
		if restIdx >= 0 {
			need += Align
		}
		return nil, fmt.Errorf("%w: the layout needs %s but the disk has %s usable (%s in all)", ErrTooSmall, bytesize.Size(need).Human(), bytesize.Size(usable).Human(), bytesize.Size(diskSize).Human())
	}
	if restIdx >= 0 {
		sizes[restIdx] = usable - fixed
	}
	out := make([]Planned, len(l.Partitions))
	off := first
	for i, p := range l.Partitions {
		guid, mbr, _ := resolveType(l.Table, p.Type)
		out[i] = Planned{PartitionSpec: p, Number: i + 1, Start: off, Size: sizes[i], TypeID: guid, MBRType: mbr}
		if l.Table == "mbr" {
			out[i].TypeID = fmt.Sprintf("0x%02x", mbr)
		}
		off += sizes[i]
	}
	return out, nil
}

func checkFSUUID(fs, u string) error {
	switch fs {
	case "vfat", "fat32":
		if _, err := parseVolumeID(u); err != nil {
			return err
		}
	default:
		if _, err := parseUUID(u); err != nil {
			return err
		}
	}
	return nil
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return u, fmt.Errorf("UUID %q: want the form 01234567-89ab-cdef-0123-456789abcdef", s)
	}
	for i := 0; i < 16; i++ {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return u, fmt.Errorf("UUID %q: not hexadecimal", s)
		}
		u[i] = byte(v)
	}
	return u, nil
}

func parseVolumeID(s string) (uint32, error) {
	h := strings.ReplaceAll(s, "-", "")
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil || len(h) != 8 {
		return 0, fmt.Errorf("FAT volume ID %q: want the form 1234-ABCD", s)
	}
	return uint32(v), nil
}
