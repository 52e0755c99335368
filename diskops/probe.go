package diskops

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Filesystem is what a signature probe found at the start of a device or
// partition. Type is blkid's name for it ("ext4", "vfat", "iso9660",
// "swap", "ntfs", "squashfs", "btrfs", "xfs").
type Filesystem struct {
	Type  string `json:"type" yaml:"type"`
	Label string `json:"label,omitempty" yaml:"label,omitempty"`
	UUID  string `json:"uuid,omitempty" yaml:"uuid,omitempty"`
}

// Table is a partition table read from a disk.
type Table struct {
	Type       string          `json:"type"` // "gpt" or "mbr"
	UUID       string          `json:"uuid,omitempty"`
	SectorSize int             `json:"sector-size"`
	Partitions []PartitionInfo `json:"partitions"`
}

// PartitionInfo is one entry of a partition table, with what probing its
// first bytes found.
type PartitionInfo struct {
	Number int    `json:"number"` // 1-based, as in the device name sda1
	Start  int64  `json:"start"`  // bytes from the start of the disk
	Size   int64  `json:"size"`   // bytes
	Type   string `json:"type"`   // GPT type GUID or MBR type as "0x83"
	// TypeName is the short name of Type when it is one minint knows
	// ("esp", "linux", "bios-boot", "swap", "msdata", …).
	TypeName   string      `json:"type-name,omitempty"`
	UUID       string      `json:"partuuid,omitempty"`
	Name       string      `json:"partlabel,omitempty"`
	Attributes uint64      `json:"attributes,omitempty"`
	Bootable   bool        `json:"bootable,omitempty"` // MBR active flag
	Device     string      `json:"device,omitempty"`   // /dev node when the kernel made one
	FS         *Filesystem `json:"fs,omitempty"`
}

// ErrFormat is returned by the probes for bytes that look like a structure
// but are inconsistent (bad CRC, entries out of range).
var ErrFormat = errors.New("malformed partition table")

// maxGPTEntries bounds what a hostile header can make us allocate.
const maxGPTEntries = 4096

// ReadTable reads a GPT (preferred, when its header CRC is valid) or MBR
// partition table from r, a disk of size bytes. sectorSize is the logical
// sector size; 0 tries 512 then 4096. It returns (nil, nil) when there is
// no table.
func ReadTable(r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	sizes := []int{sectorSize}
	if sectorSize == 0 {
		sizes = []int{512, 4096}
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		if size < 512 {
			return nil, nil
		}
		return nil, err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, nil
	}
	var gptErr error
	for _, ss := range sizes {
		t, err := readGPT(r, size, ss)
		if err == nil && t != nil {
			return t, nil
		}
		if err != nil {
			gptErr = err
		}
	}
	// A protective MBR whose GPT we could not read is not an MBR disk.
	for i := 0; i < 4; i++ {
		if mbr[446+16*i+4] == 0xEE {
			if gptErr == nil {
				gptErr = fmt.Errorf("%w: protective MBR without a valid GPT header", ErrFormat)
			}
			return nil, gptErr
		}
	}
	// A FAT or NTFS boot sector also ends in 55 AA: a filesystem on the
	// whole device, not a table.
	if fs := probeBootSector(mbr); fs != nil {
		return nil, nil
	}
	return readMBR(mbr, size)
}

