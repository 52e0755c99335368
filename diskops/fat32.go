package diskops

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"github.com/minint/minint/bytesize"
	"io"
	"strings"
	"time"
)

// FATOptions tunes FormatFAT32.
type FATOptions struct {
	// Label is the volume label, up to 11 characters; stored upper case.
	Label string
	// VolumeID is the serial number blkid shows as the UUID (XXXX-XXXX);
	// 0 means random.
	VolumeID uint32
	// HiddenSectors is the partition's first sector on its disk, which
	// boot code on the volume uses; 0 for a partitionless volume.
	HiddenSectors uint32
	// Now stamps the label's directory entry (default time.Now).
	Now time.Time
}

const (
	fatSector       = 512
	fatReserved     = 32
	fatMinClusters  = 65525 // fewer makes it FAT16 by definition
	fatMaxClusters  = 0x0FFFFFF5
	fatLabelInvalid = "*?.,;:/\\|+=<>[]\""
)

// fatGeometry is the computed shape of a FAT32 volume.
type fatGeometry struct {
	totalSectors  uint32
	secPerCluster uint32
	fatSectors    uint32
	clusters      uint32
}

func fatLayout(size int64) (fatGeometry, error) {
	var g fatGeometry
	if size/fatSector > 0xFFFFFFFF {
		return g, fmt.Errorf("%w: FAT32 volumes hold at most 2 TiB", ErrTooSmall)
	}
	g.totalSectors = uint32(size / fatSector)
	// Microsoft's cluster-size table, which firmware is tested against.
	switch {
	case size <= 260<<20:
		g.secPerCluster = 1
	case size <= 8<<30:
		g.secPerCluster = 8
	case size <= 16<<30:
		g.secPerCluster = 16
	case size <= 32<<30:
		g.secPerCluster = 32
	default:
		g.secPerCluster = 64
	}
	// The FAT size formula of the FAT specification (it over-allocates a
	// little, never under-allocates).
	tmp1 := uint64(g.totalSectors) - fatReserved
	tmp2 := (256*uint64(g.secPerCluster) + 2) / 2
	g.fatSectors = uint32((tmp1 + tmp2 - 1) / tmp2)
	data := int64(g.totalSectors) - fatReserved - 2*int64(g.fatSectors)
	if data <= 0 {
		return g, fmt.Errorf("%w: %d bytes cannot hold a FAT32 volume (minimum about 33 MiB)", ErrTooSmall, size)
	}
	g.clusters = uint32(data / int64(g.secPerCluster))
	if g.clusters < fatMinClusters {
		return g, fmt.Errorf("%w: %s gives %d clusters, FAT32 needs at least %d (about 33 MiB)", ErrTooSmall, bytesize.Size(size).Human(), g.clusters, fatMinClusters)
	}
	if g.clusters > fatMaxClusters || uint64(g.fatSectors)*fatSector/4 < uint64(g.clusters)+2 {
		return g, fmt.Errorf("FAT32 geometry for %d bytes does not add up", size)
	}
	return g, nil
}

