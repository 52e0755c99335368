package diskops

import (
	"bytes"
	"encoding/binary"
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
