package diskops

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/minint/minint/internal/disktest"
)

// fakeDisk describes one block device of a fake sysfs tree.
type fakeDisk struct {
	name, devpath string // devpath below /sys/devices
	devnum        string
	gib           int64
	lss           int
	rot, rem, ro  bool
	vendor, model string
	serial        string
	serialIn      string // "block", "device" (default) or "vpd"
	wwid          string
	parts         []string // partition names (kernel-parsed), e.g. sda1
	image         func(t *testing.T, path string, size int64)
}

// fakeRoot builds /sys/block, /sys/devices, /proc and /dev under a temp dir
// the way the kernel lays them out.
func fakeRoot(t *testing.T, mountinfo string, disks ...fakeDisk) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range disks {
		dir := filepath.Join(root, "sys/devices", d.devpath, "block", d.name)
		if d.lss == 0 {
			d.lss = 512
		}
		size := d.gib << 30
		disktest.WriteFile(t, filepath.Join(dir, "size"), itoa(size/512)+"\n")
		disktest.WriteFile(t, filepath.Join(dir, "dev"), d.devnum+"\n")
		disktest.WriteFile(t, filepath.Join(dir, "queue/logical_block_size"), itoa(int64(d.lss))+"\n")
		disktest.WriteFile(t, filepath.Join(dir, "queue/physical_block_size"), "4096\n")
		disktest.WriteFile(t, filepath.Join(dir, "queue/rotational"), b01(d.rot))
		disktest.WriteFile(t, filepath.Join(dir, "removable"), b01(d.rem))
		disktest.WriteFile(t, filepath.Join(dir, "ro"), b01(d.ro))
		disktest.WriteFile(t, filepath.Join(dir, "device/vendor"), d.vendor+"    \n")
		disktest.WriteFile(t, filepath.Join(dir, "device/model"), d.model+"    \n")
		if d.wwid != "" {
			disktest.WriteFile(t, filepath.Join(dir, "device/wwid"), d.wwid+"\n")
		}
		switch d.serialIn {
		case "block":
			disktest.WriteFile(t, filepath.Join(dir, "serial"), d.serial+"\n")
		case "vpd":
			b := []byte{0, 0x80, 0, byte(len(d.serial))}
			disktest.WriteFile(t, filepath.Join(dir, "device/vpd_pg80"), string(append(b, d.serial...)))
		default:
			if d.serial != "" {
				disktest.WriteFile(t, filepath.Join(dir, "device/serial"), d.serial+"\n")
			}
		}
		os.MkdirAll(filepath.Join(dir, "holders"), 0o755)
		for i, p := range d.parts {
			disktest.WriteFile(t, filepath.Join(dir, p, "partition"), itoa(int64(i+1))+"\n")
			disktest.WriteFile(t, filepath.Join(dir, p, "start"), itoa(int64(2048*(i+1)))+"\n")
			disktest.WriteFile(t, filepath.Join(dir, p, "size"), "2048\n")
			maj, min, _ := strings.Cut(d.devnum, ":")
			disktest.WriteFile(t, filepath.Join(dir, p, "dev"), maj+":"+itoa(atoi(min)+int64(i+1))+"\n")
		}
		os.MkdirAll(filepath.Join(root, "sys/block"), 0o755)
		if err := os.Symlink(filepath.Join("../devices", d.devpath, "block", d.name), filepath.Join(root, "sys/block", d.name)); err != nil {
			t.Fatal(err)
		}
		dev := filepath.Join(root, "dev", d.name)
		os.MkdirAll(filepath.Dir(dev), 0o755)
		if d.image != nil {
			d.image(t, dev, size)
		}
	}
	disktest.WriteFile(t, filepath.Join(root, "proc/self/mountinfo"), mountinfo)
	disktest.WriteFile(t, filepath.Join(root, "proc/swaps"), "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
	return root
}

func b01(b bool) string {
	if b {
		return "1\n"
	}
	return "0\n"
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
func atoi(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

// gptWithExt4 writes a sparse image with a GPT (ESP + Linux) and an ext4
// superblock (label "root") in the second partition.
func gptWithExt4(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	tab := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 2048 + 2047, Type: gpt.EFISystemPartition, Name: "esp"},
		{Index: 2, Start: 4096, End: 4096 + 20479, Type: gpt.LinuxFilesystem, Name: "root"},
	}}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 1024)
	binary.LittleEndian.PutUint16(sb[0x38:], 0xEF53)
	binary.LittleEndian.PutUint32(sb[0x60:], 0x2c2) // extents|64bit|flex_bg|filetype
	copy(sb[0x68:], []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	copy(sb[0x78:], "root")
	if _, err := f.WriteAt(sb, 4096*512+1024); err != nil {
		t.Fatal(err)
	}
}

