package sequence

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/internal/strictyaml"
	"github.com/minint/minint/netconf"
)

// NetworkInterface is one entry of a sequence's network: list, the
// static network configuration the engine applies before the first step
// (for networks without DHCP; the kernel command line's ip=/vlan= serve a
// sequence that is itself fetched over the network):
//
//	network:
//	  - interface: eth0          # or mac: 52:54:00:12:34:56
//	    vlan: 20                 # optional: a VLAN on it (interface eth0.20)
//	    address: 192.0.2.10/24
//	    gateway: 192.0.2.1
//	    dns: [192.0.2.53]
//	  - {interface: eth1, dhcp: true}
type NetworkInterface struct {
	Interface string   `yaml:"interface" json:"interface,omitempty"`
	MAC       string   `yaml:"mac" json:"mac,omitempty"`
	VLAN      int      `yaml:"vlan" json:"vlan,omitempty"`
	Address   string   `yaml:"address" json:"address,omitempty"`
	Gateway   string   `yaml:"gateway" json:"gateway,omitempty"`
	DNS       []string `yaml:"dns" json:"dns,omitempty"`
	DHCP      bool     `yaml:"dhcp" json:"dhcp,omitempty"`
}

// parseNetwork reads the network: list into a netconf.Config, with errors
// on the offending key's node.
func parseNetwork(n ast.Node) (*netconf.Config, error) {
	list, ok := strictyaml.Unwrap(n).(*ast.SequenceNode)
	if !ok || len(list.Values) == 0 {
		return nil, nodeErr(n, "network must be a non-empty list of interfaces")
	}
	cfg := &netconf.Config{}
	seen := map[string]bool{}
	for i, item := range list.Values {
		m, ok := strictyaml.Unwrap(item).(*ast.MappingNode)
		if !ok {
			return nil, nodeErr(item, "a network entry must be a mapping (interface:, address: …)")
		}
		var ni NetworkInterface
		if err := strictyaml.Decode(m, &ni); err != nil {
			return nil, err
		}
		name := ni.Interface
		switch {
		case name != "" && ni.MAC != "":
			return nil, nodeErr(field(m, "mac"), "give interface or mac, not both")
		case ni.MAC != "":
			hw, err := net.ParseMAC(ni.MAC)
			if err != nil || len(hw) != 6 {
				return nil, nodeErr(field(m, "mac"), "%q is not a MAC address", ni.MAC)
			}
			// The NIC gets a name of its own, as ifname= would give it.
			name = "net" + strconv.Itoa(i)
			cfg.Names = append(cfg.Names, netconf.Rename{Name: name, MAC: hw})
		case name == "":
			return nil, nodeErr(m, "network entry without interface or mac")
		}
		ifc := netconf.Interface{Name: name, DHCP: ni.DHCP}
		if ni.VLAN != 0 {
			ifc.Parent, ifc.VLAN, ifc.Name = name, ni.VLAN, fmt.Sprintf("%s.%d", name, ni.VLAN)
		}
		if len(ifc.Name) > 15 {
			return nil, nodeErr(m, "interface name %s is longer than 15 characters", ifc.Name)
		}
		if seen[ifc.Name] {
			return nil, nodeErr(m, "interface %s is configured twice", ifc.Name)
		}
		seen[ifc.Name] = true
		switch {
		case ni.DHCP && (ni.Address != "" || ni.Gateway != ""):
			return nil, nodeErr(field(m, "dhcp"), "dhcp: true together with a static address or gateway")
		case !ni.DHCP && ni.Address == "":
			return nil, nodeErr(m, "network entry for %s needs address: (ADDRESS/PREFIX) or dhcp: true", ifc.Name)
		case ni.Address != "":
			p, err := netip.ParsePrefix(ni.Address)
			if err != nil {
				return nil, nodeErr(field(m, "address"), "address %q: want ADDRESS/PREFIX, e.g. 192.0.2.10/24", ni.Address)
			}
			ifc.Address = p
		}
		if ni.Gateway != "" {
			g, err := netip.ParseAddr(ni.Gateway)
			if err != nil {
				return nil, nodeErr(field(m, "gateway"), "gateway %q is not an IP address", ni.Gateway)
			}
			ifc.Gateway = g
		}
		for _, d := range ni.DNS {
			a, err := netip.ParseAddr(d)
			if err != nil {
				return nil, nodeErr(field(m, "dns"), "DNS server %q is not an IP address", d)
			}
			ifc.DNS = append(ifc.DNS, a)
		}
		one := netconf.Config{Interfaces: []netconf.Interface{ifc}}
		if err := one.Validate(); err != nil {
			msg := strings.TrimPrefix(err.Error(), netconf.ErrSyntax.Error()+": ")
			return nil, nodeErr(m, "%s", msg)
		}
		cfg.Interfaces = append(cfg.Interfaces, ifc)
	}
	return cfg, nil
}
