package diskops

import (
	"errors"
	"strings"
	"testing"
)

// TestTransport classifies the sysfs device paths of real machines and VMs
// (as /sys/block/NAME links to them).
func TestTransport(t *testing.T) {
	for _, c := range []struct{ name, devpath, want string }{
		// QEMU
		{"vda", "../devices/pci0000:00/0000:00:04.0/virtio1/block/vda", "virtio"},
		{"sda", "../devices/pci0000:00/0000:00:05.0/virtio2/host2/target2:0:0/2:0:0:0/block/sda", "scsi"}, // virtio-scsi
		{"sda", "../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "sata"},    // AHCI
		{"sda", "../devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0/block/sda", "sata"},    // ide-hd on PIIX
		{"sr0", "../devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sr0", "sata"},
		{"nvme0n1", "../devices/pci0000:00/0000:00:06.0/nvme/nvme0/nvme0n1", "nvme"},
		{"sdb", "../devices/pci0000:00/0000:00:07.0/usb1/1-1/1-1:1.0/host3/target3:0:0/3:0:0:0/block/sdb", "usb"},
		// Bare metal
		{"nvme1n1", "../devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme1/nvme1n1", "nvme"},
		{"nvme0n1", "../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1", "nvme"},                             // native multipath
		{"sdc", "../devices/pci0000:00/0000:00:14.0/usb2/2-3/2-3:1.0/host6/target6:0:0/6:0:0:0/block/sdc", "usb"}, // UAS SSD in a case
		{"sdd", "../devices/pci0000:00/0000:00:14.0/usb2/2-4/2-4:1.0/host7/target7:0:0/7:0:0:0/block/sdd", "usb"}, // NVMe-USB bridge
		{"mmcblk0", "../devices/pci0000:00/0000:00:1c.0/0000:02:00.0/mmc_host/mmc0/mmc0:0001/block/mmcblk0", "mmc"},
		{"mmcblk1", "../devices/platform/fe320000.mmc/mmc_host/mmc1/mmc1:aaaa/block/mmcblk1", "mmc"},
		{"sde", "../devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host8/target8:0:0/8:0:0:0/block/sde", "usb"},                                           // SD in a USB reader
		{"sda", "../devices/pci0000:80/0000:80:03.0/0000:82:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda", "sas"},                       // mpt3sas
		{"sdb", "../devices/pci0000:00/0000:00:15.0/0000:03:00.0/host2/target2:0:1/2:0:1:0/block/sdb", "scsi"},                                              // VMware PVSCSI
		{"sda", "../devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/f8b3781b-1e82-4818-a1c3-63d806ec15bb/host0/target0:0:0/0:0:0:0/block/sda", "scsi"}, // Hyper-V
		{"sdb", "../devices/platform/host3/session1/target3:0:0/3:0:0:1/block/sdb", "scsi"},                                                                 // iSCSI
		{"xvda", "../devices/vbd-51712/block/xvda", "xen"},
		{"loop0", "../devices/virtual/block/loop0", "loop"},
		{"nbd0", "../devices/virtual/block/nbd0", "unknown"},
		{"zram0", "../devices/virtual/block/zram0", "unknown"},
		// The fake trees of the tests use _ for : (pe/hw/testdata).
		{"sdc", "../devices/pci0000_00/0000_00_06.0/virtio3/host2/target2_0_0/2_0_0_0/block/sdc", "scsi"},
	} {
		if got := Transport(c.name, c.devpath); got != c.want {
			t.Errorf("Transport(%s, %s) = %q, want %q", c.name, c.devpath, got, c.want)
		}
		found := false
		for _, k := range Transports {
			found = found || k == c.want
		}
		if !found {
			t.Errorf("%q is not in Transports", c.want)
		}
	}
}

// TestSelectVirtioSCSI: a virtio-scsi disk is selected as scsi, not as
// virtio, so that {transport: virtio} in a VM with both picks the vdX.
func TestSelectVirtioSCSI(t *testing.T) {
	vscsi := fakeDisk{name: "sda", devpath: "pci0000:00/0000:00:05.0/virtio2/host2/target2:0:0/2:0:0:0", devnum: "8:0", gib: 30, model: "QEMU HARDDISK", serial: "scsi0"}
	disks := discoverT(t, DiscoverOptions{}, "", vscsi, virtio)
	for rule, want := range map[string]string{"{transport: virtio}": "vda", "{transport: scsi}": "sda"} {
		d, err := Select(disks, mustRule(t, rule))
		if err != nil || d.Name != want {
			t.Errorf("%s: %v, %v; want %s", rule, d, err, want)
		}
	}
}

func TestTransportRuleErrors(t *testing.T) {
	for rule, want := range map[string]string{
		"{transport: virtio-scsi}": `unknown transport "virtio-scsi": did you mean "scsi"?`,
		"{transport: IDE}":         `unknown transport "IDE": did you mean "sata"?`,
		"{transport: nvm}":         `unknown transport "nvm": did you mean "nvme"?`,
		"{transport: firewire}":    `unknown transport "firewire" (want nvme, sata, sas, scsi, virtio, usb, mmc, xen, loop, unknown)`,
	} {
		if _, err := ParseRule(rule); !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", rule, err, want)
		}
	}
}
