package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vlanLAN is a segment with no DHCP server on it: a network namespace the
// test makes (and removes), holding a tap device with the server's address
// and an HTTP server, joined to the guest's NIC through an 802.1Q switch
// port: the guest's frames must carry the VLAN's tag, which is taken off
// on the way into the namespace and put on on the way back.
//
// The switch port is the test's own code between QEMU's socket network
// backend (raw Ethernet frames in UDP datagrams on 127.0.0.1) and the tap,
// because the host kernel this runs on may have neither 8021q nor VLAN
// filtering in its bridge; it also lets the test count what the guest sent.
type vlanLAN struct {
	ns       string
	tap      *os.File
	qemuPort int // where QEMU listens for frames (localaddr)
	conn     *net.UDPConn
	vid      int

	tagged, untaggedIP, otherVLAN atomic.Int64

	mu      sync.Mutex
	clients []string // remote addresses of HTTP requests
}

const (
	lanServer = "192.0.2.1"
	lanGuest  = "192.0.2.10"
)

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newVLANLAN makes the namespace, its tap and server (serving dir) and
// the switch port for VLAN vid (0: untagged).
func newVLANLAN(t *testing.T, dir string, vid int) *vlanLAN {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip not found: install iproute2 (scripts/setup-host.sh does)")
	}
	l := &vlanLAN{ns: fmt.Sprintf("minint-e2e-%d", os.Getpid()), vid: vid}
	ipCmd(t, "netns", "add", l.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.ns).Run() })
	tapName := fmt.Sprintf("mtap%d", os.Getpid()%100000)

	// Create the tap and listen for HTTP from inside the namespace: both
	// stay there once made, whatever thread uses them afterwards.
	var ln net.Listener
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		ns, err := netns.GetFromName(l.ns)
		if err != nil {
			return err
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			return err
		}
		defer netns.Set(orig)
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("/dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(tapName)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		l.tap = os.NewFile(uintptr(fd), tapName)
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", lanServer + "/24", "dev", tapName}, {"link", "set", tapName, "up"}} {
			if out, err := exec.Command("ip", append([]string{"-n", l.ns}, args...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("ip %v: %v: %s", args, err, out)
			}
		}
		ln, err = net.Listen("tcp", lanServer+":8080")
		return err
	}()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.tap.Close() })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.clients = append(l.clients, r.RemoteAddr+" "+r.URL.Path)
		l.mu.Unlock()
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	l.conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.conn.Close() })
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l.qemuPort = probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close() // QEMU binds it
	go l.fromGuest()
	go l.toGuest()
	return l
}

// netdev is the QEMU backend joining a NIC to the switch port.
func (l *vlanLAN) netdev() string {
	return fmt.Sprintf("socket,udp=%s,localaddr=127.0.0.1:%d", l.conn.LocalAddr(), l.qemuPort)
}

// fromGuest takes the guest's frames off the VLAN into the namespace.
func (l *vlanLAN) fromGuest() {
	buf := make([]byte, 65536)
	for {
		n, _, err := l.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		f := buf[:n]
		if n < 14 {
			continue
		}
		etype := binary.BigEndian.Uint16(f[12:])
		switch {
		case etype == 0x8100 && n >= 18:
			if int(binary.BigEndian.Uint16(f[14:])&0x0fff) != l.vid {
				l.otherVLAN.Add(1)
				continue
			}
			l.tagged.Add(1)
			untagged := append(append([]byte{}, f[:12]...), f[16:]...)
			l.tap.Write(untagged)
		case l.vid == 0:
			l.tap.Write(f)
		default:
			if etype == 0x0800 || etype == 0x0806 {
				l.untaggedIP.Add(1) // IPv4 or ARP outside the VLAN: dropped
			}
		}
	}
}

// toGuest puts the namespace's frames onto the VLAN, to the guest.
func (l *vlanLAN) toGuest() {
	buf := make([]byte, 65536)
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: l.qemuPort}
	for {
		n, err := l.tap.Read(buf)
		if err != nil {
			return
		}
		f := buf[:n]
		if n < 14 {
			continue
		}
		if l.vid != 0 {
			tag := []byte{0x81, 0x00, byte(l.vid >> 8), byte(l.vid)}
			f = append(append(append([]byte{}, f[:12]...), tag...), f[12:]...)
		}
		l.conn.WriteToUDP(f, dst)
	}
}

