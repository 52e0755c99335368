package diskops

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// memDisk is a small in-memory disk for seeds.
type memDisk struct{ b []byte }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

func seedGPT(size int) []byte {
	f, _ := os.CreateTemp("", "seed")
	defer os.Remove(f.Name())
	defer f.Close()
	f.Truncate(int64(size))
	tab := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 40, End: 79, Type: gpt.EFISystemPartition, Name: "esp", GUID: "11111111-2222-4333-8444-555555555555"},
		{Index: 2, Start: 80, End: uint64(size/512) - 40, Type: gpt.LinuxFilesystem, Name: "root", GUID: "21111111-2222-4333-8444-555555555555"},
	}}
	tab.Write(f, int64(size))
	b := make([]byte, size)
	f.ReadAt(b, 0)
	return b
}

func seedMBR() []byte {
	b := make([]byte, 4096)
	e := b[446:]
	e[0], e[4] = 0x80, 0x83
	binary.LittleEndian.PutUint32(e[8:], 2)
	binary.LittleEndian.PutUint32(e[12:], 4)
	b[510], b[511] = 0x55, 0xAA
	return b
}

func FuzzReadTable(f *testing.F) {
	f.Add(seedGPT(64 << 10))
	f.Add(seedMBR())
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := ReadTable(bytes.NewReader(data), int64(len(data)), 0)
		if err != nil || tab == nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > int64(len(data)) {
				t.Fatalf("partition %d at %d+%d outside %d bytes", p.Number, p.Start, p.Size, len(data))
			}
		}
	})
}

func FuzzProbeFilesystem(f *testing.F) {
	fat := &memDisk{b: make([]byte, 40<<20)}
	FormatFAT32(fat, 0, int64(len(fat.b)), FATOptions{Label: "SEED", VolumeID: 1})
	f.Add(fat.b[:8192])
	sb := make([]byte, 8192)
	binary.LittleEndian.PutUint16(sb[1024+0x38:], 0xEF53)
	f.Add(sb)
	sw := make([]byte, 8192)
	copy(sw[4086:], "SWAPSPACE2")
	f.Add(sw)
	hib := make([]byte, 8192)
	copy(hib[4086:], "S1SUSPEND")
	f.Add(hib)
	f.Fuzz(func(t *testing.T, data []byte) {
		ProbeFilesystem(bytes.NewReader(data), 0, int64(len(data)))
	})
}

// TestFuzzCorpusDir keeps the committed corpus honest: every file in
// testdata/fuzz is a valid corpus entry for an existing fuzz target.
func TestFuzzCorpusDir(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/fuzz/*")
	for _, d := range dirs {
		switch filepath.Base(d) {
		case "FuzzReadTable", "FuzzProbeFilesystem":
		default:
			t.Errorf("corpus for unknown fuzz target %s", d)
		}
	}
}

// TestReadTableRefusesMalformed: tables that do not add up are errors
// naming the problem, never partitions outside the disk.
func TestReadTableRefusesMalformed(t *testing.T) {
	mbr := seedMBR()
	e := mbr[462:]
	e[4] = 0x07
	binary.LittleEndian.PutUint32(e[8:], 3)
	binary.LittleEndian.PutUint32(e[12:], 1000)
	if _, err := ReadTable(bytes.NewReader(mbr), int64(len(mbr)), 0); err == nil || !errors.Is(err, ErrFormat) {
		t.Errorf("MBR partition beyond the end: %v", err)
	}
	pm := make([]byte, 1024)
	pm[446+4] = 0xEE
	pm[510], pm[511] = 0x55, 0xAA
	if _, err := ReadTable(bytes.NewReader(pm), int64(len(pm)), 0); !errors.Is(err, ErrFormat) {
		t.Errorf("protective MBR without GPT: %v", err)
	}
	g := seedGPT(64 << 10)
	g[512+40] ^= 0xFF // first usable LBA: header CRC mismatch
	if _, err := ReadTable(bytes.NewReader(g), int64(len(g)), 512); !errors.Is(err, ErrFormat) {
		t.Errorf("GPT with a bad header CRC: %v", err)
	}
	fat := &memDisk{b: make([]byte, 40<<20)}
	FormatFAT32(fat, 0, int64(len(fat.b)), FATOptions{})
	if tab, err := ReadTable(bytes.NewReader(fat.b), int64(len(fat.b)), 0); tab != nil || err != nil {
		t.Errorf("a FAT volume read as a table: %+v, %v", tab, err)
	}
	if tab, err := ReadTable(bytes.NewReader(seedGPT(64<<10)), 64<<10, 0); err != nil || tab.Type != "gpt" || len(tab.Partitions) != 2 || tab.Partitions[0].UUID != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("valid GPT: %+v, %v", tab, err)
	}
}
