package progress

import (
	"net/url"
	"strings"
)

// MachineHeader is the HTTP header with which a PE names itself on every
// event and log it sends to a status URL (see Machine).
const MachineHeader = "X-Minint-Machine"

// Machine is who sends events to a collector: what a technician reads on
// the machine's label and screen. ID is the key a collector files the
// events under; it must survive a reboot, so it is the SMBIOS serial
// number when the firmware has a real one and the first NIC's MAC address
// otherwise (addresses change with DHCP, hostnames with the deployment).
type Machine struct {
	ID, Serial, MAC, Hostname, IP, Model string
}

// placeholderSerials are what firmware puts in the serial number when the
// vendor did not: shared by every board of a kind, so no ID.
var placeholderSerials = map[string]bool{
	"": true, "0": true, "none": true, "n/a": true, "na": true, "default string": true,
	"to be filled by o.e.m.": true, "system serial number": true, "not specified": true,
	"not applicable": true, "0123456789": true, "123456789": true, "chassis serial number": true,
}

// UsableSerial reports whether s identifies one machine.
func UsableSerial(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return !placeholderSerials[s] && strings.Trim(s, "0") != "" && strings.Trim(s, "f") != ""
}

// NewMachine fills ID from serial or mac (see Machine).
func NewMachine(serial, mac, hostname, ip, model string) Machine {
	m := Machine{Serial: strings.TrimSpace(serial), MAC: strings.ToLower(mac), Hostname: hostname, IP: ip, Model: model}
	switch {
	case UsableSerial(m.Serial):
		m.ID = m.Serial
	case m.MAC != "":
		m.ID = m.MAC
	}
	return m
}

// Header is the value of MachineHeader: the fields, query-encoded
// ("id=…&serial=…&mac=…"), empty ones left out.
func (m Machine) Header() string {
	v := url.Values{}
	for k, s := range map[string]string{"id": m.ID, "serial": m.Serial, "mac": m.MAC, "hostname": m.Hostname, "ip": m.IP, "model": m.Model} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// ParseMachine reads a MachineHeader value. A value without an id is not
// an error here; the collector decides what it accepts.
func ParseMachine(h string) (Machine, error) {
	v, err := url.ParseQuery(h)
	if err != nil {
		return Machine{}, err
	}
	return Machine{ID: v.Get("id"), Serial: v.Get("serial"), MAC: v.Get("mac"), Hostname: v.Get("hostname"), IP: v.Get("ip"), Model: v.Get("model")}, nil
}
