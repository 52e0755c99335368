package progress

import "testing"

func TestMachine(t *testing.T) {
	for _, c := range []struct{ serial, mac, id string }{
		{"CZC1234XYZ", "52:54:00:12:34:56", "CZC1234XYZ"},
		{"To Be Filled By O.E.M.", "52:54:00:12:34:56", "52:54:00:12:34:56"},
		{"0000000000", "AA:BB:CC:00:11:22", "aa:bb:cc:00:11:22"},
		{"FFFFFFFF", "", ""},
		{"", "", ""},
	} {
		m := NewMachine(c.serial, c.mac, "pc17", "10.0.0.7", "ACME Box & Co")
		if m.ID != c.id {
			t.Errorf("serial %q mac %q: id %q, want %q", c.serial, c.mac, m.ID, c.id)
		}
		back, err := ParseMachine(m.Header())
		if err != nil || back != m {
			t.Errorf("%+v -> %q -> %+v, %v", m, m.Header(), back, err)
		}
	}
}
