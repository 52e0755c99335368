package netconf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func params(kv ...string) map[string][]string {
	m := map[string][]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = append(m[k], v)
	}
	return m
}

func TestParseCmdline(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string // the interfaces, one String() per line
		all  bool   // DHCPAll
		dns  int
	}{
		{nil, "", true, 0},
		{[]string{"ip=dhcp"}, "", true, 0},
		{[]string{"ip=eth1:dhcp"}, "eth1 dhcp", false, 0},
		{[]string{"ip=192.0.2.10::192.0.2.1:255.255.255.0::eth0:none"}, "eth0 192.0.2.10/24 via 192.0.2.1", false, 0},
		{[]string{"ip=192.0.2.10::192.0.2.1:24:pe:eth0:none:192.0.2.53:192.0.2.54"}, "eth0 192.0.2.10/24 via 192.0.2.1 dns 192.0.2.53 dns 192.0.2.54", false, 0},
		{[]string{"ip=192.0.2.10:::255.255.255.128::eth0:off"}, "eth0 192.0.2.10/25", false, 0},
		{[]string{"ip=[2001:db8::10]::[2001:db8::1]:64::eth0:none"}, "eth0 2001:db8::10/64 via 2001:db8::1", false, 0},
		{[]string{"vlan=eth0.20:eth0", "ip=198.51.100.7::198.51.100.1:24::eth0.20:none", "nameserver=198.51.100.53"},
			"eth0.20 (VLAN 20 on eth0) 198.51.100.7/24 via 198.51.100.1", false, 1},
		{[]string{"vlan=vlan300:eno1"}, "vlan300 (VLAN 300 on eno1) dhcp", true, 0},
	} {
		cfg, err := ParseCmdline(params(c.in...))
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		var got []string
		for _, i := range cfg.Interfaces {
			got = append(got, i.String())
		}
		if strings.Join(got, "\n") != c.want || cfg.DHCPAll != c.all || len(cfg.DNS) != c.dns {
			t.Errorf("%v:\n got %q all=%v dns=%v\nwant %q all=%v dns=%d", c.in, got, cfg.DHCPAll, cfg.DNS, c.want, c.all, c.dns)
		}
	}
	cfg, err := ParseCmdline(params("ifname=net0:52:54:00:12:34:56", "ip=off"))
	if err != nil || !cfg.Off || len(cfg.Names) != 1 || cfg.Names[0].Name != "net0" || cfg.Names[0].MAC.String() != "52:54:00:12:34:56" {
		t.Errorf("ifname + ip=off: %+v, %v", cfg, err)
	}
}

// TestParseCmdlineBad: every mistake a technician can type is an error
// naming the parameter, never a silently different network.
func TestParseCmdlineBad(t *testing.T) {
	for _, c := range []struct {
		in   []string
		says string
	}{
		{[]string{"ip=192.0.2.300::192.0.2.1:24::eth0:none"}, "192.0.2.300"},
		{[]string{"ip=192.0.2.10::192.0.2.1:24::eth0"}, "6 fields"},
		{[]string{"ip=192.0.2.10::192.0.2.1:33::eth0:none"}, "prefix length 33"},
		{[]string{"ip=192.0.2.10::192.0.2.1:255.0.255.0::eth0:none"}, "netmask"},
		{[]string{"ip=192.0.2.10::192.0.2.1:::eth0:none"}, "netmask"},
		{[]string{"ip=192.0.2.10::198.51.100.1:24::eth0:none"}, "gateway 198.51.100.1 is not in 192.0.2.0/24"},
		{[]string{"ip=192.0.2.10::[2001:db8::1]:24::eth0:none"}, "different IP versions"},
		{[]string{"ip=192.0.2.0::192.0.2.1:24::eth0:none"}, "network address"},
		{[]string{"ip=192.0.2.10::192.0.2.1:24:::none"}, "no interface"},
		{[]string{"ip=192.0.2.10::192.0.2.1:24::eth0:bootp"}, "method"},
		{[]string{"ip=192.0.2.10::192.0.2.1:24::eth0:none:dns.example"}, "DNS server"},
		{[]string{"ip=192.0.2.10::192.0.2.1:24::eth0:none", "ip=192.0.2.11::192.0.2.1:24::eth0:none"}, "twice"},
		{[]string{"ip=[2001:db8::10::64::eth0:none"}, "unbalanced"},
		{[]string{"ip=192.0.2.10::192.0.2.1:24::eth0/../x:none"}, "not an interface name"},
		{[]string{"vlan=eth0.5000:eth0"}, "4094"},
		{[]string{"vlan=eth0:eth0"}, "its own parent"},
		{[]string{"vlan=myvlan:eth0"}, "end with the VLAN ID"},
		{[]string{"vlan=eth0.20"}, "NAME:PARENT"},
		{[]string{"nameserver=8.8.8"}, "nameserver=8.8.8"},
		{[]string{"ifname=net0:zz:54:00:12:34:56"}, "ifname="},
		{[]string{"ip=off", "ip=eth0:dhcp"}, "ip=off together"},
	} {
		_, err := ParseCmdline(params(c.in...))
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want ErrSyntax saying %q", c.in, err, c.says)
		}
	}
}

func TestStatic(t *testing.T) {
	c := Config{Interfaces: []Interface{{Name: "eth0", DHCP: true}}}
	if c.Static() {
		t.Error("DHCP only is not static")
	}
	c.Interfaces = append(c.Interfaces, Interface{Name: "eth1", Address: netip.MustParsePrefix("192.0.2.2/24")})
	if !c.Static() {
		t.Error("an address is static")
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("192.0.2.10::192.0.2.1:24::eth0:none:192.0.2.53", "eth0.20:eth0")
	f.Add("[2001:db8::10]::[2001:db8::1]:64::eth0:none", "")
	f.Fuzz(func(t *testing.T, ip, vlan string) {
		p := map[string][]string{"ip": {ip}}
		if vlan != "" {
			p["vlan"] = []string{vlan}
		}
		c, err := ParseCmdline(p)
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted %q %q but Validate says %v", ip, vlan, err)
			}
		}
	})
}
