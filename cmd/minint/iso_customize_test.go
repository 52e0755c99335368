package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/media"
	"github.com/minint/minint/sign"
)

// TestISOCustomizeCommand: iso --package, iso show and iso customize on a
// PE whose initramfs holds a package key, as minint build --key makes it.
func TestISOCustomizeCommand(t *testing.T) {
	for _, p := range []string{"/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/shim/shimx64.efi.signed"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("host packages missing (run scripts/setup-host.sh): %v", err)
		}
	}
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		var so, se bytes.Buffer
		if code := runMain(args, &so, &se); code != want {
			t.Fatalf("minint %s: exit %d, want %d: %s", strings.Join(args, " "), code, want, se.String())
		}
		return so.String(), se.String()
	}
	run(0, "keygen", p("k"))
	run(0, "keygen", p("other"))
	os.MkdirAll(p("pe"), 0o755)
	os.WriteFile(p("pe/vmlinuz"), bytes.Repeat([]byte("k"), 100000), 0o644)
	os.WriteFile(p("pe/initramfs.cpio"), []byte(emptyInitramfs), 0o644)
	key, _ := os.ReadFile(p("k.pub"))
	if err := initramfs.Append(p("pe/initramfs.cpio"), []initramfs.File{{Dest: "etc/minint/package.pub", Data: key}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("pe/pe.json"), []byte(`{"kernel": "vmlinuz", "initramfs": "initramfs.cpio", "id": "abc"}`), 0o644)
	os.MkdirAll(p("pkg"), 0o755)
	size := writeWIM(t, p("pkg/os.wim"))
	run(0, "package", "create", "--key", p("k.key"), p("pkg"))
	os.MkdirAll(p("foreign"), 0o755)
	writeWIM(t, p("foreign/os.wim"))
	run(0, "package", "create", "--key", p("other.key"), p("foreign"))
	os.WriteFile(p("seq.yaml"), []byte("version: 1\nname: custom\nsteps:\n  - type: run\n    shell: echo hi\n"), 0o644)
	os.WriteFile(p("bad.yaml"), []byte("version: 1\nsteps:\n  - type: nosuchstep\n"), 0o644)

	// --package replaces three --add SRC:image/… flags.
	run(0, "iso", "--pe-dir", p("pe"), "-o", p("a.iso"), "-q", "--package", p("pkg"))
	out, _ := run(0, "iso", "show", p("a.iso"))
	for _, want := range []string{"sequence:    none", "/minint/image: ", "image os.wim, 1 files, signed with the PE's key", fmt.Sprintf("/minint/image/os.wim (%d bytes)", size)} {
		if !strings.Contains(out, want) {
			t.Errorf("iso show lacks %q:\n%s", want, out)
		}
	}
	_, stderr := run(1, "iso", "--pe-dir", p("pe"), "-o", p("f.iso"), "--package", p("foreign"))
	if !strings.Contains(stderr, "signature") {
		t.Errorf("foreign package: %s", stderr)
	}

	run(0, "iso", "customize", p("a.iso"), "-o", p("b.iso"), "--sequence", p("seq.yaml"),
		"--ip", "192.0.2.10::192.0.2.1:24::eth0:none", "--nameserver", "192.0.2.53", "--cmdline", "minint.failwait=5")
	out, _ = run(0, "iso", "show", "--json", p("b.iso"))
	var m struct {
		Cmdline        string `json:"cmdline"`
		CustomizedFrom string `json:"customized_from"`
		Sequence       struct {
			Name  string
			Steps int
		}
		Packages []struct {
			Signed bool `json:"signed_by_pe_key"`
		}
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(m.Cmdline, "minint.failwait=5 ip=192.0.2.10::192.0.2.1:24::eth0:none nameserver=192.0.2.53 console=ttyS0") ||
		m.Sequence.Name != "custom" || m.Sequence.Steps != 1 || len(m.Packages) != 1 || !m.Packages[0].Signed || m.CustomizedFrom == "" {
		t.Errorf("customized: %+v", m)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"iso", "customize", p("a.iso"), "-o", p("c.iso"), "--sequence", p("bad.yaml")}, 1, "bad.yaml:3"},
		{[]string{"iso", "customize", p("a.iso"), "-o", p("c.iso"), "--package", p("foreign")}, 1, "signature"},
		{[]string{"iso", "customize", p("a.iso"), "-o", p("c.iso"), "--ip", "eth0:static"}, 1, "network"},
		{[]string{"iso", "customize", p("a.iso"), "--sequence", p("seq.yaml")}, 2, "-o OUT.iso"},
		{[]string{"iso", "customize", p("seq.yaml"), "-o", p("c.iso")}, 1, "not a minint hybrid ISO"},
		{[]string{"iso", "show", p("seq.yaml")}, 1, "not a minint hybrid ISO"},
	} {
		var so, se bytes.Buffer
		if code := runMain(c.args, &so, &se); code != c.code || !strings.Contains(se.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args[1:], code, se.String(), c.code, c.want)
		}
	}
	if _, err := os.Stat(p("c.iso")); err == nil {
		t.Error("a refused customization wrote an ISO")
	}
	_, stderr = run(1, "iso", "--pe-dir", p("pe"), "-o", p("d.iso"), "--sequence", p("bad.yaml"))
	if !strings.Contains(stderr, "bad.yaml:3") {
		t.Errorf("iso with an invalid sequence: %s", stderr)
	}

	// The network-boot tree: the sequence comes over HTTP with its
	// signature by the PE's key.
	_, stderr = run(1, "netboot", "--pe-dir", p("pe"), "-o", p("nb0"), "--sequence", p("seq.yaml"), "--base-url", "http://192.0.2.1/pe")
	if !strings.Contains(stderr, "minint package sign") {
		t.Errorf("unsigned network sequence: %s", stderr)
	}
	run(0, "package", "sign", "--key", p("other.key"), p("seq.yaml"))
	_, stderr = run(1, "netboot", "--pe-dir", p("pe"), "-o", p("nb0"), "--sequence", p("seq.yaml"), "--base-url", "http://192.0.2.1/pe")
	if !strings.Contains(stderr, "the PE would refuse it") {
		t.Errorf("sequence signed by another key: %s", stderr)
	}
	run(2, "netboot", "--pe-dir", p("pe"), "-o", p("nb0"), "--sequence", p("seq.yaml"))
	run(0, "package", "sign", "--key", p("k.key"), p("seq.yaml"))
	run(0, "netboot", "--pe-dir", p("pe"), "-o", p("nb"), "-q", "--sequence", p("seq.yaml"), "--base-url", "http://192.0.2.1/pe",
		"--package", p("pkg"), "--proxy-dhcp", "192.0.2.0/24")
	for _, f := range []string{"lpxelinux.0", "bootx64.efi", "boot.ipxe", "minint/seq.yaml", "minint/seq.yaml.sig", "minint/image/os.wim", "minint/image/manifest.json.sig"} {
		if _, err := os.Stat(p("nb/" + f)); err != nil {
			t.Errorf("netboot tree: %v", err)
		}
	}
	// iso show reads the tree as well: the sequence the command line
	// names, checked for the PE's key as the PE will check it.
	showTree := func(wants ...string) {
		t.Helper()
		out, _ := run(0, "iso", "show", p("nb"))
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("iso show of the tree lacks %q:\n%s", want, out)
			}
		}
	}
	showTree("sequence:    custom (1 steps, sha256 ", ") at http://192.0.2.1/pe/minint/seq.yaml",
		"minint.sequence=http://192.0.2.1/pe/minint/seq.yaml", "/minint/image: ", "image os.wim, 1 files, signed with the PE's key",
		fmt.Sprintf("/minint/image/os.wim (%d bytes)", size))
	if _, stderr := run(1, "iso", "show", p("pkg")); !strings.Contains(stderr, "not a minint network-boot tree") {
		t.Errorf("iso show of a directory that is no tree: %s", stderr)
	}
	// ... and customized in place: another key, then only a sequence
	// signed with it is taken.
	run(0, "netboot", "customize", p("nb"), "-q", "--key", p("other.pub"), "--ip", "eth0:dhcp")
	showTree("sequence:    INVALID at http://192.0.2.1/pe/minint/seq.yaml: ", "the PE would refuse it",
		"/minint/image: NOT USABLE: ", "ip=eth0:dhcp")
	otherPub, _ := os.ReadFile(p("other.pub"))
	want, _ := sign.ParsePublicKey(otherPub)
	if pk, err := media.PEKey(p("nb/initrd")); err != nil || !pk.Equal(want) {
		t.Errorf("netboot customize --key: the tree's PE trusts %x (%v)", pk, err)
	}
	if _, stderr := run(1, "netboot", "customize", p("nb"), "--sequence", p("seq.yaml")); !strings.Contains(stderr, "the PE trusts key") {
		t.Errorf("sequence signed by the old key: %s", stderr)
	}
	run(0, "package", "sign", "--key", p("other.key"), p("seq.yaml"))
	run(0, "netboot", "customize", p("nb"), "-q", "--sequence", p("seq.yaml"))
	showTree("sequence:    custom (1 steps, sha256 ")
	for _, f := range []string{"nb/boot.ipxe", "nb/pxelinux.cfg/default", "nb/grub/grub.cfg"} {
		if b, _ := os.ReadFile(p(f)); !strings.Contains(string(b), "ip=eth0:dhcp") || strings.Count(string(b), "minint.sequence=") != 1 {
			t.Errorf("%s after netboot customize:\n%s", f, b)
		}
	}
	ipxe, _ := os.ReadFile(p("nb/boot.ipxe"))
	conf, _ := os.ReadFile(p("nb/dnsmasq.conf"))
	if !strings.Contains(string(ipxe), "minint.sequence=http://192.0.2.1/pe/minint/seq.yaml") || !strings.Contains(string(conf), "dhcp-range=192.0.2.0,proxy") {
		t.Errorf("boot.ipxe:\n%s\ndnsmasq.conf:\n%s", ipxe, conf)
	}
}
