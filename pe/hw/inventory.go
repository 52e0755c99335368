// Package hw takes the PE's hardware inventory (CPU, memory, firmware,
// disks, NICs) from /proc and /sys, and brings up networking with DHCP.
//
// Collect reads below a root directory so that tests can point it at a fake
// sysfs tree.
package hw

import (
	"bufio"
	"github.com/minint/minint/diskops"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/minint/minint/bootloader"
)

// Inventory is what the PE reports about the machine.
type Inventory struct {
	// Vendor, Model and Serial identify the machine (SMBIOS system
	// information, from /sys/class/dmi/id), as on its asset tag.
	Vendor string `json:"vendor,omitempty"`
	Model  string `json:"model,omitempty"`
	Serial string `json:"serial,omitempty"`
	// UUID is the SMBIOS system UUID (readable by root only).
	UUID        string `json:"uuid,omitempty"`
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpu_model,omitempty"`
	MemoryBytes int64  `json:"memory_bytes"`
	Firmware    string `json:"firmware"` // "uefi" or "bios"
	// SecureBoot is the firmware's SecureBoot variable: true when the
	// firmware verifies what it boots. False under BIOS, with Secure Boot
	// off, and when the variable cannot be read (efivarfs not mounted).
	SecureBoot bool `json:"secure_boot"`
	// SetupMode is the SetupMode variable: no platform key is enrolled,
	// so Secure Boot is not enforced whatever the firmware's menu says.
	SetupMode bool `json:"setup_mode,omitempty"`
	// Lockdown is the kernel's lockdown mode (none, integrity or
	// confidentiality), which Debian's kernel raises to integrity under
	// Secure Boot; empty when securityfs does not tell.
	Lockdown string `json:"lockdown,omitempty"`
	Disks    []Disk `json:"disks"`
	NICs     []NIC  `json:"nics"`
}

// Disk is a whole block device (not a partition).
type Disk struct {
	Name      string `json:"name"` // kernel name: sda, vda, nvme0n1, sr0
	SizeBytes int64  `json:"size_bytes"`
	Model     string `json:"model,omitempty"`
	Serial    string `json:"serial,omitempty"`
	Transport string `json:"transport"` // as diskops.Transport names it: nvme, sata, scsi, virtio, usb, …
	Removable bool   `json:"removable"`
	RO        bool   `json:"ro"`
}

