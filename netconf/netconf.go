// Package netconf is the PE's network configuration when DHCP is not the
// answer: static addresses, gateways, DNS servers and VLANs, given on the
// kernel command line in dracut's syntax or in a task sequence.
//
// Kernel command line (dracut.cmdline(7); the PE reads these, the kernel
// itself ignores them without CONFIG_IP_PNP):
//
//	ip=CLIENT:[PEER]:GATEWAY:NETMASK:[HOSTNAME]:IFACE:none[:DNS1[:DNS2]]
//	                        a static address on IFACE (IPv6 in brackets:
//	                        ip=[2001:db8::10]::[2001:db8::1]:64::eth0:none);
//	                        NETMASK is dotted (255.255.255.0) or a prefix
//	                        length (24)
//	ip=IFACE:dhcp           DHCP on IFACE only
//	ip=dhcp                 DHCP on every NIC (the default without ip=)
//	ip=off                  no network at all
//	vlan=NAME:PARENT        a VLAN interface on PARENT; its ID is the digits
//	                        NAME ends with (eth0.20, vlan20)
//	nameserver=IP           a DNS server (repeatable)
//	ifname=NAME:MAC         names the NIC with that MAC, so that ip= and
//	                        vlan= do not depend on probe order
//
// When any ip= is given, only the interfaces named get configured; without
// one every NIC with a link asks DHCP. A value that does not parse is an
// error naming it: the PE then stops before touching any disk.
//
// This package only parses and validates; pe/hw applies a Config with
// netlink.
package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every parse and validation error.
var ErrSyntax = errors.New("bad network configuration")

// Config is the network the PE brings up.
type Config struct {
	// Off: no networking at all (ip=off).
	Off bool
	// DHCPAll: DHCP on every NIC not configured otherwise (the default,
	// and ip=dhcp).
	DHCPAll bool
	// Interfaces are configured in order: VLAN parents before their VLANs.
	Interfaces []Interface
	// DNS servers for every interface (nameserver=).
	DNS []netip.Addr
	// Names pins interface names to MAC addresses (ifname=).
	Names []Rename
}

// Interface is one interface's configuration.
type Interface struct {
	Name string // kernel name: eth0, or the VLAN's name (eth0.20)
	// DHCP instead of a static address.
	DHCP bool
	// Address is the static address with its prefix (192.0.2.10/24).
	Address netip.Prefix
	Gateway netip.Addr // zero for none
	DNS     []netip.Addr
	// VLAN: the interface is a VLAN with this ID on Parent.
	VLAN   int
	Parent string
}

// Rename is ifname=NAME:MAC.
type Rename struct {
	Name string
	MAC  net.HardwareAddr
}

