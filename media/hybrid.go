package media

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"unicode/utf16"
)

// The hybrid system area makes the ISO boot when written raw to a disk or
// USB stick. It follows what xorriso writes for
// `-isohybrid-mbr isohdpfx.bin -isohybrid-gpt-basdat`:
//
//   - MBR boot code from isohdpfx.bin, which loads isolinux.bin (whose
//     512-byte LBA it finds at offset 432) for BIOS;
//   - MBR partition 1: active, type 0x00, covering the whole image (the
//     type-0 entry keeps UEFI firmware from rejecting the table for the
//     overlap with partition 2, which it skips);
//   - MBR partition 2: type 0xEF over the EFI system partition image, which
//     UEFI firmware (OVMF included) boots from \EFI\BOOT\BOOTX64.EFI;
//   - a GPT (primary at LBA 1, backup at the end) listing the EFI system
//     partition, for firmware that reads GPT despite the non-protective MBR.
//
// The image is padded to a whole "cylinder" of 64 heads × 32 sectors
// (1 MiB), as isohybrid does, which leaves room for the backup GPT.

const (
	sector     = 512
	cylinder   = 64 * 32 * sector
	gptEntries = 128
	gptEntSize = 128
)

var (
	// C12A7328-F81F-11D2-BA4B-00A0C93EC93B
	guidESP = [16]byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	// EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
	guidBasicData = [16]byte{0xa2, 0xa0, 0xd0, 0xeb, 0xe5, 0xb9, 0x33, 0x44, 0x87, 0xc0, 0x68, 0xb6, 0xb7, 0x26, 0x99, 0xc7}
)

type hybridLayout struct {
	IsohdpfxBin []byte // 432 bytes of MBR code
	BootLBA     uint32 // isolinux.bin, in 2048-byte ISO blocks
	ESPLBA      uint32 // EFI system partition image, in 2048-byte ISO blocks
	ESPSize     int64  // bytes
	ISOSize     int64  // bytes of ISO 9660 data (volume space size × 2048)
	DiskID      [16]byte
}

// writeHybrid pads f to a cylinder multiple and writes the system area. It
// returns the final image size.
func writeHybrid(f *os.File, l hybridLayout) (int64, error) {
	if len(l.IsohdpfxBin) != 432 {
		return 0, fmt.Errorf("isohdpfx.bin: %d bytes, want 432", len(l.IsohdpfxBin))
	}
	// Room after the ISO data for the backup GPT (33 sectors).
	total := int64(alignUp(uint64(l.ISOSize+(1+gptEntries*gptEntSize/sector)*sector), cylinder))
	if err := f.Truncate(total); err != nil {
		return 0, err
	}
	sectors := total / sector
	espStart := int64(l.ESPLBA) * 4
	espSectors := (l.ESPSize + sector - 1) / sector

	mbr := make([]byte, sector)
	copy(mbr, l.IsohdpfxBin)
	binary.LittleEndian.PutUint32(mbr[432:], l.BootLBA*4)
	copy(mbr[440:444], l.DiskID[:4])
	putMBREntry(mbr[446:], 0x80, 0x00, 0, sectors)
	putMBREntry(mbr[462:], 0x00, 0xef, espStart, espSectors)
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return 0, err
	}

	// GPT: one entry, the ESP.
	entries := make([]byte, gptEntries*gptEntSize)
	e := entries[0:gptEntSize]
	copy(e[0:16], guidESP[:])
	pguid := l.DiskID
	pguid[15] ^= 1
	copy(e[16:32], guidFromBytes(pguid))
	binary.LittleEndian.PutUint64(e[32:], uint64(espStart))
	binary.LittleEndian.PutUint64(e[40:], uint64(espStart+espSectors-1))
	for i, c := range utf16.Encode([]rune("EFI system partition")) {
		binary.LittleEndian.PutUint16(e[56+2*i:], c)
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	entrySectors := int64(len(entries) / sector)
	firstUsable := 2 + entrySectors
	lastUsable := sectors - 2 - entrySectors
	hdr := func(self, alt, entriesLBA int64) []byte {
		h := make([]byte, sector)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], uint64(self))
		binary.LittleEndian.PutUint64(h[32:], uint64(alt))
		binary.LittleEndian.PutUint64(h[40:], uint64(firstUsable))
		binary.LittleEndian.PutUint64(h[48:], uint64(lastUsable))
		copy(h[56:72], guidFromBytes(l.DiskID))
		binary.LittleEndian.PutUint64(h[72:], uint64(entriesLBA))
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], gptEntSize)
		binary.LittleEndian.PutUint32(h[88:], entriesCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	for _, w := range []struct {
		b   []byte
		lba int64
	}{
		{hdr(1, sectors-1, 2), 1},
		{entries, 2},
		{entries, sectors - 1 - entrySectors},
		{hdr(sectors-1, 1, sectors-1-entrySectors), sectors - 1},
	} {
		if _, err := f.WriteAt(w.b, w.lba*sector); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// guidFromBytes marks 16 hash bytes as a random (version 4, RFC 4122
// variant) GUID in the mixed-endian on-disk order.
func guidFromBytes(b [16]byte) []byte {
	b[7] = b[7]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b[:]
}

// putMBREntry writes a partition entry with CHS values for the 64/32
// geometry isohybrid uses, saturated past cylinder 1023.
func putMBREntry(e []byte, boot, typ byte, start, count int64) {
	e[0] = boot
	copy(e[1:4], chs(start))
	e[4] = typ
	copy(e[5:8], chs(start+count-1))
	binary.LittleEndian.PutUint32(e[8:], uint32(start))
	binary.LittleEndian.PutUint32(e[12:], uint32(count))
}

func chs(lba int64) []byte {
	const heads, secs = 64, 32
	c := lba / (heads * secs)
	if c > 1023 {
		return []byte{0xfe, 0xff, 0xff}
	}
	h := (lba / secs) % heads
	s := lba%secs + 1
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// readAt is a helper for tests and readers of the system area.
func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := r.ReadAt(b, off)
	return b, err
}