func readMBR(b []byte, size int64) (*Table, error) {
	t := &Table{Type: "mbr", SectorSize: 512, UUID: fmt.Sprintf("%08x", binary.LittleEndian.Uint32(b[440:]))}
	for i := 0; i < 4; i++ {
		e := b[446+16*i : 446+16*i+16]
		if e[0] != 0 && e[0] != 0x80 {
			return nil, fmt.Errorf("%w: MBR entry %d has boot flag %#x", ErrFormat, i+1, e[0])
		}
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * 512
		n := int64(binary.LittleEndian.Uint32(e[12:])) * 512
		if typ == 0 || n == 0 {
			continue
		}
		// Start 0 is legal in hybrid ISOs (a partition covering the image).
		if size > 0 && start+n > size {
			return nil, fmt.Errorf("%w: MBR partition %d (%d+%d bytes) lies outside the disk (%d bytes)", ErrFormat, i+1, start, n, size)
		}
		p := PartitionInfo{Number: i + 1, Start: start, Size: n, Type: fmt.Sprintf("0x%02x", typ), Bootable: e[0] == 0x80}
		p.TypeName = mbrTypeName(typ)
		p.UUID = fmt.Sprintf("%s-%02x", t.UUID, i+1)
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

func readGPT(r io.ReaderAt, size int64, ss int) (*Table, error) {
	h := make([]byte, ss)
	if _, err := r.ReadAt(h, int64(ss)); err != nil {
		return nil, nil
	}
	if string(h[:8]) != "EFI PART" {
		return nil, nil
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < 92 || int(hsize) > ss {
		return nil, fmt.Errorf("%w: GPT header size %d", ErrFormat, hsize)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	hc := append([]byte(nil), h[:hsize]...)
	binary.LittleEndian.PutUint32(hc[16:], 0)
	if crc32.ChecksumIEEE(hc) != want {
		return nil, fmt.Errorf("%w: GPT header checksum mismatch", ErrFormat)
	}
	entLBA := int64(binary.LittleEndian.Uint64(h[72:]))
	count := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if count > maxGPTEntries || esize < 128 || esize > 4096 || esize%8 != 0 {
		return nil, fmt.Errorf("%w: GPT with %d entries of %d bytes", ErrFormat, count, esize)
	}
	alen := int64(count) * int64(esize)
	if entLBA < 2 || entLBA > (1<<62)/int64(ss) || (size > 0 && entLBA*int64(ss)+alen > size) {
		return nil, fmt.Errorf("%w: GPT entry array at LBA %d outside the disk", ErrFormat, entLBA)
	}
	arr := make([]byte, alen)
	if _, err := r.ReadAt(arr, entLBA*int64(ss)); err != nil {
		return nil, fmt.Errorf("reading GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(arr) != binary.LittleEndian.Uint32(h[88:]) {
		return nil, fmt.Errorf("%w: GPT entry array checksum mismatch", ErrFormat)
	}
	t := &Table{Type: "gpt", SectorSize: ss, UUID: guidString(h[56:72])}
	for i := 0; i < int(count); i++ {
		e := arr[i*int(esize) : (i+1)*int(esize)]
		if allZero(e[:16]) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		if last < first || (size > 0 && (last+1)*int64(ss) > size) || first > (1<<62)/int64(ss) {
			return nil, fmt.Errorf("%w: GPT partition %d (LBA %d-%d) lies outside the disk", ErrFormat, i+1, first, last)
		}
		typ := guidString(e[:16])
		p := PartitionInfo{
			Number:     i + 1,
			Start:      first * int64(ss),
			Size:       (last - first + 1) * int64(ss),
			Type:       typ,
			TypeName:   gptTypeName(typ),
			UUID:       guidString(e[16:32]),
			Attributes: binary.LittleEndian.Uint64(e[48:]),
			Name:       utf16z(e[56:128]),
		}
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

// guidString formats a GPT mixed-endian GUID the way blkid prints it.
func guidString(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16z(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// zeros is compared against, never written (bytes.Equal is vectorized
// where a byte loop is not).
var zeros [64 << 10]byte

// Hibernated is the Filesystem type of a swap area that holds the memory
// image of a hibernated Linux system (blkid's name for it). Its file
// systems are as that system left them in memory, not as they are on the
// disk: mounting one now, even read-only with its log replayed, would
// corrupt it when the system resumes.
const Hibernated = "swsuspend"

// hibernated reports whether sig, the last 10 bytes of a swap area's
// first page, is one of the signatures hibernation writes there in place
// of SWAPSPACE2, as util-linux's blkid and swapon know them: the
// kernel's S1SUSPEND, S2SUSPEND, ULSUSPEND (uswsusp), LINHIB0001 and
// TuxOnIce's.
func hibernated(sig []byte) bool {
	for _, m := range []string{"S1SUSPEND", "S2SUSPEND", "ULSUSPEND", "LINHIB0001", "\xed\xc3\x02\xe9\x98\x56\xe5\x0c"} {
		if bytes.HasPrefix(sig, []byte(m)) {
			return true
		}
	}
	return false
}

// ProbeFilesystem looks for a filesystem signature in the size bytes of r
// starting at off. It returns nil when it finds none it knows.
func ProbeFilesystem(r io.ReaderAt, off, size int64) *Filesystem {
	// 64 KiB + a little covers every superblock probed here except
	// iso9660's and btrfs's, which are read separately.
	buf := make([]byte, 8192)
	n, _ := r.ReadAt(buf, off)
	buf = buf[:n]
	if len(buf) >= 1024+256 {
		if fs := probeExt(buf[1024:]); fs != nil {
			return fs
		}
	}
	if len(buf) >= 512 {
		if fs := probeBootSector(buf[:512]); fs != nil {
			return fs
		}
	}
	if len(buf) >= 4096 && string(buf[4096-10:4096]) == "SWAPSPACE2" {
		return &Filesystem{Type: "swap", UUID: uuidString(buf[1024+12 : 1024+28]), Label: cstr(buf[1024+28 : 1024+44])}
	}
	if len(buf) >= 4096 && hibernated(buf[4096-10:4096]) {
		return &Filesystem{Type: Hibernated}
	}
	if len(buf) >= 4 && string(buf[:4]) == "hsqs" {
		return &Filesystem{Type: "squashfs"}
	}
	if len(buf) >= 128 && string(buf[:4]) == "XFSB" {
		return &Filesystem{Type: "xfs", UUID: uuidString(buf[32:48]), Label: cstr(buf[108:120])}
	}
	if size == 0 || size >= 0x8000+2048 {
		pvd := make([]byte, 2048)
		if n, _ := r.ReadAt(pvd, off+0x8000); n == len(pvd) && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
			// blkid's UUID for ISO 9660 is the creation time 2006-01-02-15-04-05-00.
			c := pvd[813:829]
			uuid := fmt.Sprintf("%s-%s-%s-%s-%s-%s-%s", c[0:4], c[4:6], c[6:8], c[8:10], c[10:12], c[12:14], c[14:16])
			return &Filesystem{Type: "iso9660", Label: strings.TrimRight(string(pvd[40:72]), " "), UUID: uuid}
		}
	}
	if size == 0 || size >= 0x10000+4096 {
		sb := make([]byte, 4096)
		if n, _ := r.ReadAt(sb, off+0x10000); n == len(sb) && string(sb[64:72]) == "_BHRfS_M" {
			return &Filesystem{Type: "btrfs", UUID: uuidString(sb[32:48]), Label: cstr(sb[299 : 299+256])}
		}
	}
	return nil
}

func probeExt(sb []byte) *Filesystem {
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return nil
	}
	compat := binary.LittleEndian.Uint32(sb[0x5C:])
	incompat := binary.LittleEndian.Uint32(sb[0x60:])
	rocompat := binary.LittleEndian.Uint32(sb[0x64:])
	typ := "ext2"
	switch {
	case incompat&^0x3 != 0 || rocompat&^0x7 != 0: // extents, 64bit, flex_bg, huge_file, …
		typ = "ext4"
	case compat&0x4 != 0: // has_journal
		typ = "ext3"
	}
	return &Filesystem{Type: typ, UUID: uuidString(sb[0x68:0x78]), Label: cstr(sb[0x78:0x88])}
}

// probeBootSector recognises FAT12/16/32 and NTFS boot sectors.
func probeBootSector(b []byte) *Filesystem {
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil
	}
	if string(b[3:11]) == "NTFS    " {
		return &Filesystem{Type: "ntfs", UUID: strings.ToUpper(fmt.Sprintf("%016x", binary.LittleEndian.Uint64(b[0x48:])))}
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	if (b[0] != 0xEB && b[0] != 0xE9) || bps < 512 || bps > 4096 || bps&(bps-1) != 0 || b[13] == 0 || b[16] == 0 {
		return nil
	}
	var id []byte
	var label string
	switch {
	case string(b[82:87]) == "FAT32" || (binary.LittleEndian.Uint16(b[22:]) == 0 && b[66] == 0x29):
		id, label = b[67:71], string(b[71:82])
	case b[38] == 0x29:
		id, label = b[39:43], string(b[43:54])
	default:
		return &Filesystem{Type: "vfat"}
	}
	label = strings.TrimRight(label, " ")
	if label == "NO NAME" {
		label = ""
	}
	v := binary.LittleEndian.Uint32(id)
	return &Filesystem{Type: "vfat", Label: label, UUID: fmt.Sprintf("%04X-%04X", v>>16, v&0xFFFF)}
}

func uuidString(b []byte) string {
	if allZero(b) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