const pciNVMe0 = "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"

var (
	nvme = fakeDisk{name: "nvme0n1", devpath: "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0", devnum: "259:0", gib: 512, lss: 512,
		model: "Samsung SSD 980", serial: "S64ANS0T1", wwid: "eui.0025388b11223344", image: gptWithExt4}
	sata = fakeDisk{name: "sda", devpath: "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0", devnum: "8:0", gib: 1000, rot: true,
		vendor: "ATA", model: "WDC WD10EZEX", serial: "WD-WCC6Y1", serialIn: "vpd", wwid: "naa.50014ee2b1"}
	sataTwin1 = fakeDisk{name: "sda", devpath: "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0", devnum: "8:0", gib: 256,
		vendor: "ATA", model: "CT256MX", serial: "A1", serialIn: "vpd"}
	sataTwin2 = fakeDisk{name: "sdb", devpath: "pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0", devnum: "8:16", gib: 256,
		vendor: "ATA", model: "CT256MX", serial: "A2", serialIn: "vpd"}
	usbStick = fakeDisk{name: "sdc", devpath: "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host2/target2:0:0/2:0:0:0", devnum: "8:32", gib: 16, rem: true,
		vendor: "SanDisk", model: "Cruzer", serial: "4C5300", parts: []string{"sdc1"}}
	virtio = fakeDisk{name: "vda", devpath: "pci0000:00/0000:00:04.0/virtio1", devnum: "254:0", gib: 20, rot: true, serial: "vd-serial", serialIn: "block"}
	cdrom  = fakeDisk{name: "sr0", devpath: "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0", devnum: "11:0", gib: 1, rem: true, ro: true, model: "QEMU DVD-ROM"}
)

