package bootloader

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/minint/minint/diskops"
)

// syslinux keeps boot-once and menu-save state in its Auxiliary Data
// Vector: two identical 512-byte sectors at the end of ldlinux.sys, whose
// sector numbers the installer patched into the loader. Rewriting those
// bytes in place (never the file as a whole, which could move it) is all
// "syslinux --once" does, and the mtools installer cannot do it.
const (
	advSize   = 512
	advMagic1 = 0x5a2d2fa5
	advMagic2 = 0xa3041767
	advMagic3 = 0xdd28bf64
	advEnd    = 0
	advOnce   = 1 // ADV_BOOTONCE
)

// SetSyslinuxOnce makes syslinux run command (usually a LABEL) once at the
// next boot; syslinux clears it when it boots. disk is the whole disk (or
// image), partStart the byte offset of the unmounted FAT32 partition that
// holds /syslinux/ldlinux.sys. An empty command clears a pending one.
func SetSyslinuxOnce(disk string, partStart int64, command string) error {
	if len(command) > 255 {
		return fmt.Errorf("syslinux once: command longer than 255 bytes")
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	v, err := openFAT32(f, partStart)
	if err != nil {
		return fmt.Errorf("syslinux once: %s at %d: %w", disk, partStart, err)
	}
	ext, size, err := v.lookup("SYSLINUX", "LDLINUX SYS")
	if err != nil {
		return fmt.Errorf("syslinux once: %s: /syslinux/ldlinux.sys: %w", disk, err)
	}
	if size < 2*advSize {
		return fmt.Errorf("syslinux once: ldlinux.sys is only %d bytes", size)
	}
	offs := []int64{v.fileOffset(ext, size-2*advSize), v.fileOffset(ext, size-advSize)}
	adv := make([]byte, advSize)
	cur := make([]byte, advSize)
	for _, o := range offs {
		if _, err := f.ReadAt(cur, o); err != nil {
			return err
		}
		if advConsistent(cur) {
			copy(adv, cur)
			break
		}
	}
	// Keep every other record (menu-save), replace the boot-once one.
	var recs []byte
	for p := 8; p+2 <= advSize-4; {
		tag, n := adv[p], int(adv[p+1])
		if tag == advEnd || p+2+n > advSize-4 {
			break
		}
		if tag != advOnce {
			recs = append(recs, adv[p:p+2+n]...)
		}
		p += 2 + n
	}
	if command != "" {
		recs = append(recs, advOnce, byte(len(command)))
		recs = append(recs, command...)
	}
	if 8+len(recs) > advSize-4 {
		return fmt.Errorf("syslinux once: auxiliary data full")
	}
	out := make([]byte, advSize)
	advFinish(out, recs)
	for _, o := range offs {
		if _, err := f.WriteAt(out, o); err != nil {
			return err
		}
	}
	return f.Sync()
}

func advConsistent(b []byte) bool {
	if binary.LittleEndian.Uint32(b) != advMagic1 || binary.LittleEndian.Uint32(b[advSize-4:]) != advMagic3 {
		return false
	}
	var sum uint32
	for i := 4; i < advSize-4; i += 4 {
		sum += binary.LittleEndian.Uint32(b[i:])
	}
	return sum == advMagic2
}

// fat32Vol is just enough of a FAT32 reader to find a file's clusters.
type fat32Vol struct {
	f               *os.File
	start           int64 // partition offset
	bps, spc        int64
	fatOff, dataOff int64
	rootCluster     uint32
	clusters        uint32
}

func openFAT32(f *os.File, start int64) (*fat32Vol, error) {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, start); err != nil {
		return nil, err
	}
	if fs := diskops.ProbeFilesystem(f, start, 512); fs == nil || fs.Type != "vfat" || string(bs[82:87]) != "FAT32" {
		return nil, fmt.Errorf("not a FAT32 filesystem")
	}
	v := &fat32Vol{f: f, start: start}
	v.bps = int64(binary.LittleEndian.Uint16(bs[11:]))
	v.spc = int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	fatSz := int64(binary.LittleEndian.Uint32(bs[36:]))
	v.fatOff = start + reserved*v.bps
	v.dataOff = v.fatOff + int64(bs[16])*fatSz*v.bps
	v.rootCluster = binary.LittleEndian.Uint32(bs[44:])
	total := int64(binary.LittleEndian.Uint32(bs[32:]))
	v.clusters = uint32((total - reserved - int64(bs[16])*fatSz) / v.spc)
	return v, nil
}

