package diskops

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Disk is one whole block device as discovered from sysfs, plus what probing
// its first sectors found.
type Disk struct {
	Name               string `json:"name"` // kernel name: sda, nvme0n1, vda
	Path               string `json:"path"` // /dev/sda
	Kind               string `json:"kind"` // disk, rom or loop
	DevNum             string `json:"devnum"`
	Size               int64  `json:"size"`
	LogicalSectorSize  int    `json:"logical-sector-size"`
	PhysicalSectorSize int    `json:"physical-sector-size"`
	Vendor             string `json:"vendor,omitempty"`
	Model              string `json:"model,omitempty"`
	Serial             string `json:"serial,omitempty"`
	WWN                string `json:"wwn,omitempty"`
	// Transport is one of Transports: nvme, sata, sas, scsi, virtio, usb,
	// mmc, xen, loop or unknown.
	Transport  string `json:"transport"`
	ByPath     string `json:"by-path,omitempty"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable"`
	ReadOnly   bool   `json:"read-only"`
	// BootMedium is true for the device the PE was started from.
	BootMedium bool `json:"boot-medium,omitempty"`
	// Mounts lists the mount points of the disk and its partitions.
	Mounts []string `json:"mounts,omitempty"`
	// Holders lists devices stacked on the disk or its partitions (dm,
	// md, …); Swap is set when the disk or a partition is active swap.
	Holders    []string    `json:"holders,omitempty"`
	Swap       bool        `json:"swap,omitempty"`
	Table      *Table      `json:"table,omitempty"`
	FS         *Filesystem `json:"fs,omitempty"` // a filesystem on the whole device
	ProbeError string      `json:"probe-error,omitempty"`
}

// Partitions returns the disk's partitions (none when it has no table).
func (d *Disk) Partitions() []PartitionInfo {
	if d.Table == nil {
		return nil
	}
	return d.Table.Partitions
}

// InUse says why a destructive operation must not touch the disk, or "" if
// nothing uses it. It does not consider removability or read-only state.
func (d *Disk) InUse() string {
	var why []string
	if d.BootMedium {
		why = append(why, "it is the boot medium")
	}
	if len(d.Mounts) > 0 {
		why = append(why, "mounted on "+strings.Join(d.Mounts, ", "))
	}
	if d.Swap {
		why = append(why, "in use as swap")
	}
	if len(d.Holders) > 0 {
		why = append(why, "held by "+strings.Join(d.Holders, ", "))
	}
	return strings.Join(why, "; ")
}

// DiscoverOptions tunes Discover.
type DiscoverOptions struct {
	// Root is prepended to /sys, /proc and /dev; tests point it at a fake
	// tree. Empty means "/".
	Root string
	// BootDevices names devices (sda, /dev/sr0, or a partition such as
	// sdb1, which marks its disk) the PE was started from.
	BootDevices []string
	// MediaLabel marks as boot medium every disk carrying a filesystem
	// with this label (the PE's ISO/USB label), in addition to BootDevices.
	MediaLabel string
	// NoProbe skips reading the devices themselves (tables, filesystems).
	NoProbe bool
}

