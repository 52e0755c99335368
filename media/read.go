package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrFormat reports an image that is not what media writes.
var ErrFormat = errors.New("not a minint hybrid ISO")

const isoBlock = 2048

// Boot platforms in an El Torito catalog.
const (
	PlatformBIOS = 0x00
	PlatformEFI  = 0xef
)

// BootEntry is one El Torito boot image.
type BootEntry struct {
	Platform  byte
	Bootable  bool
	Emulation byte
	LoadSize  uint16 // 512-byte sectors
	LBA       uint32 // 2048-byte blocks
}

// ReadBootCatalog finds the El Torito boot record and returns the catalog's
// entries in order.
func ReadBootCatalog(r io.ReaderAt) ([]BootEntry, error) {
	var catLBA uint32
	for s := int64(16); s < 64; s++ {
		vd, err := readAt(r, s*isoBlock, isoBlock)
		if err != nil {
			return nil, fmt.Errorf("%w: volume descriptor %d: %w", ErrFormat, s, err)
		}
		if string(vd[1:6]) != "CD001" {
			return nil, fmt.Errorf("%w: no volume descriptor at block %d", ErrFormat, s)
		}
		if vd[0] == 0 && bytes.HasPrefix(vd[7:], []byte("EL TORITO SPECIFICATION")) {
			catLBA = binary.LittleEndian.Uint32(vd[0x47:])
			break
		}
		if vd[0] == 255 {
			return nil, fmt.Errorf("%w: no El Torito boot record", ErrFormat)
		}
	}
	cat, err := readAt(r, int64(catLBA)*isoBlock, isoBlock)
	if err != nil {
		return nil, fmt.Errorf("%w: boot catalog: %w", ErrFormat, err)
	}
	return parseBootCatalog(cat)
}

// parseBootCatalog reads the entries of an El Torito boot catalog sector.
func parseBootCatalog(cat []byte) ([]BootEntry, error) {
	if len(cat) < 64 || cat[0] != 1 || cat[0x1e] != 0x55 || cat[0x1f] != 0xaa {
		return nil, fmt.Errorf("%w: boot catalog has no validation entry", ErrFormat)
	}
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(cat[i:])
	}
	if sum != 0 {
		return nil, fmt.Errorf("%w: boot catalog validation entry checksum is wrong", ErrFormat)
	}
	entry := func(b []byte, platform byte) BootEntry {
		return BootEntry{Platform: platform, Bootable: b[0] == 0x88, Emulation: b[1],
			LoadSize: binary.LittleEndian.Uint16(b[6:]), LBA: binary.LittleEndian.Uint32(b[8:])}
	}
	out := []BootEntry{entry(cat[32:64], cat[1])}
	for off := 64; off+32 <= len(cat); {
		h := cat[off : off+32]
		if h[0] != 0x90 && h[0] != 0x91 {
			break
		}
		n := int(binary.LittleEndian.Uint16(h[2:]))
		off += 32
		for i := 0; i < n && off+32 <= len(cat); i++ {
			out = append(out, entry(cat[off:off+32], h[1]))
			off += 32
		}
		if h[0] == 0x91 {
			break
		}
	}
	return out, nil
}

// fixVolumeDescriptors sets the dates go-diskfs takes from the clock to the
// epoch, and returns the ISO 9660 volume size in bytes. It also truncates
// the preallocated file to that size.
func fixVolumeDescriptors(f *os.File, epoch time.Time) (int64, error) {
	var blocks uint32
	stamp := []byte(epoch.UTC().Format("20060102150405") + "00\x00")
	unset := []byte("0000000000000000\x00")
	for s := int64(16); s < 64; s++ {
		vd, err := readAt(f, s*isoBlock, isoBlock)
		if err != nil {
			return 0, err
		}
		if string(vd[1:6]) != "CD001" {
			return 0, fmt.Errorf("%w: no volume descriptor at block %d", ErrFormat, s)
		}
		if vd[0] == 255 {
			break
		}
		if vd[0] != 1 && vd[0] != 2 {
			continue
		}
		if vd[0] == 1 {
			blocks = binary.LittleEndian.Uint32(vd[80:])
		}
		// go-diskfs pads identifiers with NULs; ISO 9660 wants spaces.
		if vd[0] == 1 {
			for _, r := range [][2]int{{8, 40}, {40, 72}, {190, 813}} {
				for i := r[0]; i < r[1]; i++ {
					if vd[i] == 0 {
						vd[i] = ' '
					}
				}
			}
		}
		copy(vd[813:], stamp)
		copy(vd[830:], stamp)
		copy(vd[847:], unset)
		copy(vd[864:], stamp)
		if _, err := f.WriteAt(vd, s*isoBlock); err != nil {
			return 0, err
		}
	}
	if blocks == 0 {
		return 0, fmt.Errorf("%w: no primary volume descriptor", ErrFormat)
	}
	size := int64(blocks) * isoBlock
	return size, f.Truncate(size)
}

