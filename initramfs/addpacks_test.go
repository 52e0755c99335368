package initramfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/driverpack"
	"github.com/minint/minint/kmod/kmodtest"
	"github.com/u-root/mkuimage/cpio"
)

// TestAppendDriverPacks adds a vendor's NIC driver to a built PE: the
// module, its firmware, the index that names it with its dependency on a
// module of the PE, and its load: entry; a pack for another kernel is
// refused and changes nothing.
func TestAppendDriverPacks(t *testing.T) {
	const vermagic = "9.9.9-test SMP preempt mod_unload modversions "
	dir := t.TempDir()
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	crc := kmodtest.Module("crc16", vermagic)
	for _, r := range []cpio.Record{
		cpio.Directory("lib", 0o755), cpio.Directory("lib/modules", 0o755), cpio.Directory("lib/modules/9.9.9-test", 0o755),
		cpio.Directory("lib/modules/9.9.9-test/kernel", 0o755),
		cpio.StaticFile("lib/modules/9.9.9-test/kernel/crc16.ko", string(crc), 0o644),
		cpio.StaticFile("lib/modules/9.9.9-test/modules.dep", "kernel/crc16.ko:\n", 0o644),
		cpio.StaticFile("etc/minint/modules.load", "crc16\n", 0o644),
	} {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	cpio.WriteTrailer(w)
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, buf.Bytes(), 0o644)

	pack := func(name, vm string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Join(p, "modules"), 0o755)
		os.MkdirAll(filepath.Join(p, "firmware/acme"), 0o755)
		os.WriteFile(filepath.Join(p, "modules/acme_nic.ko"), kmodtest.Module("acme_nic", vm, "depends=crc16", "alias=pci:v0000AC3Ed*sv*sd*bc02sc*i*"), 0o644)
		os.WriteFile(filepath.Join(p, "firmware/acme/nic.bin"), []byte("fw"), 0o644)
		os.WriteFile(filepath.Join(p, "pack.yaml"), []byte("name: acme\nload: [acme_nic]\n"), 0o644)
		return p
	}
	before, _ := os.ReadFile(initrd)
	if _, err := AppendDriverPacks(initrd, []string{pack("foreign", "6.1.0-other SMP mod_unload ")}, false); !errors.Is(err, driverpack.ErrForeignKernel) {
		t.Fatalf("foreign pack: %v", err)
	}
	if after, _ := os.ReadFile(initrd); !bytes.Equal(before, after) {
		t.Fatal("a refused pack changed the initramfs")
	}
	names, err := AppendDriverPacks(initrd, []string{pack("acme", vermagic)}, false)
	if err != nil || strings.Join(names, ",") != "acme" {
		t.Fatalf("%v %v", names, err)
	}
	ents, err := ReadArchive(initrd)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range ents {
		got[e.Name] = string(e.Data)
	}
	if !strings.Contains(got["lib/modules/9.9.9-test/modules.dep"], "extra/acme/acme_nic.ko: kernel/crc16.ko") ||
		!strings.Contains(got["lib/modules/9.9.9-test/modules.alias"], "acme_nic") ||
		got["lib/firmware/acme/nic.bin"] != "fw" || got["etc/minint/modules.load"] != "crc16\nacme_nic\n" ||
		len(got["lib/modules/9.9.9-test/extra/acme/acme_nic.ko"]) == 0 || got["lib/modules/9.9.9-test/kernel/crc16.ko"] != string(crc) {
		t.Errorf("after AppendDriverPacks: dep %q alias %q load %q", got["lib/modules/9.9.9-test/modules.dep"],
			got["lib/modules/9.9.9-test/modules.alias"], got["etc/minint/modules.load"])
	}
}