func TestDiscoverFakeSysfs(t *testing.T) {
	root := fakeRoot(t, "22 1 8:33 / /run/media rw - vfat /dev/sdc1 rw\n", nvme, sata, usbStick, virtio, cdrom)
	disks, err := Discover(context.Background(), DiscoverOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Disk{}
	var names []string
	for _, d := range disks {
		got[d.Name] = d
		names = append(names, d.Name)
	}
	if strings.Join(names, " ") != "nvme0n1 sda sdc sr0 vda" {
		t.Fatalf("disks = %v", names)
	}
	n := got["nvme0n1"]
	if n.Transport != "nvme" || n.Size != 512<<30 || n.Serial != "S64ANS0T1" || n.WWN != "eui.0025388b11223344" ||
		n.Model != "Samsung SSD 980" || n.ByPath != "pci-0000:3d:00.0-nvme-1" || n.PhysicalSectorSize != 4096 {
		t.Errorf("nvme = %+v", n)
	}
	if n.Table == nil || n.Table.Type != "gpt" || len(n.Table.Partitions) != 2 {
		t.Fatalf("nvme table = %+v (probe error %q)", n.Table, n.ProbeError)
	}
	p := n.Table.Partitions[1]
	if p.TypeName != "linux" || p.Name != "root" || p.Start != 4096*512 || p.Size != 20480*512 || p.FS == nil ||
		p.FS.Type != "ext4" || p.FS.Label != "root" || p.FS.UUID != "deadbeef-0102-0304-0506-0708090a0b0c" {
		t.Errorf("nvme p2 = %+v fs %+v", p, p.FS)
	}
	if n.Table.Partitions[0].TypeName != "esp" {
		t.Errorf("p1 type = %q", n.Table.Partitions[0].TypeName)
	}
	s := got["sda"]
	if s.Transport != "sata" || s.Serial != "WD-WCC6Y1" || !s.Rotational || s.ByPath != "pci-0000:00:17.0-ata-1" || s.Vendor != "ATA" {
		t.Errorf("sata = %+v", s)
	}
	u := got["sdc"]
	if u.Transport != "usb" || !u.Removable || strings.Join(u.Mounts, ",") != "/run/media" || u.ByPath != "pci-0000:00:14.0-usb-0:2:1.0-scsi-2:0:0:0" {
		t.Errorf("usb = %+v", u)
	}
	if v := got["vda"]; v.Transport != "virtio" || v.Serial != "vd-serial" || v.ByPath != "pci-0000:00:04.0" {
		t.Errorf("virtio = %+v", v)
	}
	if c := got["sr0"]; c.Kind != "rom" || !c.ReadOnly {
		t.Errorf("cdrom = %+v", c)
	}
}

func discoverT(t *testing.T, o DiscoverOptions, mountinfo string, disks ...fakeDisk) []*Disk {
	t.Helper()
	o.Root = fakeRoot(t, mountinfo, disks...)
	ds, err := Discover(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func mustRule(t *testing.T, s string) Rule {
	t.Helper()
	r, err := ParseRule(s)
	if err != nil {
		t.Fatalf("ParseRule(%q): %v", s, err)
	}
	return r
}

func TestSelect(t *testing.T) {
	machine := discoverT(t, DiscoverOptions{BootDevices: []string{"sr0"}}, "", nvme, sata, usbStick, virtio, cdrom)
	twins := discoverT(t, DiscoverOptions{}, "", sataTwin1, sataTwin2, usbStick)
	bootUSB := discoverT(t, DiscoverOptions{BootDevices: []string{"/dev/sdc1"}}, "", usbStick, sata)
	for _, c := range []struct {
		disks []*Disk
		rule  string
		want  string // disk name, or an error substring prefixed with "!"
		is    error
	}{
		{machine, "{transport: nvme}", "nvme0n1", nil},
		{machine, "transport=sata", "sda", nil},
		{machine, "{min-size: 600G, removable: false}", "sda", nil},
		{machine, "{min-size: 100G}", "!more than one disk matches", ErrAmbiguous},
		{machine, "first-largest", "sda", nil},
		{machine, "{smallest: true}", "vda", nil},
		{machine, "{serial: S64ANS0T1}", "nvme0n1", nil},
		{machine, "{wwn: NAA.50014EE2B1}", "sda", nil},
		{machine, "{by-path: pci-0000:00:04.0}", "vda", nil},
		{machine, "by-path=/dev/disk/by-path/pci-0000:3d:00.0-nvme-1", "nvme0n1", nil},
		{machine, "{model: 'samsung*'}", "nvme0n1", nil},
		{machine, "{rotational: false}", "nvme0n1", nil},
		// The USB stick is excluded unless asked, and mounted disks never.
		{machine, "{transport: usb}", "!removable (select with removable: true)", ErrNoMatch},
		{machine, "{transport: usb, removable: true}", "sdc", nil},
		{machine, "{name: sr0}", "!sr0: CD/DVD drive", ErrNoMatch},
		{machine, "{min-size: 4T}", "!no disk matches", ErrNoMatch},
		// Two identical disks: any rule that cannot tell them apart fails.
		{twins, "{model: CT256MX}", "!/dev/sda 256.0 GiB sata model \"CT256MX\" serial \"A1\"", ErrAmbiguous},
		{twins, "largest", "!/dev/sdb", ErrAmbiguous},
		{twins, "first-largest", "sda", nil},
		{twins, "{serial: A2}", "sdb", nil},
		{twins, "{by-path: pci-0000:00:17.0-ata-2}", "sdb", nil},
		// Sizes by package bytesize's rule: a 256 GiB disk is 274.9 GB.
		{twins, "{min-size: 270GB, serial: A1}", "sda", nil},
		{twins, "{min-size: 270G}", "!no disk matches", ErrNoMatch},
		{twins, "max-size=256GiB,serial=A2", "sdb", nil},
		// The boot medium is never a candidate, even when named.
		{bootUSB, "{name: sdc}", "!sdc: it is the boot medium", ErrNoMatch},
		{bootUSB, "{removable: true}", "!it is the boot medium", ErrNoMatch},
		{bootUSB, "first-largest", "sda", nil},
	} {
		r := mustRule(t, c.rule)
		d, err := Select(c.disks, r)
		if strings.HasPrefix(c.want, "!") {
			if err == nil {
				t.Errorf("%s: selected %s, want error %q", c.rule, d.Name, c.want[1:])
				continue
			}
			if !strings.Contains(err.Error(), c.want[1:]) || !errors.Is(err, c.is) {
				t.Errorf("%s: error %q, want %q (%v)", c.rule, err, c.want[1:], c.is)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.rule, err)
			continue
		}
		if d.Name != c.want {
			t.Errorf("%s: selected %s, want %s", c.rule, d.Name, c.want)
		}
	}
}

// hybridISO writes what media/ produces: an MBR whose first entry covers
// the image from sector 0 (type 0, active), an ESP entry, and an ISO 9660
// volume labelled MININT over the whole device.
func hybridISO(t *testing.T, path string, size int64) {
	t.Helper()
	b := make([]byte, 0x8000+2048)
	e := b[446:]
	e[0] = 0x80
	binary.LittleEndian.PutUint32(e[8:], 0)
	binary.LittleEndian.PutUint32(e[12:], uint32(size/512))
	e = b[462:]
	e[4] = 0xEF
	binary.LittleEndian.PutUint32(e[8:], 112)
	binary.LittleEndian.PutUint32(e[12:], 8192)
	b[510], b[511] = 0x55, 0xAA
	pvd := b[0x8000:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	copy(pvd[40:72], fmt.Sprintf("%-32s", "MININT"))
	copy(pvd[813:], "2026112809443200")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	f.WriteAt(b, 0)
}

// TestBootMediumByLabel: a USB stick written from the hybrid ISO is the
// boot medium by its ISO label, and never a candidate.
func TestBootMediumByLabel(t *testing.T) {
	stick := usbStick
	stick.image = hybridISO
	stick.gib = 1
	ds := discoverT(t, DiscoverOptions{MediaLabel: "MININT"}, "", stick, sata)
	for _, d := range ds {
		if d.Name == "sdc" {
			if !d.BootMedium || d.FS == nil || d.FS.Type != "iso9660" || d.Table == nil || len(d.Table.Partitions) != 1 {
				t.Errorf("hybrid stick: boot=%v fs=%+v table=%+v probe=%q", d.BootMedium, d.FS, d.Table, d.ProbeError)
			}
		}
	}
	if _, err := Select(ds, mustRule(t, "{removable: true}")); !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "boot medium") {
		t.Errorf("select the stick: %v", err)
	}
}

func TestSelectInUseAndReadOnly(t *testing.T) {
	ro := sataTwin2
	ro.ro = true
	ds := discoverT(t, DiscoverOptions{}, "30 1 8:1 / / rw - ext4 /dev/sda1 rw\n", withParts(sataTwin1, "sda1"), ro)
	_, err := Select(ds, mustRule(t, "{model: CT256MX}"))
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "sda: mounted on /") || !strings.Contains(err.Error(), "sdb: read-only") {
		t.Fatalf("err = %v", err)
	}
}

func withParts(d fakeDisk, parts ...string) fakeDisk { d.parts = parts; return d }

func TestParseRuleErrors(t *testing.T) {
	for _, s := range []string{"", "{colour: red}", "{transport: firewire}", "{min-size: 10G, max-size: 1G}", "largest,smallest", "{min-size: lots}", "{}"} {
		if _, err := ParseRule(s); !errors.Is(err, ErrRule) {
			t.Errorf("ParseRule(%q) = %v, want ErrRule", s, err)
		}
	}
	// Old snake_case spellings and near misses name the key meant.
	for s, want := range map[string]string{
		"min_size=20G":                  `invalid selection rule: unknown key "min_size": did you mean "min-size"?`,
		"first_largest":                 `unknown key "first_largest": did you mean "first-largest"?`,
		"{by_path: pci-0000:00:04.0}":   `unknown key "by_path": did you mean "by-path"?`,
		"{trasnport: nvme}":             `unknown key "trasnport": did you mean "transport"?`,
		"{min-size: 20 parsecs}":        `invalid size "20 parsecs"`,
		"{min-size: 10G, max-size: 1G}": "min-size 10GiB (10737418240 bytes) is above max-size 1GiB (1073741824 bytes)",
	} {
		if _, err := ParseRule(s); !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRule(%q) = %v, want %q", s, err, want)
		}
	}
	r := mustRule(t, "{transport: nvme, min-size: 20G, removable: false}")
	if r2 := mustRule(t, r.String()); r2.Transport != "nvme" || r2.MinSize != 20*bytesize.GiB || r2.Removable == nil || *r2.Removable {
		t.Errorf("round trip %q -> %+v", r.String(), r2)
	}
}
