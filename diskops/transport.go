package diskops

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/minint/minint/internal/strictyaml"
)

// Transports are the buses a disk is reached through, as Transport names
// them, discovery reports them (Disk.Transport), the PE's inventory shows
// them and a selection rule matches them ({transport: nvme}).
//
// The name is what a person writing a rule sees in the machine's
// specification: the protocol the disk speaks, not the controller in
// between. A virtio-scsi disk (sdX in a VM, and every Google Cloud
// persistent disk) is a SCSI disk behind a virtio controller, as it would
// be behind a SAS or Hyper-V one: "scsi"; "virtio" is a virtio-blk disk
// (vdX). Anything on USB is "usb", whatever it bridges to: a USB stick, a
// SATA disk in a USB case, an SD card in a USB reader.
var Transports = []string{
	"nvme",    // NVMe namespaces (nvme0n1), PCIe or over fabrics
	"sata",    // disks and CD drives behind libata: AHCI, and PATA/IDE (QEMU's ide-hd)
	"sas",     // SAS disks (…/end_device-…/ in sysfs)
	"scsi",    // other SCSI disks: virtio-scsi, Hyper-V, VMware PVSCSI, parallel SCSI, iSCSI, FC
	"virtio",  // virtio-blk (vdX)
	"usb",     // anything on USB (usb-storage, UAS)
	"mmc",     // SD cards and eMMC (mmcblk0)
	"xen",     // Xen block front-ends (xvdX)
	"loop",    // loop devices
	"unknown", // anything else
}

var (
	reUSBBus   = regexp.MustCompile(`/usb[0-9]+/`)
	reVirtioBk = regexp.MustCompile(`/virtio[0-9]+/block/`)
	reSCSIHost = regexp.MustCompile(`/host[0-9]+/(.*/)?target[0-9]+[:_]`)
)

// Transport names the bus the block device name is reached through (see
// Transports), from its kernel name and the path of its device in sysfs:
// the target of the /sys/block/NAME link, relative or absolute, e.g.
// ../devices/pci0000:00/0000:00:05.0/virtio2/host2/target2:0:0/2:0:0:0/block/sda.
// The order of the checks matters: a USB enclosure shows the SCSI host it
// emulates, a virtio-scsi disk shows its virtio device.
func Transport(name, devpath string) string {
	switch {
	case strings.HasPrefix(name, "loop"):
		return "loop"
	case reUSBBus.MatchString(devpath):
		return "usb"
	case strings.HasPrefix(name, "nvme") || strings.Contains(devpath, "/nvme/"):
		return "nvme"
	case strings.HasPrefix(name, "mmcblk") || strings.Contains(devpath, "/mmc_host/"):
		return "mmc"
	case strings.HasPrefix(name, "vd") || reVirtioBk.MatchString(devpath):
		return "virtio"
	case strings.HasPrefix(name, "xvd") || strings.Contains(devpath, "/vbd-"):
		return "xen"
	case reATA.MatchString(devpath):
		return "sata"
	case strings.Contains(devpath, "/end_device-"):
		return "sas"
	case reSCSIHost.MatchString(devpath):
		return "scsi"
	}
	return "unknown"
}

// transportHints answer the names people reach for instead of ours.
var transportHints = map[string]string{
	"virtio-scsi": "scsi", "virtio-blk": "virtio", "vd": "virtio",
	"ide": "sata", "pata": "sata", "ata": "sata", "ahci": "sata",
	"uas": "usb", "usb-storage": "usb", "sd": "mmc", "emmc": "mmc", "sdcard": "mmc",
	"pcie": "nvme", "iscsi": "scsi", "fc": "scsi",
}

// checkTransport accepts the names of Transports, and says which one was
// meant otherwise.
func checkTransport(t string) error {
	for _, k := range Transports {
		if t == k {
			return nil
		}
	}
	s, ok := transportHints[strings.ToLower(t)]
	if !ok {
		s = strictyaml.Suggest(strings.ToLower(t), Transports)
	}
	if s != "" {
		return fmt.Errorf("%w: unknown transport %q: did you mean %q?", ErrRule, t, s)
	}
	return fmt.Errorf("%w: unknown transport %q (want %s)", ErrRule, t, strings.Join(Transports, ", "))
}