// fixDirectoryRecords walks the whole directory tree from the primary
// volume descriptor and rewrites what go-diskfs takes from the host rather
// than from the content: every recording date and Rock Ridge timestamp
// (stat's ctime cannot be set, so TF entries would carry the build's clock)
// and the Rock Ridge owner (set to root:root).
func fixDirectoryRecords(f *os.File, epoch time.Time) error {
	pvd, err := readAt(f, 16*isoBlock, isoBlock)
	if err != nil {
		return err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return fmt.Errorf("%w: no primary volume descriptor at block 16", ErrFormat)
	}
	e := epoch.UTC()
	short := []byte{byte(e.Year() - 1900), byte(e.Month()), byte(e.Day()), byte(e.Hour()), byte(e.Minute()), byte(e.Second()), 0}
	long := []byte(e.Format("20060102150405") + "00\x00")

	fixSUSP := func(su []byte) ([][3]uint32, error) {
		var ce [][3]uint32
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				break
			}
			ent := su[:l]
			switch string(ent[:2]) {
			case "TF":
				size := 7
				if ent[4]&0x80 != 0 {
					size = 17
				}
				for off := 5; off+size <= l; off += size {
					if size == 7 {
						copy(ent[off:], short)
					} else {
						copy(ent[off:], long)
					}
				}
			case "PX":
				if l >= 36 {
					for _, off := range []int{20, 28} { // uid, gid (both-endian)
						for i := 0; i < 8; i++ {
							ent[off+i] = 0
						}
					}
				}
			case "CE":
				if l >= 28 {
					ce = append(ce, [3]uint32{binary.LittleEndian.Uint32(ent[4:]), binary.LittleEndian.Uint32(ent[12:]), binary.LittleEndian.Uint32(ent[20:])})
				}
			case "ST":
				return ce, nil
			}
			su = su[l:]
		}
		return ce, nil
	}

	type extent struct{ lba, size uint32 }
	root := pvd[156 : 156+34]
	queue := []extent{{binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:])}}
	seen := map[uint32]bool{}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		if seen[x.lba] {
			continue
		}
		seen[x.lba] = true
		buf, err := readAt(f, int64(x.lba)*isoBlock, int(x.size))
		if err != nil {
			return fmt.Errorf("%w: directory at block %d: %w", ErrFormat, x.lba, err)
		}
		for off := 0; off < len(buf); {
			l := int(buf[off])
			if l == 0 {
				off = (off/isoBlock + 1) * isoBlock
				continue
			}
			if l < 34 || off+l > len(buf) {
				return fmt.Errorf("%w: bad directory record at block %d offset %d", ErrFormat, x.lba, off)
			}
			rec := buf[off : off+l]
			copy(rec[18:25], short)
			nameLen := int(rec[32])
			suStart := 33 + nameLen
			if nameLen%2 == 0 {
				suStart++
			}
			isSelfOrParent := nameLen == 1 && (rec[33] == 0 || rec[33] == 1)
			if suStart < l {
				// go-diskfs writes no SUSP skip bytes (SP's LEN_SKP is 0).
				ces, err := fixSUSP(rec[suStart:])
				if err != nil {
					return err
				}
				for _, c := range ces {
					area, err := readAt(f, int64(c[0])*isoBlock+int64(c[1]), int(c[2]))
					if err != nil {
						return err
					}
					if _, err := fixSUSP(area); err != nil {
						return err
					}
					if _, err := f.WriteAt(area, int64(c[0])*isoBlock+int64(c[1])); err != nil {
						return err
					}
				}
			}
			if rec[25]&2 != 0 && !isSelfOrParent {
				queue = append(queue, extent{binary.LittleEndian.Uint32(rec[2:]), binary.LittleEndian.Uint32(rec[10:])})
			}
			off += l
		}
		if _, err := f.WriteAt(buf, int64(x.lba)*isoBlock); err != nil {
			return err
		}
	}
	// The root record inside the PVD carries a date too.
	copy(pvd[156+18:156+25], short)
	_, err = f.WriteAt(pvd, 16*isoBlock)
	return err
}
