package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
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
		res, err := BuildNetboot(context.Background(), NetbootOptions{Options: testOptions(in), BaseURL: "http://10.0.2.2:8080/pe"}, dir)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(res.Files)
		want := []string{"boot.ipxe", "bootx64.efi", "grub/grub.cfg", "grubx64.efi", "initrd", "minint/images/big.bin", "minint/media.json", "minint/sequence.yaml", "mmx64.efi", "pxelinux.cfg/default", "vmlinuz"}
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
		for name, host := range map[string]string{"bootx64.efi": DefaultHostPaths.Shim, "grubx64.efi": DefaultHostPaths.GrubNet} {
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
	res, err := BuildNetboot(context.Background(), NetbootOptions{Options: o}, dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.Files)
	if want := "boot.ipxe initrd minint.efi minint/images/big.bin minint/media.json minint/sequence.yaml pxelinux.cfg/default vmlinuz"; strings.Join(res.Files, " ") != want {
		t.Errorf("own-key files %v, want %s", res.Files, want)
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
