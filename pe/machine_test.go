package pe

import (
	"testing"

	"github.com/minint/minint/pe/hw"
)

// TestMachineOf: the machine is named by its serial number, and by the
// NIC that has an address (the one talking to the server).
func TestMachineOf(t *testing.T) {
	inv := &hw.Inventory{Serial: "SN1", Vendor: "ACME", Model: "Box", NICs: []hw.NIC{
		{Name: "eth0", MAC: "52:54:00:00:00:01"},
		{Name: "eth1", MAC: "52:54:00:00:00:02", Addresses: []string{"10.0.2.15/24", "fe80::1/64"}},
	}}
	m := machineOf(inv)
	if m.ID != "SN1" || m.MAC != "52:54:00:00:00:02" || m.IP != "10.0.2.15" || m.Model != "ACME Box" {
		t.Errorf("%+v", m)
	}
	inv.Serial, inv.NICs[1].Addresses = "", nil
	if m := machineOf(inv); m.ID != "52:54:00:00:00:01" || m.IP != "" {
		t.Errorf("no serial, no address: %+v", m)
	}
}