// TestStaticNetworkVLAN: a segment without DHCP, reached only through
// VLAN 20. The PE gets its address, gateway, DNS and VLAN from ip=, vlan=
// and nameserver= on the kernel command line, fetches its signed sequence
// from the server in the namespace and runs it. A second PE with an
// address that does not parse stops at once, naming it, before anything
// else (no sequence runs).
func TestStaticNetworkVLAN(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	seq := filepath.Join(dir, "seq.yaml")
	os.WriteFile(seq, []byte("version: 1\nname: static-network\nsteps:\n  - {type: requirements, min-memory: 128MiB}\n"), 0o644)
	if _, err := run(dir, f.minint, "package", "sign", "--key", f.key, seq); err != nil {
		t.Fatal(err)
	}
	lan := newVLANLAN(t, dir, 20)
	kernel, initrd := filepath.Join(f.peDir, "vmlinuz"), peInitramfs(t, f)
	base := "console=ttyS0,115200 quiet minint.done=poweroff " + harnessCmdline

	t.Run("vlan", func(t *testing.T) {
		t.Parallel()
		v := startVM(t, qemu.Options{Kernel: kernel, Initrd: initrd, NoNet: true,
			NICs: []qemu.NIC{{Model: "e1000", Netdev: lan.netdev()}},
			Append: base + " vlan=eth0.20:eth0 ip=" + lanGuest + "::" + lanServer + ":255.255.255.0:pe:eth0.20:none nameserver=192.0.2.53" +
				" minint.sequence=http://" + lanServer + ":8080/seq.yaml",
			Timeout: 5 * time.Minute, WorkDir: t.TempDir()})
		if _, err := v.Verdict(context.Background()); err != nil {
			t.Fatal(err)
		}
		var lease map[string]any
		for _, e := range v.Events() {
			if e.Kind == "step" && e.Op == "network" {
				ls, _ := e.Data["leases"].([]any)
				if len(ls) == 1 {
					lease, _ = ls[0].(map[string]any)
				}
			}
		}
		if lease == nil || lease["interface"] != "eth0.20" || lease["address"] != lanGuest+"/24" || lease["method"] != "static" ||
			lease["vlan"] != float64(20) || lease["router"] != lanServer {
			t.Errorf("network: %v; want eth0.20 %s/24 static, VLAN 20, via %s", lease, lanGuest, lanServer)
		}
		if st := stepStates(v); st["requirements"] != "done" {
			t.Errorf("the sequence from the server did not run: %v", st)
		}
		lan.mu.Lock()
		clients := append([]string{}, lan.clients...)
		lan.mu.Unlock()
		var fromGuest int
		for _, c := range clients {
			if strings.HasPrefix(c, lanGuest+":") {
				fromGuest++
			}
		}
		if fromGuest < 2 {
			t.Errorf("server requests %v: want the sequence and its signature from %s", clients, lanGuest)
		}
		if lan.tagged.Load() == 0 || lan.untaggedIP.Load() != 0 || lan.otherVLAN.Load() != 0 {
			t.Errorf("frames from the guest: %d tagged VLAN 20, %d IPv4/ARP untagged, %d other VLANs; want only VLAN 20",
				lan.tagged.Load(), lan.untaggedIP.Load(), lan.otherVLAN.Load())
		}
	})

	t.Run("bad-address", func(t *testing.T) {
		t.Parallel()
		v := startVM(t, qemu.Options{Kernel: kernel, Initrd: initrd, NoNet: true,
			NICs:    []qemu.NIC{{Model: "e1000"}},
			Disks:   []qemu.Disk{{Size: 64 << 20, Serial: "UNTOUCHED"}},
			Append:  base + " ip=192.0.2.300::192.0.2.1:24::eth0:none minint.sequence=http://10.0.2.2:9/never.yaml",
			Timeout: 3 * time.Minute, WorkDir: t.TempDir()})
		_, err := v.Verdict(context.Background())
		if err == nil || !strings.Contains(err.Error(), "192.0.2.300") {
			t.Fatalf("verdict %v: want a failure naming 192.0.2.300", err)
		}
		for _, e := range v.Events() {
			if e.Kind == "sequence" || (e.Kind == "step" && (e.Op == "network" || e.Op == "modules")) {
				t.Errorf("the PE went on after the bad address: %s", e.Raw)
			}
		}
	})
}
