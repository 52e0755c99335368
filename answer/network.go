package answer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// networkFiles renders the network configuration in the format the target
// uses:
//
//   - systemd-networkd present (…/systemd/systemd-networkd): one file
//     /etc/systemd/network/50-minint-N.network per interface ([Match] Name= or
//     MACAddress=, [Network] DHCP=, Address=, Gateway=, DNS=) and the unit
//     enabled in multi-user.target.wants;
//   - otherwise the ifupdown format (also read by busybox ifup):
//     /etc/network/interfaces.d/minint, sourced from /etc/network/interfaces.
//     ifupdown names interfaces exactly, so match must be a plain name there.
//
// DNS servers also go to /etc/resolv.conf unless that is a symlink (owned by
// resolved or resolvconf).
func networkFiles(root string, ifs []Interface) ([]pending, error) {
	if len(ifs) == 0 {
		return nil, nil
	}
	var out []pending
	networkd := ""
	for _, p := range []string{"/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			networkd = p
			break
		}
	}
	dns := map[string]bool{}
	var dnsOrder []string
	for _, n := range ifs {
		for _, d := range n.DNS {
			if !dns[d] {
				dns[d] = true
				dnsOrder = append(dnsOrder, d)
			}
		}
	}
	if networkd != "" {
		for i, n := range ifs {
			var b strings.Builder
			b.WriteString("# Written by minint-setup from the answer file.\n[Match]\n")
			if n.MAC != "" {
				fmt.Fprintf(&b, "MACAddress=%s\n", strings.ToLower(n.MAC))
			} else {
				fmt.Fprintf(&b, "Name=%s\n", n.Match)
			}
			b.WriteString("\n[Network]\n")
			if n.DHCP {
				b.WriteString("DHCP=yes\n")
			}
			for _, a := range n.Addresses {
				fmt.Fprintf(&b, "Address=%s\n", a)
			}
			if n.Gateway != "" {
				fmt.Fprintf(&b, "Gateway=%s\n", n.Gateway)
			}
			for _, d := range n.DNS {
				fmt.Fprintf(&b, "DNS=%s\n", d)
			}
			out = append(out, pending{path: fmt.Sprintf("/etc/systemd/network/50-minint-%d.network", i), data: []byte(b.String()), mode: 0o644})
		}
		unit := filepath.Dir(networkd) + "/system/systemd-networkd.service"
		out = append(out, pending{path: "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", link: unit})
	} else {
		var b strings.Builder
		b.WriteString("# Written by minint-setup from the answer file.\n")
		for i, n := range ifs {
			if n.MAC != "" || strings.ContainsAny(n.Match, "*?[") {
				return nil, invalid("network[%d]: this target uses ifupdown, which needs an exact interface name in match (no mac or glob)", i)
			}
			fmt.Fprintf(&b, "\nauto %s\nallow-hotplug %s\n", n.Match, n.Match)
			if n.DHCP {
				fmt.Fprintf(&b, "iface %s inet dhcp\n", n.Match)
			}
			for j, a := range n.Addresses {
				ip, ipn, _ := parseCIDR(a)
				fam := "inet"
				if ip.To4() == nil {
					fam = "inet6"
				}
				ones, _ := ipn.Mask.Size()
				fmt.Fprintf(&b, "iface %s %s static\n\taddress %s/%d\n", n.Match, fam, ip, ones)
				if j == 0 && n.Gateway != "" {
					fmt.Fprintf(&b, "\tgateway %s\n", n.Gateway)
				}
				if j == 0 && len(n.DNS) > 0 {
					fmt.Fprintf(&b, "\tdns-nameservers %s\n", strings.Join(n.DNS, " "))
				}
			}
		}
		out = append(out, pending{path: "/etc/network/interfaces.d/minint", data: []byte(b.String()), mode: 0o644})
		main, err := readOpt(root, "/etc/network/interfaces")
		if err != nil {
			return nil, err
		}
		if !strings.Contains(string(main), "source /etc/network/interfaces.d/*") && !strings.Contains(string(main), "source-directory /etc/network/interfaces.d") {
			if len(main) == 0 {
				main = []byte("auto lo\niface lo inet loopback\n")
			}
			main = append(main, []byte("\nsource /etc/network/interfaces.d/*\n")...)
			out = append(out, pending{path: "/etc/network/interfaces", data: main, mode: 0o644, keepOwner: true})
		}
	}
	if len(dnsOrder) > 0 {
		if fi, err := os.Lstat(filepath.Join(root, "/etc/resolv.conf")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			var b strings.Builder
			for _, d := range dnsOrder {
				fmt.Fprintf(&b, "nameserver %s\n", d)
			}
			out = append(out, pending{path: "/etc/resolv.conf", data: []byte(b.String()), mode: 0o644})
		}
	}
	return out, nil
}