// NIC is a network interface other than loopback.
type NIC struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac"`
	Link      bool     `json:"link"` // carrier detected
	Driver    string   `json:"driver,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// Collect reads the inventory below root ("/" on a live system). Missing
// pieces are left empty rather than failing the whole inventory.
func Collect(root string) *Inventory {
	inv := &Inventory{Firmware: "bios", Disks: []Disk{}, NICs: []NIC{}}
	dmi := filepath.Join(root, "sys/class/dmi/id")
	inv.Vendor = dmiString(filepath.Join(dmi, "sys_vendor"))
	inv.Model = dmiString(filepath.Join(dmi, "product_name"))
	inv.Serial = dmiString(filepath.Join(dmi, "product_serial"))
	inv.UUID = strings.ToLower(dmiString(filepath.Join(dmi, "product_uuid")))
	inv.CPUs, inv.CPUModel = cpus(filepath.Join(root, "proc/cpuinfo"))
	inv.MemoryBytes = memTotal(filepath.Join(root, "proc/meminfo"))
	if _, err := os.Stat(filepath.Join(root, "sys/firmware/efi")); err == nil {
		inv.Firmware = "uefi"
		vars := bootloader.EFIVars{Dir: filepath.Join(root, "sys/firmware/efi/efivars")}
		inv.SecureBoot = vars.Flag("SecureBoot")
		inv.SetupMode = vars.Flag("SetupMode")
	}
	inv.Lockdown = lockdown(filepath.Join(root, "sys/kernel/security/lockdown"))
	inv.Disks = disks(filepath.Join(root, "sys/block"))
	inv.NICs = nics(filepath.Join(root, "sys/class/net"), root == "/")
	return inv
}

// lockdown reads securityfs's lockdown file, e.g.
// "none [integrity] confidentiality", and returns the bracketed mode.
func lockdown(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(b)) {
		if strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]") {
			return strings.Trim(f, "[]")
		}
	}
	return ""
}

func cpus(path string) (n int, model string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return n, model
}

func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) >= 2 && fs[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// dmiString reads an SMBIOS string, leaving out the placeholders firmware
// fills unset fields with.
func dmiString(path string) string {
	s := readTrim(path)
	switch strings.ToLower(s) {
	case "", "to be filled by o.e.m.", "default string", "not specified", "system serial number", "system product name", "0", "none", "n/a":
		return ""
	}
	return s
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func disks(sysBlock string) []Disk {
	out := []Disk{}
	ents, _ := os.ReadDir(sysBlock)
	for _, e := range ents {
		name := e.Name()
		if skipDisk(name) {
			continue
		}
		dir := filepath.Join(sysBlock, name)
		sectors, _ := strconv.ParseInt(readTrim(filepath.Join(dir, "size")), 10, 64)
		d := Disk{
			Name:      name,
			SizeBytes: sectors * 512, // sysfs counts 512-byte units whatever the sector size
			Model:     readTrim(filepath.Join(dir, "device/model")),
			Serial:    serial(dir),
			Transport: transport(dir, name),
			Removable: readTrim(filepath.Join(dir, "removable")) == "1",
			RO:        readTrim(filepath.Join(dir, "ro")) == "1",
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func skipDisk(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "md", "nbd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func serial(dir string) string {
	for _, p := range []string{"serial", "device/serial"} {
		if s := readTrim(filepath.Join(dir, p)); s != "" {
			return s
		}
	}
	// USB disks: the serial number is the USB device's (iSerialNumber),
	// on the device a few levels above the disk.
	if p, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil && strings.Contains(p, "/usb") {
		for d := p; strings.Contains(d, "/usb"); d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "idVendor")); err == nil {
				if s := readTrim(filepath.Join(d, "serial")); s != "" {
					return s
				}
				break
			}
		}
	}
	// SCSI/ATA disks: VPD page 0x80 is the unit serial number, after a
	// 4-byte header whose last byte is the length.
	if b, err := os.ReadFile(filepath.Join(dir, "device/vpd_pg80")); err == nil && len(b) > 4 {
		n := int(b[3])
		if 4+n <= len(b) {
			return strings.TrimSpace(strings.Trim(string(b[4:4+n]), "\x00"))
		}
	}
	return ""
}

// transport names the bus a disk hangs off with the classifier disk
// selection uses, so that the inventory and a select-disk rule agree.
func transport(dir, name string) string {
	p, err := os.Readlink(dir)
	if err != nil {
		p = dir
	}
	return diskops.Transport(name, p)
}

func nics(sysNet string, live bool) []NIC {
	out := []NIC{}
	ents, _ := os.ReadDir(sysNet)
	for _, e := range ents {
		name := e.Name()
		dir := filepath.Join(sysNet, name)
		if name == "lo" || readTrim(filepath.Join(dir, "type")) == "772" {
			continue // loopback
		}
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // virtual interfaces (bonds, tunnels) are not hardware
		}
		n := NIC{
			Name: name,
			MAC:  readTrim(filepath.Join(dir, "address")),
			Link: readTrim(filepath.Join(dir, "carrier")) == "1",
		}
		if drv, err := os.Readlink(filepath.Join(dir, "device/driver")); err == nil {
			n.Driver = filepath.Base(drv)
		}
		if live {
			if ifc, err := net.InterfaceByName(name); err == nil {
				addrs, _ := ifc.Addrs()
				for _, a := range addrs {
					n.Addresses = append(n.Addresses, a.String())
				}
			}
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