// Discover lists the whole block devices of the machine, sorted by name.
// RAM disks, zram, device-mapper and md devices, and detached loop devices
// are left out; CD-ROMs are listed with Kind "rom".
func Discover(ctx context.Context, o DiscoverOptions) ([]*Disk, error) {
	root := o.Root
	if root == "" {
		root = "/"
	}
	sysBlock := filepath.Join(root, "sys/block")
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	mounts := readMounts(root)
	swaps := readSwaps(root)
	byPath := udevLinks(filepath.Join(root, "dev/disk/by-path"))
	boot := map[string]bool{}
	for _, b := range o.BootDevices {
		boot[strings.TrimPrefix(b, "/dev/")] = true
	}
	var disks []*Disk
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := e.Name()
		if skipDevice(name) {
			continue
		}
		d, err := readDisk(root, name)
		if err != nil {
			return nil, err
		}
		if d == nil {
			continue
		}
		if p, ok := byPath[name]; ok {
			d.ByPath = p
		}
		devs := map[string]string{d.DevNum: name}
		parts := sysPartitions(filepath.Join(sysBlock, name))
		for _, p := range parts {
			devs[p.devnum] = p.name
			if boot[p.name] {
				d.BootMedium = true
			}
			d.Holders = append(d.Holders, listDir(filepath.Join(sysBlock, name, p.name, "holders"))...)
		}
		d.Holders = append(d.Holders, listDir(filepath.Join(sysBlock, name, "holders"))...)
		for dn, n := range devs {
			for _, m := range mounts {
				if m.devnum == dn || m.source == "/dev/"+n {
					d.Mounts = append(d.Mounts, m.target)
				}
			}
			if swaps["/dev/"+n] {
				d.Swap = true
			}
		}
		d.Mounts = uniqSorted(d.Mounts)
		if boot[name] {
			d.BootMedium = true
		}
		if !o.NoProbe {
			probeDisk(d, filepath.Join(root, "dev", name), parts)
		}
		if d.Table == nil && len(parts) > 0 {
			// The kernel parsed a table we could not read ourselves.
			d.Table = &Table{Type: "unknown", SectorSize: d.LogicalSectorSize}
			for _, p := range parts {
				d.Table.Partitions = append(d.Table.Partitions, PartitionInfo{Number: p.number, Start: p.start, Size: p.size, Device: "/dev/" + p.name})
			}
		}
		if o.MediaLabel != "" {
			if d.FS != nil && d.FS.Label == o.MediaLabel {
				d.BootMedium = true
			}
			for _, p := range d.Partitions() {
				if p.FS != nil && p.FS.Label == o.MediaLabel {
					d.BootMedium = true
				}
			}
		}
		disks = append(disks, d)
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

func skipDevice(name string) bool {
	for _, p := range []string{"ram", "zram", "dm-", "md", "nbd", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func readDisk(root, name string) (*Disk, error) {
	dir := filepath.Join(root, "sys/block", name)
	d := &Disk{Name: name, Path: "/dev/" + name, Kind: "disk"}
	sectors, err := readInt(filepath.Join(dir, "size"))
	if err != nil {
		return nil, fmt.Errorf("%s: reading size: %w", name, err)
	}
	d.Size = sectors * 512 // sysfs counts 512-byte units whatever the sector size
	d.DevNum = readString(filepath.Join(dir, "dev"))
	d.LogicalSectorSize = int(readIntDefault(filepath.Join(dir, "queue/logical_block_size"), 512))
	d.PhysicalSectorSize = int(readIntDefault(filepath.Join(dir, "queue/physical_block_size"), int64(d.LogicalSectorSize)))
	d.Rotational = readString(filepath.Join(dir, "queue/rotational")) == "1"
	d.Removable = readString(filepath.Join(dir, "removable")) == "1"
	d.ReadOnly = readString(filepath.Join(dir, "ro")) == "1"
	d.Vendor = readString(filepath.Join(dir, "device/vendor"))
	d.Model = firstNonEmpty(readString(filepath.Join(dir, "device/model")), readString(filepath.Join(dir, "device/name")))
	d.Serial = firstNonEmpty(readString(filepath.Join(dir, "serial")), readString(filepath.Join(dir, "device/serial")), vpdSerial(filepath.Join(dir, "device/vpd_pg80")))
	d.WWN = firstNonEmpty(readString(filepath.Join(dir, "wwid")), readString(filepath.Join(dir, "device/wwid")))
	devpath, _ := filepath.EvalSymlinks(dir)
	if devpath == "" {
		devpath = dir
	}
	if link, err := os.Readlink(dir); err == nil {
		devpath = link // relative ../devices/… is all we need
	}
	d.Transport = Transport(name, devpath)
	if d.ByPath == "" {
		d.ByPath = derivePath(devpath, name)
	}
	switch {
	case strings.HasPrefix(name, "sr"):
		d.Kind = "rom"
	case strings.HasPrefix(name, "loop"):
		d.Kind = "loop"
		if d.Size == 0 {
			return nil, nil // detached
		}
		d.Model = readString(filepath.Join(dir, "loop/backing_file"))
	}
	return d, nil
}

var (
	rePCI  = regexp.MustCompile(`[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]`)
	reATA  = regexp.MustCompile(`/ata([0-9]+)/`)
	reSCSI = regexp.MustCompile(`/([0-9]+:[0-9]+:[0-9]+:[0-9]+)/block/`)
	reUSB  = regexp.MustCompile(`/([0-9]+-[0-9.]+:[0-9]+\.[0-9]+)/`)
	reNVMe = regexp.MustCompile(`n([0-9]+)$`)
)

// derivePath builds a stable, udev-like by-path name from the sysfs device
// path when there is no udev to ask (the PE has none): the last PCI address
// plus the bus-specific position below it.
func derivePath(devpath, name string) string {
	pcis := rePCI.FindAllString(devpath, -1)
	if len(pcis) == 0 {
		return ""
	}
	s := "pci-" + pcis[len(pcis)-1]
	switch {
	case reUSB.MatchString(devpath):
		s += "-usb-0:" + strings.SplitN(reUSB.FindStringSubmatch(devpath)[1], "-", 2)[1]
		if m := reSCSI.FindStringSubmatch(devpath); m != nil {
			s += "-scsi-" + m[1]
		}
	case reATA.MatchString(devpath):
		s += "-ata-" + reATA.FindStringSubmatch(devpath)[1]
	case strings.HasPrefix(name, "nvme"):
		if m := reNVMe.FindStringSubmatch(name); m != nil {
			s += "-nvme-" + m[1]
		}
	case reSCSI.MatchString(devpath):
		s += "-scsi-" + reSCSI.FindStringSubmatch(devpath)[1]
	}
	return s
}

// vpdSerial extracts the unit serial number from a SCSI VPD page 0x80.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(string(b[4 : 4+n]))
}

type sysPart struct {
	name        string
	number      int
	devnum      string
	start, size int64
}

func sysPartitions(dir string) []sysPart {
	ents, _ := os.ReadDir(dir)
	var ps []sysPart
	for _, e := range ents {
		pd := filepath.Join(dir, e.Name())
		n, err := readInt(filepath.Join(pd, "partition"))
		if err != nil {
			continue
		}
		start, _ := readInt(filepath.Join(pd, "start"))
		size, _ := readInt(filepath.Join(pd, "size"))
		ps = append(ps, sysPart{name: e.Name(), number: int(n), devnum: readString(filepath.Join(pd, "dev")), start: start * 512, size: size * 512})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].number < ps[j].number })
	return ps
}