// Static reports whether any interface has a static address.
func (c Config) Static() bool {
	for _, i := range c.Interfaces {
		if i.Address.IsValid() {
			return true
		}
	}
	return false
}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$`)

func checkName(what, n string) error {
	if !ifnameRE.MatchString(n) {
		return fmt.Errorf("%w: %s %q is not an interface name (letters, digits, '.', '-', '_', at most 15)", ErrSyntax, what, n)
	}
	return nil
}

// ParseCmdline reads ip=, vlan=, nameserver= and ifname= from the kernel
// command line's parameters (key -> values, in order). It returns the
// default (DHCP everywhere) when none is given.
func ParseCmdline(params map[string][]string) (Config, error) {
	c := Config{DHCPAll: true}
	var errs []error
	ips := params["ip"]
	if len(ips) > 0 {
		c.DHCPAll = false
	}
	for _, v := range params["ifname"] {
		name, mac, ok := strings.Cut(v, ":")
		hw, err := net.ParseMAC(mac)
		if !ok || err != nil || len(hw) != 6 {
			errs = append(errs, fmt.Errorf("%w: ifname=%s: want NAME:MAC (ifname=net0:52:54:00:12:34:56)", ErrSyntax, v))
			continue
		}
		if err := checkName("ifname=", name); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Names = append(c.Names, Rename{Name: name, MAC: hw})
	}
	vlans := map[string]Interface{}
	var vlanOrder []string
	for _, v := range params["vlan"] {
		i, err := parseVLAN(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := vlans[i.Name]; dup {
			errs = append(errs, fmt.Errorf("%w: vlan=%s: %s is given twice", ErrSyntax, v, i.Name))
			continue
		}
		vlans[i.Name] = i
		vlanOrder = append(vlanOrder, i.Name)
	}
	for _, v := range params["nameserver"] {
		a, err := netip.ParseAddr(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: nameserver=%s: not an IP address", ErrSyntax, v))
			continue
		}
		c.DNS = append(c.DNS, a)
	}
	seen := map[string]bool{}
	for _, v := range ips {
		switch v {
		case "dhcp", "on", "any":
			c.DHCPAll = true
			continue
		case "off", "none":
			c.Off = true
			continue
		}
		i, err := parseIP(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[i.Name] {
			errs = append(errs, fmt.Errorf("%w: ip=%s: interface %s is configured twice", ErrSyntax, v, i.Name))
			continue
		}
		seen[i.Name] = true
		if vl, ok := vlans[i.Name]; ok {
			i.VLAN, i.Parent = vl.VLAN, vl.Parent
			delete(vlans, i.Name)
		}
		c.Interfaces = append(c.Interfaces, i)
	}
	// A VLAN without an ip= of its own gets DHCP, as in dracut.
	for _, n := range vlanOrder {
		if vl, ok := vlans[n]; ok {
			vl.DHCP = true
			c.Interfaces = append(c.Interfaces, vl)
		}
	}
	if c.Off && (len(c.Interfaces) > 0 || c.DHCPAll) {
		errs = append(errs, fmt.Errorf("%w: ip=off together with other ip= or vlan= settings", ErrSyntax))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

var vlanDigits = regexp.MustCompile(`(\d+)$`)

func parseVLAN(v string) (Interface, error) {
	name, parent, ok := strings.Cut(v, ":")
	if !ok || name == "" || parent == "" {
		return Interface{}, fmt.Errorf("%w: vlan=%s: want NAME:PARENT (vlan=eth0.20:eth0)", ErrSyntax, v)
	}
	m := vlanDigits.FindStringSubmatch(name)
	if m == nil {
		return Interface{}, fmt.Errorf("%w: vlan=%s: the name must end with the VLAN ID (eth0.20, vlan20)", ErrSyntax, v)
	}
	id, _ := strconv.Atoi(m[1])
	i := Interface{Name: name, VLAN: id, Parent: parent}
	if err := checkName("vlan=", name); err != nil {
		return Interface{}, err
	}
	return i, checkName("vlan= parent", parent)
}

// splitFields splits ip='s value at colons outside brackets (IPv6).
func splitFields(v string) ([]string, error) {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, r := range v {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ']'")
			}
		case r == ':' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
			continue
		default:
			cur.WriteRune(r)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '['")
	}
	return append(out, cur.String()), nil
}

func parseIP(v string) (Interface, error) {
	bad := func(format string, a ...any) (Interface, error) {
		return Interface{}, fmt.Errorf("%w: ip=%s: %s (want ip=ADDRESS::GATEWAY:NETMASK::INTERFACE:none[:DNS1[:DNS2]] or ip=INTERFACE:dhcp)", ErrSyntax, v, fmt.Sprintf(format, a...))
	}
	f, err := splitFields(v)
	if err != nil {
		return bad("%v", err)
	}
	if len(f) == 2 {
		if f[1] != "dhcp" && f[1] != "on" && f[1] != "any" {
			return bad("%q is not a method this PE supports (dhcp)", f[1])
		}
		if err := checkName("ip= interface", f[0]); err != nil {
			return Interface{}, err
		}
		return Interface{Name: f[0], DHCP: true}, nil
	}
	if len(f) < 7 || len(f) > 9 {
		return bad("%d fields", len(f))
	}
	i := Interface{Name: f[5]}
	if i.Name == "" {
		return bad("no interface (6th field)")
	}
	if err := checkName("ip= interface", i.Name); err != nil {
		return Interface{}, err
	}
	switch f[6] {
	case "none", "off", "static", "":
	case "dhcp", "on", "any":
		if f[0] != "" {
			return bad("an address and method %s", f[6])
		}
		i.DHCP = true
		return i, nil
	default:
		return bad("method %q (want none for a static address)", f[6])
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil {
		return bad("address %q: %v", f[0], err)
	}
	bits, err := prefixLen(f[3], addr.Is4())
	if err != nil {
		return bad("netmask %q: %v", f[3], err)
	}
	i.Address = netip.PrefixFrom(addr, bits)
	if f[2] != "" {
		if i.Gateway, err = netip.ParseAddr(f[2]); err != nil {
			return bad("gateway %q: %v", f[2], err)
		}
	}
	for _, d := range f[7:] {
		if d == "" {
			continue
		}
		a, err := netip.ParseAddr(d)
		if err != nil {
			return bad("DNS server %q: %v", d, err)
		}
		i.DNS = append(i.DNS, a)
	}
	return i, nil
}

// prefixLen reads a netmask: a prefix length or a dotted IPv4 mask.
func prefixLen(s string, v4 bool) (int, error) {
	max := 128
	if v4 {
		max = 32
	}
	if s == "" {
		return 0, fmt.Errorf("missing")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > max {
			return 0, fmt.Errorf("prefix length %d out of range 1..%d", n, max)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() || !v4 {
		return 0, fmt.Errorf("want a prefix length or a dotted IPv4 mask")
	}
	b := m.As4()
	ones, bits := net.IPv4Mask(b[0], b[1], b[2], b[3]).Size()
	if bits == 0 || ones == 0 {
		return 0, fmt.Errorf("not a contiguous mask")
	}
	return ones, nil
}

// Validate checks what no single field shows: a gateway outside the
// address's subnet, a VLAN whose parent is itself, mixed address families,
// VLAN IDs out of range.
func (c Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for _, i := range c.Interfaces {
		names[i.Name] = true
	}
	for _, i := range c.Interfaces {
		if i.VLAN != 0 || i.Parent != "" {
			if i.VLAN < 1 || i.VLAN > 4094 {
				errs = append(errs, fmt.Errorf("%w: %s: VLAN ID %d out of range 1..4094", ErrSyntax, i.Name, i.VLAN))
			}
			if i.Parent == i.Name {
				errs = append(errs, fmt.Errorf("%w: %s: a VLAN cannot be its own parent", ErrSyntax, i.Name))
			}
		}
		if !i.Address.IsValid() {
			continue
		}
		a := i.Address.Addr()
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			errs = append(errs, fmt.Errorf("%w: %s: %s cannot be an interface's address", ErrSyntax, i.Name, a))
		}
		if i.Address.Addr().Is4() && i.Address.Bits() <= 30 {
			if subnet := i.Address.Masked(); subnet.Addr() == a {
				errs = append(errs, fmt.Errorf("%w: %s: %s is the network address of %s", ErrSyntax, i.Name, a, subnet))
			}
		}
		if g := i.Gateway; g.IsValid() {
			if g.Is4() != a.Is4() {
				errs = append(errs, fmt.Errorf("%w: %s: gateway %s and address %s are of different IP versions", ErrSyntax, i.Name, g, a))
			} else if !i.Address.Masked().Contains(g) && !(g.Is6() && g.IsLinkLocalUnicast()) {
				errs = append(errs, fmt.Errorf("%w: %s: gateway %s is not in %s", ErrSyntax, i.Name, g, i.Address.Masked()))
			} else if g == a {
				errs = append(errs, fmt.Errorf("%w: %s: the gateway is the interface's own address", ErrSyntax, i.Name))
			}
		}
	}
	return errors.Join(errs...)
}

// String renders one interface for people and logs.
func (i Interface) String() string {
	var b strings.Builder
	b.WriteString(i.Name)
	if i.VLAN != 0 {
		fmt.Fprintf(&b, " (VLAN %d on %s)", i.VLAN, i.Parent)
	}
	if i.DHCP {
		b.WriteString(" dhcp")
	}
	if i.Address.IsValid() {
		b.WriteString(" " + i.Address.String())
	}
	if i.Gateway.IsValid() {
		b.WriteString(" via " + i.Gateway.String())
	}
	for _, d := range i.DNS {
		b.WriteString(" dns " + d.String())
	}
	return b.String()
}
