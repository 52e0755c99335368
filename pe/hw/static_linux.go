package hw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minint/minint/netconf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ResolvConf is where the PE's resolver reads its DNS servers.
const ResolvConf = "/etc/resolv.conf"

// Configure brings the network up as cfg says: interfaces renamed by MAC,
// VLANs created on their parents, static addresses and default routes set,
// DHCP on the interfaces that ask for it (and on every other NIC when
// cfg.DHCPAll), and the DNS servers written to ResolvConf. It returns what
// it configured. An interface cfg names that does not appear within
// linkWait, or an address the kernel refuses, is an error: a PE told to
// use a static address must not go on without it. VLANs need the 8021q
// module loaded.
func Configure(ctx context.Context, cfg netconf.Config, linkWait, timeout time.Duration, logf func(string, ...any)) ([]Lease, error) {
	if cfg.Off {
		return nil, nil
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	for _, r := range cfg.Names {
		if err := rename(ctx, r, linkWait); err != nil {
			return nil, err
		}
	}
	var leases []Lease
	done := map[string]bool{}
	for _, i := range cfg.Interfaces {
		l, err := configureOne(ctx, i, linkWait, timeout, logf)
		if err != nil {
			return leases, fmt.Errorf("network %s: %w", i.Name, err)
		}
		done[i.Name] = true
		if i.Parent != "" {
			done[i.Parent] = true // its VLAN uses it; no DHCP on the trunk
		}
		if l != nil {
			leases = append(leases, *l)
		}
	}
	var errs []error
	if cfg.DHCPAll {
		more, err := dhcpAll(ctx, linkWait, timeout, done, logf)
		leases = append(leases, more...)
		errs = append(errs, err)
	}
	if cfg.Static() || len(cfg.DNS) > 0 {
		var dns []string
		for _, d := range cfg.DNS {
			dns = append(dns, d.String())
		}
		for _, l := range leases {
			dns = append(dns, l.DNS...)
		}
		if err := writeResolvConf(ResolvConf, dns); err != nil {
			errs = append(errs, err)
		}
	}
	return leases, errors.Join(errs...)
}

func rename(ctx context.Context, r netconf.Rename, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			if !bytes.Equal(a.HardwareAddr, r.MAC) {
				continue
			}
			if a.Name == r.Name {
				return nil
			}
			netlink.LinkSetDown(l)
			if err := netlink.LinkSetName(l, r.Name); err != nil {
				return fmt.Errorf("ifname=%s:%s: rename %s: %w", r.Name, r.MAC, a.Name, err)
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("ifname=%s:%s: no NIC has that MAC address", r.Name, r.MAC)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLink waits for an interface to exist (its driver may still be
// probing).
func waitLink(ctx context.Context, name string, wait time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := netlink.LinkByName(name)
		if err == nil {
			return l, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var names []string
			if links, err := netlink.LinkList(); err == nil {
				for _, l := range links {
					if l.Attrs().Name != "lo" {
						names = append(names, l.Attrs().Name)
					}
				}
			}
			return nil, fmt.Errorf("no interface %s (this machine has %s)", name, strings.Join(names, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func configureOne(ctx context.Context, i netconf.Interface, linkWait, timeout time.Duration, logf func(string, ...any)) (*Lease, error) {
	var link netlink.Link
	var err error
	if i.Parent != "" {
		parent, err := waitLink(ctx, i.Parent, linkWait)
		if err != nil {
			return nil, fmt.Errorf("VLAN parent: %w", err)
		}
		if err := netlink.LinkSetUp(parent); err != nil {
			return nil, fmt.Errorf("VLAN parent %s up: %w", i.Parent, err)
		}
		if old, err := netlink.LinkByName(i.Name); err == nil {
			netlink.LinkDel(old) // a retry: start afresh
		}
		v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: i.Name, ParentIndex: parent.Attrs().Index}, VlanId: i.VLAN}
		if err := netlink.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("create VLAN %d on %s: %w (is the 8021q module loaded?)", i.VLAN, i.Parent, err)
		}
		if link, err = netlink.LinkByName(i.Name); err != nil {
			return nil, err
		}
	} else if link, err = waitLink(ctx, i.Name, linkWait); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("link up: %w", err)
	}
	carrier := i.Parent
	if carrier == "" {
		carrier = i.Name
	}
	if !waitCarrier(ctx, carrier, linkWait) {
		logf("network: %s: no link after %s", carrier, linkWait)
	}
	if i.DHCP {
		l, err := lease4(ctx, link, timeout)
		if err != nil {
			return nil, err
		}
		l.VLAN = i.VLAN
		return l, nil
	}
	// Replace whatever the interface had (an earlier DHCP lease).
	if addrs, err := netlink.AddrList(link, unix.AF_UNSPEC); err == nil {
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				netlink.AddrDel(link, &a)
			}
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(i.Address.Addr().AsSlice()), Mask: net.CIDRMask(i.Address.Bits(), i.Address.Addr().BitLen())}}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return nil, fmt.Errorf("address %s: %w", i.Address, err)
	}
	l := &Lease{Interface: i.Name, Address: i.Address.String(), Method: "static", VLAN: i.VLAN}
	if i.Gateway.IsValid() {
		family := unix.AF_INET
		dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		if i.Gateway.Is6() {
			family = unix.AF_INET6
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: net.IP(i.Gateway.AsSlice()), Family: family}
		if err := netlink.RouteReplace(route); err != nil {
			return nil, fmt.Errorf("default route via %s: %w", i.Gateway, err)
		}
		l.Router = i.Gateway.String()
	}
	for _, d := range i.DNS {
		l.DNS = append(l.DNS, d.String())
	}
	return l, nil
}

// writeResolvConf writes the DNS servers, each once, in order.
func writeResolvConf(path string, servers []string) error {
	var b strings.Builder
	b.WriteString("# written by minint's PE\n")
	var seen []string
	for _, s := range servers {
		if _, err := netip.ParseAddr(s); err != nil || slices.Contains(seen, s) {
			continue
		}
		seen = append(seen, s)
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