func probeDisk(d *Disk, dev string, parts []sysPart) {
	f, err := os.Open(dev)
	if err != nil {
		d.ProbeError = err.Error()
		return
	}
	defer f.Close()
	if d.Kind == "rom" && d.Size == 0 {
		return // empty drive
	}
	t, err := ReadTable(f, d.Size, d.LogicalSectorSize)
	if err != nil {
		d.ProbeError = err.Error()
	}
	if t != nil {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			p.FS = ProbeFilesystem(f, p.Start, p.Size)
			for _, sp := range parts {
				if sp.number == p.Number {
					p.Device = "/dev/" + sp.name
				}
			}
		}
		d.Table = t
	}
	// Hybrid ISOs carry a partition table and an ISO 9660 filesystem over
	// the whole device; the label that marks the boot medium is the latter.
	d.FS = ProbeFilesystem(f, 0, d.Size)
}

type mountEntry struct{ devnum, target, source string }

func readMounts(root string) []mountEntry {
	f, err := os.Open(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var ms []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		m := mountEntry{devnum: fields[2], target: unescapeMount(fields[4])}
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				m.source = unescapeMount(fields[i+2])
			}
		}
		ms = append(ms, m)
	}
	return ms
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readSwaps(root string) map[string]bool {
	b, err := os.ReadFile(filepath.Join(root, "proc/swaps"))
	m := map[string]bool{}
	if err != nil {
		return m
	}
	for i, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); i > 0 && len(f) > 0 {
			m[unescapeMount(f[0])] = true
		}
	}
	return m
}

func udevLinks(dir string) map[string]string {
	m := map[string]string{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		base := filepath.Base(t)
		if old, ok := m[base]; !ok || e.Name() < old {
			m[base] = e.Name()
		}
	}
	return m
}

func listDir(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var s []string
	for _, e := range ents {
		s = append(s, e.Name())
	}
	return s
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func readIntDefault(path string, def int64) int64 {
	v, err := readInt(path)
	if err != nil || v <= 0 {
		return def
	}
	return v
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func uniqSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// MountedPartition finds the disk and partition mounted at dir, using
// mountinfo and sysfs below sysRoot ("" for "/"). It fails when dir is
// not a mount point or its source is not a partition of a discovered disk.
func MountedPartition(ctx context.Context, sysRoot, dir string) (*Disk, *PartitionInfo, error) {
	root := sysRoot
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	var m *mountEntry
	for _, e := range readMounts(root) {
		if e.target == abs {
			e := e
			m = &e // the last mount on a path is the visible one
		}
	}
	if m == nil {
		return nil, nil, fmt.Errorf("%s is not a mount point", dir)
	}
	disks, err := Discover(ctx, DiscoverOptions{Root: sysRoot})
	if err != nil {
		return nil, nil, err
	}
	for _, d := range disks {
		for i, p := range d.Partitions() {
			if p.Device != "" && p.Device == m.source {
				return d, &d.Table.Partitions[i], nil
			}
		}
		for _, sp := range sysPartitions(filepath.Join(root, "sys/block", d.Name)) {
			if sp.devnum == m.devnum {
				for i, p := range d.Partitions() {
					if p.Number == sp.number {
						return d, &d.Table.Partitions[i], nil
					}
				}
			}
		}
	}
	return nil, nil, fmt.Errorf("%s: %s (%s) is not a partition of a disk found in sysfs", dir, m.source, m.devnum)
}

// MountedFilesystem probes the device mounted at dir (any block device,
// loop devices included) and returns its filesystem and device path.
func MountedFilesystem(sysRoot, dir string) (*Filesystem, string, error) {
	root := sysRoot
	if root == "" {
		root = "/"
	}
	abs, _ := filepath.Abs(dir)
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	src := ""
	for _, e := range readMounts(root) {
		if e.target == abs {
			src = e.source
		}
	}
	if src == "" {
		return nil, "", fmt.Errorf("%s is not a mount point", dir)
	}
	f, err := os.Open(filepath.Join(root, src))
	if err != nil {
		return nil, src, fmt.Errorf("%s mounted from %s: %w", dir, src, err)
	}
	defer f.Close()
	fs := ProbeFilesystem(f, 0, 0)
	if fs == nil {
		return nil, src, fmt.Errorf("%s: no filesystem signature on %s", dir, src)
	}
	return fs, src, nil
}
