package diskops

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// SetBootable marks partition n as the one BIOS boot code starts: the MBR
// active flag (cleared on the others) or the GPT "legacy BIOS bootable"
// attribute (bit 2), rewriting both GPT copies with fresh checksums.
func SetBootable(f *os.File, size int64, tab *Table, n int) error {
	if tab.Type == "mbr" {
		mbr := make([]byte, 512)
		if _, err := f.ReadAt(mbr, 0); err != nil {
			return err
		}
		for i := 0; i < 4; i++ {
			e := 446 + 16*i
			if mbr[e+4] == 0 {
				continue
			}
			mbr[e] = 0
			if i+1 == n {
				mbr[e] = 0x80
			}
		}
		_, err := f.WriteAt(mbr, 0)
		return err
	}
	ss := int64(tab.SectorSize)
	hdrs := []int64{ss}
	primary := make([]byte, ss)
	if _, err := f.ReadAt(primary, ss); err != nil {
		return err
	}
	hdrs = append(hdrs, int64(binary.LittleEndian.Uint64(primary[32:]))*ss) // alternate LBA
	for _, h := range hdrs {
		hdr := make([]byte, ss)
		if _, err := f.ReadAt(hdr, h); err != nil {
			return err
		}
		if string(hdr[:8]) != "EFI PART" {
			return fmt.Errorf("%w: no GPT header at byte %d", ErrFormat, h)
		}
		entLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
		count := int(binary.LittleEndian.Uint32(hdr[80:]))
		esize := int(binary.LittleEndian.Uint32(hdr[84:]))
		if n > count || count > maxGPTEntries || esize < 128 {
			return fmt.Errorf("%w: GPT header at %d", ErrFormat, h)
		}
		arr := make([]byte, count*esize)
		if _, err := f.ReadAt(arr, entLBA*ss); err != nil {
			return err
		}
		e := arr[(n-1)*esize:]
		binary.LittleEndian.PutUint64(e[48:], binary.LittleEndian.Uint64(e[48:])|1<<2)
		binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(arr))
		hsize := binary.LittleEndian.Uint32(hdr[12:])
		binary.LittleEndian.PutUint32(hdr[16:], 0)
		binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:hsize]))
		if _, err := f.WriteAt(arr, entLBA*ss); err != nil {
			return err
		}
		if _, err := f.WriteAt(hdr, h); err != nil {
			return err
		}
	}
	return nil
}