func (v *fat32Vol) chain(c uint32) ([]uint32, error) {
	var cs []uint32
	b := make([]byte, 4)
	for c >= 2 && c < 0x0FFFFFF8 {
		if c-2 >= v.clusters || len(cs) > int(v.clusters) {
			return nil, fmt.Errorf("%w: broken cluster chain", diskops.ErrFormat)
		}
		cs = append(cs, c)
		if _, err := v.f.ReadAt(b, v.fatOff+4*int64(c)); err != nil {
			return nil, err
		}
		c = binary.LittleEndian.Uint32(b) & 0x0FFFFFFF
	}
	return cs, nil
}

func (v *fat32Vol) clusterOffset(c uint32) int64 {
	return v.dataOff + int64(c-2)*v.spc*v.bps
}

// fileOffset maps a byte position of a file (given its cluster chain) to
// its position on the disk.
func (v *fat32Vol) fileOffset(chain []uint32, pos int64) int64 {
	cb := v.spc * v.bps
	return v.clusterOffset(chain[pos/cb]) + pos%cb
}

// lookup finds dir/name (8.3 names, space padded) below the root and
// returns the file's cluster chain and size.
func (v *fat32Vol) lookup(dir, name string) ([]uint32, int64, error) {
	d, _, err := v.find(v.rootCluster, dir, true)
	if err != nil {
		return nil, 0, err
	}
	c, size, err := v.find(d, name, false)
	if err != nil {
		return nil, 0, err
	}
	chain, err := v.chain(c)
	if err != nil {
		return nil, 0, err
	}
	if int64(len(chain))*v.spc*v.bps < size {
		return nil, 0, fmt.Errorf("%w: file shorter than its size", diskops.ErrFormat)
	}
	return chain, size, nil
}

func (v *fat32Vol) find(dirCluster uint32, name string, wantDir bool) (uint32, int64, error) {
	chain, err := v.chain(dirCluster)
	if err != nil {
		return 0, 0, err
	}
	want := fmt.Sprintf("%-11s", strings.ReplaceAll(name, ".", " "))
	buf := make([]byte, v.spc*v.bps)
	for _, c := range chain {
		if _, err := v.f.ReadAt(buf, v.clusterOffset(c)); err != nil {
			return 0, 0, err
		}
		for i := 0; i+32 <= len(buf); i += 32 {
			e := buf[i : i+32]
			if e[0] == 0 {
				return 0, 0, fmt.Errorf("%w: %s", diskops.ErrNotFound, strings.TrimSpace(name))
			}
			if e[0] == 0xE5 || e[11] == 0x0F || e[11]&0x08 != 0 {
				continue
			}
			if string(e[:11]) == want && (e[11]&0x10 != 0) == wantDir {
				cl := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
				return cl, int64(binary.LittleEndian.Uint32(e[28:])), nil
			}
		}
	}
	return 0, 0, fmt.Errorf("%w: %s", diskops.ErrNotFound, strings.TrimSpace(name))
}

// readFile returns the contents of dir/name (8.3 names).
func (v *fat32Vol) readFile(dir, name string) ([]byte, error) {
	chain, size, err := v.lookup(dir, name)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	cb := v.spc * v.bps
	buf := make([]byte, cb)
	for _, c := range chain {
		if int64(len(out)) >= size {
			break
		}
		if _, err := v.f.ReadAt(buf, v.clusterOffset(c)); err != nil {
			return nil, err
		}
		out = append(out, buf[:min(cb, size-int64(len(out)))]...)
	}
	return out, nil
}