// FormatFAT32 writes an empty FAT32 filesystem into the size bytes of w
// starting at off: boot sector and its backup, FSInfo with the exact free
// cluster count, two FATs and a root directory cluster (holding the volume
// label). The result is fsck.vfat-clean and mountable by Linux and UEFI
// firmware.
func FormatFAT32(w io.WriterAt, off, size int64, o FATOptions) (*Filesystem, error) {
	g, err := fatLayout(size)
	if err != nil {
		return nil, err
	}
	label := strings.ToUpper(strings.TrimSpace(o.Label))
	if len(label) > 11 || strings.ContainsAny(label, fatLabelInvalid) {
		return nil, fmt.Errorf("FAT label %q: at most 11 characters, none of %s", o.Label, fatLabelInvalid)
	}
	for _, c := range label {
		if c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("FAT label %q: ASCII only", o.Label)
		}
	}
	vol := o.VolumeID
	if vol == 0 {
		var b [4]byte
		rand.Read(b[:])
		vol = binary.LittleEndian.Uint32(b[:]) | 1
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}

	bs := make([]byte, fatSector)
	copy(bs, []byte{0xEB, 0x58, 0x90})
	copy(bs[3:], "MININT  ")
	binary.LittleEndian.PutUint16(bs[11:], fatSector)
	bs[13] = byte(g.secPerCluster)
	binary.LittleEndian.PutUint16(bs[14:], fatReserved)
	bs[16] = 2    // FATs
	bs[21] = 0xF8 // fixed disk
	binary.LittleEndian.PutUint16(bs[24:], 63)
	binary.LittleEndian.PutUint16(bs[26:], 255)
	binary.LittleEndian.PutUint32(bs[28:], o.HiddenSectors)
	binary.LittleEndian.PutUint32(bs[32:], g.totalSectors)
	binary.LittleEndian.PutUint32(bs[36:], g.fatSectors)
	binary.LittleEndian.PutUint32(bs[44:], 2) // root cluster
	binary.LittleEndian.PutUint16(bs[48:], 1) // FSInfo sector
	binary.LittleEndian.PutUint16(bs[50:], 6) // backup boot sector
	bs[64] = 0x80
	bs[66] = 0x29
	binary.LittleEndian.PutUint32(bs[67:], vol)
	vl := label
	if vl == "" {
		vl = "NO NAME"
	}
	copy(bs[71:82], fmt.Sprintf("%-11s", vl))
	copy(bs[82:], "FAT32   ")
	// Not a system disk: hand over to the next boot device.
	copy(bs[90:], []byte{0xCD, 0x18, 0xEB, 0xFE}) // int 18h; jmp $
	bs[510], bs[511] = 0x55, 0xAA

	fsinfo := make([]byte, fatSector)
	binary.LittleEndian.PutUint32(fsinfo[0:], 0x41615252)
	binary.LittleEndian.PutUint32(fsinfo[484:], 0x61417272)
	binary.LittleEndian.PutUint32(fsinfo[488:], g.clusters-1) // all but the root cluster
	binary.LittleEndian.PutUint32(fsinfo[492:], 3)
	binary.LittleEndian.PutUint32(fsinfo[508:], 0xAA550000)

	reserved := make([]byte, fatReserved*fatSector)
	copy(reserved[0:], bs)
	copy(reserved[fatSector:], fsinfo)
	copy(reserved[6*fatSector:], bs)
	copy(reserved[7*fatSector:], fsinfo)
	if _, err := w.WriteAt(reserved, off); err != nil {
		return nil, fmt.Errorf("writing FAT32 boot sectors: %w", err)
	}

	fatStart := off + fatReserved*fatSector
	fatBytes := int64(g.fatSectors) * fatSector
	head := make([]byte, 12)
	binary.LittleEndian.PutUint32(head[0:], 0x0FFFFFF8)
	binary.LittleEndian.PutUint32(head[4:], 0x0FFFFFFF)
	binary.LittleEndian.PutUint32(head[8:], 0x0FFFFFFF) // root directory: one cluster, end of chain
	chunk := make([]byte, min(fatBytes, 1<<20))
	for i := 0; i < 2; i++ {
		base := fatStart + int64(i)*fatBytes
		for done := int64(0); done < fatBytes; {
			n := min(int64(len(chunk)), fatBytes-done)
			clear(chunk)
			if done == 0 {
				copy(chunk, head)
			}
			if _, err := w.WriteAt(chunk[:n], base+done); err != nil {
				return nil, fmt.Errorf("writing FAT %d: %w", i+1, err)
			}
			done += n
		}
	}

	root := make([]byte, g.secPerCluster*fatSector)
	if label != "" {
		copy(root[0:11], fmt.Sprintf("%-11s", label))
		root[11] = 0x08 // volume label
		t, d := fatTime(now)
		binary.LittleEndian.PutUint16(root[22:], t)
		binary.LittleEndian.PutUint16(root[24:], d)
	}
	if _, err := w.WriteAt(root, fatStart+2*fatBytes); err != nil {
		return nil, fmt.Errorf("writing FAT32 root directory: %w", err)
	}
	return &Filesystem{Type: "vfat", Label: label, UUID: fmt.Sprintf("%04X-%04X", vol>>16, vol&0xFFFF)}, nil
}

func fatTime(t time.Time) (tm, date uint16) {
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	date = uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
	return
}
