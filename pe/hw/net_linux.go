package hw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Lease is one configured interface: by DHCP (Server is the DHCP server)
// or static (Method "static").
type Lease struct {
	Interface string   `json:"interface"`
	Address   string   `json:"address"` // CIDR
	Router    string   `json:"router,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	Server    string   `json:"server,omitempty"`
	Method    string   `json:"method"` // dhcp or static
	VLAN      int      `json:"vlan,omitempty"`
}

// ErrNoLease is returned (wrapped, naming the interface) when no DHCP
// server answered in time.
var ErrNoLease = errors.New("no DHCP lease")

// DHCP brings up every Ethernet NIC, waits up to linkWait for a carrier and
// asks for a DHCPv4 lease on those with one, in parallel, giving up after
// timeout. It returns the leases it configured; NICs without link or
// without answer are logged, not errors (the PE may not need a network).
//
// It uses an ordinary UDP socket bound to the interface with the
// broadcast flag set in requests, so servers answer by broadcast and no
// raw packet socket is needed. Transaction IDs come from the kernel's
// random pool: in a fresh VM call it only once that pool is ready (a
// blocking getrandom), or DHCP libraries polling it may spin.
func DHCP(ctx context.Context, linkWait, timeout time.Duration, logf func(string, ...any)) ([]Lease, error) {
	return dhcpAll(ctx, linkWait, timeout, nil, logf)
}

// dhcpAll is DHCP on every hardware NIC but those in skip.
func dhcpAll(ctx context.Context, linkWait, timeout time.Duration, skip map[string]bool, logf func(string, ...any)) ([]Lease, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("dhcp: list interfaces: %w", err)
	}
	var (
		mu     sync.Mutex
		leases []Lease
		errs   []error
		wg     sync.WaitGroup
	)
	for _, l := range links {
		a := l.Attrs()
		if a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
			continue
		}
		if _, err := os.Stat("/sys/class/net/" + a.Name + "/device"); err != nil {
			continue // not hardware (bridge, veth …)
		}
		if skip[a.Name] {
			continue
		}
		wg.Add(1)
		go func(l netlink.Link) {
			defer wg.Done()
			name := l.Attrs().Name
			if err := netlink.LinkSetUp(l); err != nil {
				logf("dhcp: %s: link up: %v", name, err)
				return
			}
			if !waitCarrier(ctx, name, linkWait) {
				logf("dhcp: %s: no link after %s", name, linkWait)
				return
			}
			lease, err := lease4(ctx, l, timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if errors.Is(err, ErrNoLease) {
					logf("dhcp: %v", err)
				} else {
					errs = append(errs, err)
				}
				return
			}
			leases = append(leases, *lease)
		}(l)
	}
	wg.Wait()
	return leases, errors.Join(errs...)
}

func waitCarrier(ctx context.Context, name string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		b, _ := os.ReadFile("/sys/class/net/" + name + "/carrier")
		if strings.TrimSpace(string(b)) == "1" {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dhcpConn is a UDP socket on port 68 bound to one interface, able to send
// to and receive limited broadcasts before the interface has an address.
func dhcpConn(ifname string) (net.PacketConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	if err := unix.BindToDevice(fd, ifname); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: dhcpv4.ClientPort}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dhcp-"+ifname)
	defer f.Close()
	return net.FilePacketConn(f)
}

func lease4(ctx context.Context, l netlink.Link, timeout time.Duration) (*Lease, error) {
	name := l.Attrs().Name
	conn, err := dhcpConn(name)
	if err != nil {
		return nil, fmt.Errorf("dhcp: %s: socket: %w", name, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("minint")),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName),
	}
	disc, err := dhcpv4.NewDiscovery(l.Attrs().HardwareAddr, mods...)
	if err != nil {
		return nil, err
	}
	offer, err := exchange(conn, bcast, disc, dhcpv4.MessageTypeOffer, deadline)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", ErrNoLease, name, err)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		return nil, err
	}
	ack, err := exchange(conn, bcast, req, dhcpv4.MessageTypeAck, deadline)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: request: %v", ErrNoLease, name, err)
	}
	if err := dhclient.Configure4(l, ack); err != nil {
		return nil, fmt.Errorf("dhcp: %s: configure %s: %w", name, ack.YourIPAddr, err)
	}
	ones, _ := net.IPMask(ack.SubnetMask()).Size()
	lease := &Lease{Interface: name, Address: fmt.Sprintf("%s/%d", ack.YourIPAddr, ones), Method: "dhcp"}
	if r := ack.Router(); len(r) > 0 {
		lease.Router = r[0].String()
	}
	for _, d := range ack.DNS() {
		lease.DNS = append(lease.DNS, d.String())
	}
	if s := ack.ServerIdentifier(); s != nil {
		lease.Server = s.String()
	}
	return lease, nil
}

// exchange sends msg (again every second or so) until a reply of type want
// with msg's transaction ID arrives or deadline passes.
func exchange(conn net.PacketConn, to net.Addr, msg *dhcpv4.DHCPv4, want dhcpv4.MessageType, deadline time.Time) (*dhcpv4.DHCPv4, error) {
	buf := make([]byte, 1500)
	interval := time.Second
	for {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no %s within the timeout", want)
		}
		if _, err := conn.WriteTo(msg.ToBytes(), to); err != nil {
			return nil, fmt.Errorf("send %s: %w", msg.MessageType(), err)
		}
		resend := time.Now().Add(interval)
		if interval < 4*time.Second {
			interval *= 2
		}
		if resend.After(deadline) {
			resend = deadline
		}
		for {
			conn.SetReadDeadline(resend)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return nil, err
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || r.TransactionID != msg.TransactionID || r.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			if r.MessageType() == dhcpv4.MessageTypeNak {
				return nil, fmt.Errorf("server %s refused: %s", r.ServerIdentifier(), r.Message())
			}
			if r.MessageType() == want {
				return r, nil
			}
		}
	}
}
