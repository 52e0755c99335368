package media

import (
	"context"
	"crypto/sha256"
	"debug/pe"
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
		want := []string{"boot.ipxe", "initrd", "minint.efi", "minint/images/big.bin", "minint/media.json", "minint/sequence.yaml", "pxelinux.cfg/default", "vmlinuz"}
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
		f, err := pe.Open(filepath.Join(dir, "minint.efi"))
		if err != nil {
			t.Fatal(err)
		}
		c := f.Section(".cmdline")
		if c == nil {
			t.Fatal("UKI without .cmdline")
		}
		b, _ := c.Data()
		if string(b[:c.VirtualSize]) != res.Cmdline {
			t.Errorf("UKI cmdline %q", b[:c.VirtualSize])
		}
		f.Close()
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
	// A non-empty target is refused and left alone.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644)
	if _, err := BuildNetboot(context.Background(), NetbootOptions{Options: testOptions(in)}, dir); !errors.Is(err, ErrOutput) {
		t.Fatalf("non-empty dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "keep")); string(b) != "x" {
		t.Fatal("existing file touched")
	}
}
