package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestNetboot(t *testing.T) {
	needHost(t)
	in := testInputs(t)
	var sums []string
	for i := 0; i < 2; i++ {
		dir := filepath.Join(t.TempDir(), "nb")
		res, err := BuildNetboot(context.Background(), NetbootOptions{Options: testOptions(in), BaseURL: "http://10.0.2.2:8080/pe", ProxySubnet: "192.0.2.7/24", TFTPRoot: "/srv/tftp/minint"}, dir)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(res.Files)
		want := []string{"boot.ipxe", "bootx64.efi", "dnsmasq.conf", "grub/grub.cfg", "grubx64.efi", "initrd", "ldlinux.c32", "lpxelinux.0", "minint/images/big.bin", "minint/media.json", "minint/sequence.yaml", "mmx64.efi", "pxelinux.cfg/default", "undionly.kpxe", "vmlinuz"}
		if strings.Join(res.Files, " ") != strings.Join(want, " ") {
			t.Fatalf("files %v, want %v", res.Files, want)
		}
		if strings.Contains(res.Cmdline, "minint.media=") || !strings.Contains(res.Cmdline, "minint.url=http://10.0.2.2:8080/pe ") ||
			!strings.HasSuffix(res.Cmdline, "console=ttyS0,115200") {
			t.Errorf("cmdline %q", res.Cmdline)
		}
		ipxe, _ := os.ReadFile(filepath.Join(dir, "boot.ipxe"))
		for _, w := range []string{"#!ipxe\n", "kernel http://10.0.2.2:8080/pe/vmlinuz " + res.Cmdline + "\n", "initrd http://10.0.2.2:8080/pe/initrd\n", "boot\n"} {
			if !strings.Contains(string(ipxe), w) {
				t.Errorf("boot.ipxe lacks %q:\n%s", w, ipxe)
			}
		}
		pxe, _ := os.ReadFile(filepath.Join(dir, "pxelinux.cfg/default"))
		if !strings.Contains(string(pxe), "KERNEL vmlinuz\n") || !strings.Contains(string(pxe), "APPEND "+res.Cmdline+"\n") {
			t.Errorf("pxelinux.cfg/default:\n%s", pxe)
		}
		grub, _ := os.ReadFile(filepath.Join(dir, "grub/grub.cfg"))
		if !strings.Contains(string(grub), "\tlinux /vmlinuz "+res.Cmdline+"\n") || !strings.Contains(string(grub), "\tinitrd /initrd\n") {
			t.Errorf("grub/grub.cfg:\n%s", grub)
		}
		conf, _ := os.ReadFile(filepath.Join(dir, NetbootDnsmasq))
		for _, w := range []string{"\ndhcp-range=192.0.2.0,proxy,255.255.255.0\n", "\ntftp-root=/srv/tftp/minint\n", "\nport=0\n",
			"\npxe-service=x86PC,\"minint PE (BIOS)\",lpxelinux\n", "\npxe-service=X86-64_EFI,\"minint PE (UEFI)\",bootx64.efi\n"} {
			if !strings.Contains(string(conf), w) {
				t.Errorf("dnsmasq.conf lacks %q:\n%s", w, conf)
			}
		}
		// The shim chain cannot HTTP Boot (GRUB finds no configuration).
		if !strings.Contains(string(conf), "stops at its prompt") || strings.Contains(string(conf), "\ndhcp-boot") {
			t.Errorf("dnsmasq.conf does not say the shim chain cannot HTTP Boot:\n%s", conf)
		}
		dnsmasqTest(t, filepath.Join(dir, NetbootDnsmasq))
		for name, host := range map[string]string{"bootx64.efi": DefaultHostPaths.Shim, "grubx64.efi": DefaultHostPaths.GrubNet,
			"lpxelinux.0": DefaultHostPaths.LPXELinux, "undionly.kpxe": DefaultHostPaths.UndionlyKPXE} {
			a, _ := os.ReadFile(filepath.Join(dir, name))
			b, _ := os.ReadFile(host)
			if !bytes.Equal(a, b) {
				t.Errorf("%s is not %s", name, host)
			}
		}
		h := sha256.New()
		for _, n := range res.Files {
			b, _ := os.ReadFile(filepath.Join(dir, n))
			h.Write([]byte(n))
			h.Write(b)
		}
		sums = append(sums, string(h.Sum(nil)))
	}
	if sums[0] != sums[1] {
		t.Error("two netboot bundles from the same inputs differ")
	}
	// With an own key: one signed UKI carrying the netboot command line.
	key, crt, cert := testKey(t, "netboot db")
	o := testOptions(in)
	o.SecureBootKey, o.SecureBootCert = key, crt
	dir := filepath.Join(t.TempDir(), "nb")
	res, err := BuildNetboot(context.Background(), NetbootOptions{Options: o, BaseURL: "https://boot.example/pe/"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.Files)
	if want := "boot.ipxe dnsmasq-httpboot.conf dnsmasq.conf initrd ldlinux.c32 lpxelinux.0 minint.efi minint/images/big.bin minint/media.json minint/sequence.yaml pxelinux.cfg/default undionly.kpxe vmlinuz"; strings.Join(res.Files, " ") != want {
		t.Errorf("own-key files %v, want %s", res.Files, want)
	}
	if conf, _ := os.ReadFile(filepath.Join(dir, NetbootDnsmasq)); !strings.Contains(string(conf), "X86-64_EFI,\"minint PE (UEFI)\",minint.efi\n") || !strings.Contains(string(conf), "# dhcp-range=") || !strings.Contains(string(conf), "\ntftp-root="+dir+"\n") {
		t.Errorf("own-key dnsmasq.conf:\n%s", conf)
	}
	if conf, _ := os.ReadFile(filepath.Join(dir, NetbootDnsmasq)); !strings.Contains(string(conf), "\n# see dnsmasq-httpboot.conf") {
		t.Errorf("own-key dnsmasq.conf does not point at the HTTP Boot part:\n%s", conf)
	}
	hb, _ := os.ReadFile(filepath.Join(dir, NetbootHTTPBoot))
	for _, w := range []string{"\ndhcp-vendorclass=set:minint-httpclient,HTTPClient\n", "\ndhcp-match=set:minint-uefi-http-x64,option:client-arch,16\n",
		"\ntag-if=set:minint-httpboot,tag:minint-httpclient,tag:minint-uefi-http-x64\n",
		"\ndhcp-option-force=tag:minint-httpboot,60,HTTPClient\n", "\ndhcp-boot=tag:minint-httpboot,https://boot.example/pe/minint.efi\n"} {
		if !strings.Contains(string(hb), w) {
			t.Errorf("%s lacks %q:\n%s", NetbootHTTPBoot, w, hb)
		}
	}
	dnsmasqTest(t, filepath.Join(dir, NetbootDnsmasq))
	dnsmasqTest(t, filepath.Join(dir, NetbootHTTPBoot))
	if _, err := BuildNetboot(context.Background(), NetbootOptions{Options: o, BaseURL: "http://a/b,c"}, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrInput) {
		t.Errorf("base URL with a comma (dnsmasq's separator): %v", err)
	}
	if _, err := BuildNetboot(context.Background(), NetbootOptions{Options: o, ProxySubnet: "2001:db8::/64"}, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrInput) {
		t.Errorf("IPv6 proxy subnet: %v", err)
	}
	uki, _ := os.ReadFile(filepath.Join(dir, NetbootUKI))
	checkUKI(t, uki, in, res.Cmdline, cert)

	// A non-empty target is refused and left alone.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644)
	if _, err := BuildNetboot(context.Background(), NetbootOptions{Options: testOptions(in)}, dir); !errors.Is(err, ErrOutput) {
		t.Fatalf("non-empty dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "keep")); string(b) != "x" {
		t.Fatal("existing file touched")
	}
}

// dnsmasqTest checks a configuration file's syntax with dnsmasq --test.
func dnsmasqTest(t *testing.T, conf string) {
	t.Helper()
	dnsmasq, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
			t.Log("dnsmasq not installed (scripts/setup-host.sh): its syntax check skipped")
			return
		}
		dnsmasq = "/usr/sbin/dnsmasq"
	}
	if out, err := exec.Command(dnsmasq, "--test", "--conf-file="+conf).CombinedOutput(); err != nil {
		t.Errorf("dnsmasq --test %s: %v: %s", filepath.Base(conf), err, out)
	}
}
