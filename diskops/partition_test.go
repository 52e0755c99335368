package diskops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/disktest"
)

func imageTarget(t *testing.T, size int64) *Target {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tg, err := OpenTarget(context.Background(), img, TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

const testLayout = `
table: gpt
partitions:
  - {name: esp, size: 40M, type: esp, fs: vfat, label: ESP, uuid: 0123-ABCD}
  - {name: swap, size: 5%, type: swap, fs: swap, label: sw}
  - {name: root, size: rest, type: linux, fs: ext4, label: root, uuid: 11111111-2222-4333-8444-555555555555}
`

// extract copies a partition to its own file so that tools without an
// offset option (fsck, blkid) can read it.
func extract(t *testing.T, img string, p Planned) string {
	t.Helper()
	return disktest.Extract(t, img, p.Name, p.Start, p.Size)
}

func TestPartitionFormatRoundTrip(t *testing.T) {
	sgdisk := disktest.NeedTool(t, "sgdisk")
	blkid := disktest.NeedTool(t, "blkid")
	e2fsck := disktest.NeedTool(t, "e2fsck")
	fsckv := disktest.NeedTool(t, "fsck.vfat")
	for _, table := range []string{"gpt", "mbr"} {
		t.Run(table, func(t *testing.T) {
			l, err := ParseLayout([]byte(strings.Replace(testLayout, "table: gpt", "table: "+table, 1)))
			if err != nil {
				t.Fatal(err)
			}
			tg := imageTarget(t, 200<<20)
			// A stale filesystem where the new swap partition goes: the
			// wipe must remove its signature.
			if _, err := FormatFAT32(tg.File, 41<<20, 60<<20, FATOptions{Label: "OLD"}); err != nil {
				t.Fatal(err)
			}
			res, err := Partition(context.Background(), tg, l, PartitionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fss, err := FormatPartitions(context.Background(), tg, res, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if fss[0].UUID != "0123-ABCD" || fss[2].UUID != "11111111-2222-4333-8444-555555555555" || fss[1].Label != "sw" {
				t.Errorf("filesystems = %+v %+v %+v", fss[0], fss[1], fss[2])
			}
			img := tg.Path
			if table == "gpt" {
				out := disktest.Run(t, sgdisk, "-v", img)
				if !strings.Contains(out, "No problems found") {
					t.Errorf("sgdisk -v:\n%s", out)
				}
				info := disktest.Run(t, sgdisk, "-i", "3", img)
				if !strings.Contains(info, "0FC63DAF-8483-4772-8E79-3D69D8477DE4") || !strings.Contains(info, "First sector: "+itoa(res.Partitions[2].Start/512)) {
					t.Errorf("sgdisk -i 3:\n%s", info)
				}
			} else {
				out := disktest.Run(t, "sfdisk", "-d", img)
				for _, want := range []string{"start=        2048, size=       81920, type=ef", "type=82", "type=83"} {
					if !strings.Contains(out, want) {
						t.Errorf("sfdisk -d lacks %q:\n%s", want, out)
					}
				}
			}
			// Our own reader agrees with what we planned.
			rt, err := ReadTable(tg.File, tg.Size, 512)
			if err != nil || rt == nil || rt.Type != table || len(rt.Partitions) != 3 {
				t.Fatalf("ReadTable = %+v, %v", rt, err)
			}
			for i, p := range res.Partitions {
				if rt.Partitions[i].Start != p.Start || rt.Partitions[i].Size != p.Size {
					t.Errorf("partition %d: read %d+%d, planned %d+%d", i+1, rt.Partitions[i].Start, rt.Partitions[i].Size, p.Start, p.Size)
				}
			}
			if p := res.Partitions; p[0].Start != 1<<20 || p[0].Size != 40<<20 || p[1].Start%(1<<20) != 0 || p[2].Start+p[2].Size > 200<<20-map[string]int64{"gpt": 33 * 512, "mbr": 0}[table] {
				t.Errorf("plan = %+v", p)
			}
			esp := extract(t, img, res.Partitions[0])
			if out := disktest.Run(t, fsckv, "-n", esp); !disktest.FsckVFATClean(out) {
				t.Errorf("fsck.vfat:\n%s", out)
			}
			swap := extract(t, img, res.Partitions[1])
			if got := disktest.Run(t, blkid, "-p", "-o", "export", swap); !strings.Contains(got, "TYPE=swap\n") || !strings.Contains(got, "LABEL=sw\n") {
				t.Errorf("blkid swap:\n%s", got)
			}
			root := extract(t, img, res.Partitions[2])
			disktest.Run(t, e2fsck, "-n", "-f", root)
			got := disktest.Run(t, blkid, "-p", "-o", "export", root)
			for _, want := range []string{"TYPE=ext4", "LABEL=root", "UUID=11111111-2222-4333-8444-555555555555"} {
				if !strings.Contains(got, want+"\n") {
					t.Errorf("blkid root lacks %s:\n%s", want, got)
				}
			}
			if got := disktest.Run(t, blkid, "-p", "-o", "export", esp); !strings.Contains(got, "LABEL=ESP\n") || strings.Contains(got, "OLD") {
				t.Errorf("blkid esp:\n%s", got)
			}
		})
	}
}

func TestPartitionRefusals(t *testing.T) {
	tg := imageTarget(t, 64<<20)
	marker := []byte("precious data")
	tg.File.WriteAt(marker, 0)
	for _, c := range []struct {
		layout string
		is     error
		msg    string
	}{
		{"partitions: [{name: a, size: 100M}]", ErrTooSmall, "needs 100.0 MiB but the disk has 62.0 MiB usable"},
		{"partitions: [{name: a, size: 60%}, {name: b, size: 50%}]", ErrLayout, "percentages add up to 110%"},
		{"partitions: [{name: a, size: rest}, {name: b, size: rest}]", ErrLayout, "at most one may"},
		{"partitions: [{name: a, size: 10M, type: banana}]", ErrLayout, `unknown gpt partition type "banana"`},
		{"table: mbr\npartitions: [{name: a, size: 1M}, {name: b, size: 1M}, {name: c, size: 1M}, {name: d, size: 1M}, {name: e, size: 1M}]", ErrLayout, "at most 4"},
		{"table: mbr\npartitions: [{name: a, size: 10M, type: bios-boot}]", ErrLayout, "no MBR equivalent"},
		{"partitions: [{name: a, size: 10M, fs: ntfs}]", ErrLayout, `filesystem "ntfs"`},
		{"partitions: [{name: a, size: 10M, fs: vfat, label: WAYTOOLONGLABEL}]", ErrLayout, "at most 11"},
		{"partitions: [{name: a, size: 10M, sise: 3}]", ErrLayout, `1:35: unknown key "sise": did you mean "size"?`},
		{"partitions: [{name: a, size: 62M}, {name: b, size: rest}]", ErrTooSmall, "needs"},
	} {
		l, err := ParseLayout([]byte(c.layout))
		if err == nil {
			_, err = Partition(context.Background(), tg, l, PartitionOptions{})
		}
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s:\n got %v\nwant %v containing %q", c.layout, err, c.is, c.msg)
		}
	}
	b := make([]byte, len(marker))
	tg.File.ReadAt(b, 0)
	if string(b) != string(marker) {
		t.Fatal("a refused layout wrote to the disk")
	}
	if _, err := OpenTarget(context.Background(), "/dev/minint-no-such-disk", TargetOptions{}); !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), "/dev/minint-no-such-disk") {
		t.Errorf("unknown device: %v", err)
	}
}
