package hw

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/minint/minint/diskops"
)

func TestCollectFakeSysfs(t *testing.T) {
	inv := Collect("testdata/root")
	want := &Inventory{
		Vendor: "Dell Inc.", Model: "PowerEdge R640", Serial: "ABC1234",
		UUID: "4c4c4544-0042-3510-8052-b4c04f335a32",
		CPUs: 2, CPUModel: "Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz",
		MemoryBytes: 491520 * 1024,
		Firmware:    "uefi",
		Disks: []Disk{
			{Name: "nvme0n1", SizeBytes: 1953525168 * 512, Model: "Samsung SSD 970 EVO Plus 1TB", Serial: "S4EWNX0R123456", Transport: "nvme"},
			{Name: "sda", SizeBytes: 976773168 * 512, Model: "Samsung SSD 860", Serial: "S123ABC", Transport: "sata"},
			{Name: "sdb", SizeBytes: 60063744 * 512, Model: "Ultra Fit", Transport: "usb", Removable: true},
			// virtio-scsi: a SCSI disk behind a virtio controller.
			{Name: "sdc", SizeBytes: 2097152 * 512, Model: "QEMU HARDDISK", Transport: "scsi"},
			{Name: "sr0", SizeBytes: 2097151 * 512, Model: "QEMU DVD-ROM", Transport: "sata", Removable: true, RO: true},
			{Name: "vda", SizeBytes: 131072 * 512, Serial: "BLANK123", Transport: "virtio"},
		},
		NICs: []NIC{
			{Name: "enp0s8", MAC: "52:54:00:ab:cd:ef", Link: false, Driver: "driver_e1000"},
			{Name: "eth0", MAC: "52:54:00:12:34:56", Link: true, Driver: "driver_virtio_net"},
		},
	}
	if !reflect.DeepEqual(inv, want) {
		g, _ := json.MarshalIndent(inv, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}

// TestTransportAgreesWithSelection: the inventory names each disk's
// transport as disk selection (diskops.Discover) does, so that what the
// PE reports is what a select-disk rule matches.
func TestTransportAgreesWithSelection(t *testing.T) {
	disks, err := diskops.Discover(context.Background(), diskops.DiscoverOptions{Root: "testdata/root", NoProbe: true})
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{}
	for _, d := range disks {
		sel[d.Name] = d.Transport
	}
	inv := Collect("testdata/root")
	for _, d := range inv.Disks {
		if sel[d.Name] != d.Transport {
			t.Errorf("%s: inventory says %q, selection %q", d.Name, d.Transport, sel[d.Name])
		}
	}
	if len(inv.Disks) < 6 {
		t.Errorf("only %d disks in the fake tree", len(inv.Disks))
	}
}

func TestCollectEmptyRoot(t *testing.T) {
	inv := Collect(t.TempDir())
	if inv.Firmware != "bios" || inv.CPUs != 0 || inv.Disks == nil || inv.NICs == nil || len(inv.Disks)+len(inv.NICs) != 0 {
		t.Errorf("got %+v; want BIOS, nothing found, and empty (not null) lists for JSON", inv)
	}
	b, _ := json.Marshal(inv)
	var m map[string]any
	json.Unmarshal(b, &m)
	if _, ok := m["disks"].([]any); !ok {
		t.Errorf("disks is not a JSON list: %s", b)
	}
}

func TestCollectLiveHost(t *testing.T) {
	inv := Collect("/")
	if inv.CPUs < 1 || inv.MemoryBytes <= 0 {
		t.Errorf("live host: %+v", inv)
	}
}

func TestWriteResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := writeResolvConf(p, []string{"192.0.2.53", "not-an-ip", "2001:db8::53", "192.0.2.53"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if want := "# written by minint's PE\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"; string(b) != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", b, want)
	}
}
