package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/authenticode/authenticodetest"
	"github.com/minint/minint/internal/child"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/media"
	"github.com/minint/minint/qemu"
)

// The office network of TestNetbootProxyDHCP, inside namespaces the test
// makes: a bridge (the switch) with the boot server's address, a tap per
// guest, and the network's own DHCP server in a namespace of its own,
// joined by a veth pair.
const (
	nbServer = "192.0.2.1"
	nbDHCP   = "192.0.2.2"
)

// hostProgram finds a program that may live in /usr/sbin.
func hostProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/" + name); err == nil {
		return "/usr/sbin/" + name
	}
	t.Fatalf("%s not found: install %s (scripts/setup-host.sh does)", name, pkg)
	return ""
}

// daemon runs a server in a namespace until the test ends; it dies with
// the test process too (internal/child), so that nothing outlives a
// crashed test.
func daemon(t *testing.T, ns, log string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := child.Start(cmd); err != nil {
		t.Fatal(err)
	}
	out.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s (last 40 lines):\n%s", filepath.Base(args[0]), lastLines(string(b), 40))
		}
	})
}

// TestNetbootProxyDHCP is network boot in an office: an existing DHCP
// server hands out the addresses, `minint netboot`'s dnsmasq.conf runs
// beside it as proxy-DHCP + TFTP, nginx serves the tree over HTTP. A BIOS
// guest (PXELINUX), a UEFI PXE guest and a UEFI HTTP Boot guest boot the
// PE from it at the same time and all deploy the package, fetched over
// HTTP with the sequence signed by the PE's key. HTTP Boot clients are
// answered by the office DHCP server, with the tree's dnsmasq-httpboot.conf
// included: dnsmasq's proxy mode answers only PXE clients.
//
// The UEFI guests boot the tree's signed unified kernel image, which the
// firmware loads itself: Debian's signed GRUB (2.06) ignores a proxy-DHCP
// offer (it lacks the "efinet: Add DHCP proxy support" patch other
// distributions carry) and cannot find its server, so the shim chain
// needs the boot server from the network's own DHCP server instead
// (TestBootNetwork covers that chain).
func TestNetbootProxyDHCP(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dnsmasq := hostProgram(t, "dnsmasq", "dnsmasq-base")
	nginx := hostProgram(t, "nginx", "nginx")
	hostProgram(t, "ip", "iproute2")
	work := t.TempDir()

	// The tree, as the admin would make it.
	base := "http://" + nbServer + ":8080"
	seq := filepath.Join(work, "seq.yaml")
	if err := os.WriteFile(seq, []byte(sequence(base+"/minint/image/manifest.json", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(work, f.minint, "package", "sign", "--key", f.key, seq); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(work, "tree")
	db := authenticodetest.NewKey(t, "minint netboot test db")
	if _, err := run(work, f.minint, "netboot", "--pe-dir", f.peDir, "-o", tree, "--base-url", base,
		"--secure-boot-key", db.KeyFile, "--secure-boot-cert", db.CertFile,
		"--proxy-dhcp", "192.0.2.0/24", "--sequence", seq, "--package", f.pkg, "--cmdline", harnessCmdline); err != nil {
		t.Fatal(err)
	}

	// The network.
	ns := fmt.Sprintf("mnb%d", os.Getpid())
	nsDHCP := ns + "d"
	for _, n := range []string{ns, nsDHCP} {
		ipCmd(t, "netns", "add", n)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	taps := []string{fmt.Sprintf("tnb%d", os.Getpid()%100000), fmt.Sprintf("tnc%d", os.Getpid()%100000), fmt.Sprintf("tnh%d", os.Getpid()%100000)}
	for _, args := range [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", "br0", "type", "bridge"},
		{"-n", ns, "addr", "add", nbServer + "/24", "dev", "br0"},
		{"-n", ns, "link", "set", "br0", "up"},
		{"-n", ns, "tuntap", "add", taps[0], "mode", "tap"},
		{"-n", ns, "tuntap", "add", taps[1], "mode", "tap"},
		{"-n", ns, "tuntap", "add", taps[2], "mode", "tap"},
		{"-n", ns, "link", "set", taps[0], "master", "br0", "up"},
		{"-n", ns, "link", "set", taps[1], "master", "br0", "up"},
		{"-n", ns, "link", "set", taps[2], "master", "br0", "up"},
		{"-n", ns, "link", "add", "vdhcp0", "type", "veth", "peer", "name", "vdhcp1", "netns", nsDHCP},
		{"-n", ns, "link", "set", "vdhcp0", "master", "br0", "up"},
		{"-n", nsDHCP, "link", "set", "lo", "up"},
		{"-n", nsDHCP, "addr", "add", nbDHCP + "/24", "dev", "vdhcp1"},
		{"-n", nsDHCP, "link", "set", "vdhcp1", "up"},
	} {
		ipCmd(t, args...)
	}

	// The office's DHCP server, which also answers UEFI HTTP Boot clients
	// as the tree's dnsmasq-httpboot.conf says, then minint's proxy-DHCP +
	// TFTP and nginx.
	daemon(t, nsDHCP, filepath.Join(work, "dhcp.log"), dnsmasq, "--no-daemon", "--conf-file="+filepath.Join(tree, media.NetbootHTTPBoot), "--port=0",
		"--interface=vdhcp1", "--bind-interfaces", "--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(work, "leases"), "--user=root", "--pid-file", "--log-facility=-", "--log-dhcp")
	daemon(t, ns, filepath.Join(work, "proxy.log"), dnsmasq, "--no-daemon", "--conf-file="+filepath.Join(tree, "dnsmasq.conf"),
		"--interface=br0", "--bind-interfaces", "--dhcp-leasefile="+filepath.Join(work, "proxy-leases"), "--user=root",
		"--pid-file", "--log-facility=-")
	prefix := filepath.Join(work, "nginx")
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755)
	conf := testnginx.Config(prefix, nbServer+":8080", tree, nil)
	os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644)
	daemon(t, ns, filepath.Join(work, "nginx.log"), nginx, "-p", prefix+"/", "-c", filepath.Join(prefix, "nginx.conf"),
		"-e", filepath.Join(prefix, "error.log"), "-g", "daemon off;")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(prefix, "access.log"))
			t.Logf("nginx access log (last 30 lines):\n%s", lastLines(string(b), 30))
		}
	})

	// QEMU runs in the namespace, where the taps are.
	wrapper := filepath.Join(work, "qemu-in-netns")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nexec ip netns exec "+ns+" qemu-system-x86_64 \"$@\"\n"), 0o755)
	guests := []struct {
		name, firmware string
		extra          []string
	}{
		{"bios-pxe", qemu.BIOS, nil},
		{"uefi-pxe", qemu.UEFI, nil},
		// OVMF tries PXE before HTTP Boot on a NIC, and the proxy would
		// answer PXE: this guest has PXE switched off in the firmware.
		{"uefi-http", qemu.UEFI, []string{"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"}},
	}
	t.Run("guests", func(t *testing.T) {
		for i, g := range guests {
			t.Run(g.name, func(t *testing.T) {
				t.Parallel() // all at once, on one network
				disk := filepath.Join(t.TempDir(), "disk.img")
				v := startVM(t, qemu.Options{Firmware: g.firmware, Mem: "512M", BootFrom: "net", NoNet: true, Binary: wrapper, Timeout: 15 * time.Minute,
					NICs: []qemu.NIC{{Tap: taps[i], MAC: fmt.Sprintf("52:54:00:0b:00:%02x", i+1)}}, ExtraArgs: g.extra,
					Disks: []qemu.Disk{{Path: disk, Size: 512 << 20, Boot: true}}, DiskFirst: true, AllowReboot: true, WorkDir: t.TempDir()})
				start := time.Now()
				f.waitDeployed(t, v)
				t.Logf("deployed over the network in %s", time.Since(start).Round(time.Second))
				want := "partition-bios"
				if g.firmware == qemu.UEFI {
					want = "partition-uefi"
				}
				if st := stepStates(v); st[want] != "done" || st["apply-image"] != "done" {
					t.Errorf("steps %v", st)
				}
			})
		}
	})
	logs := map[string][]byte{}
	for _, name := range []string{"proxy.log", "dhcp.log", "leases", "nginx/access.log"} {
		logs[name], _ = os.ReadFile(filepath.Join(work, name))
	}
	for _, want := range []string{"lpxelinux.0", "minint.efi", "proxy"} {
		if !bytes.Contains(logs["proxy.log"], []byte(want)) {
			t.Errorf("the proxy-DHCP + TFTP log does not mention %s", want)
		}
	}
	// The HTTP Boot guest's firmware got the URL from the office DHCP
	// server and fetched the UKI from nginx (the PXE guests use TFTP).
	if !bytes.Contains(logs["dhcp.log"], []byte("HTTPClient")) || !bytes.Contains(logs["dhcp.log"], []byte(base+"/"+media.NetbootUKI)) {
		t.Errorf("the office DHCP server did not answer an HTTP Boot client with %s/%s:\n%s", base, media.NetbootUKI, lastLines(string(logs["dhcp.log"]), 40))
	}
	if !bytes.Contains(logs["nginx/access.log"], []byte("GET /"+media.NetbootUKI+" ")) {
		t.Errorf("nobody fetched %s over HTTP:\n%s", media.NetbootUKI, lastLines(string(logs["nginx/access.log"]), 30))
	}
	if n := strings.Count(string(logs["leases"]), "192.0.2.1"); n < len(guests) {
		t.Errorf("the office DHCP server gave %d leases, want all %d guests':\n%s", n, len(guests), logs["leases"])
	}
}
