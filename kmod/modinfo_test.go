package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minint/minint/kmod/kmodtest"
)

func TestReadInfo(t *testing.T) {
	ko := kmodtest.Module("vendor-nic", "9.9.9-test SMP mod_unload ",
		"depends=crc16,jbd2", "alias=pci:v00008086d0000ABCDsv*sd*bc*sc*i*",
		"firmware=vendor/b.bin", "firmware=vendor/a.bin", "softdep=pre: crc32c post: nls_utf8", "license=GPL")
	for _, signed := range []bool{false, true} {
		b := ko
		if signed {
			b = kmodtest.Sign(ko)
		}
		info, err := ReadInfo(b)
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "vendor_nic" || info.Vermagic != "9.9.9-test SMP mod_unload " || info.Signed != signed {
			t.Errorf("signed=%v: %+v", signed, info)
		}
		if !slices.Equal(info.Depends, []string{"crc16", "jbd2"}) || !slices.Equal(info.Firmware, []string{"vendor/a.bin", "vendor/b.bin"}) ||
			len(info.Aliases) != 1 || !slices.Equal(info.SoftPre, []string{"crc32c"}) || !slices.Equal(info.SoftPost, []string{"nls_utf8"}) {
			t.Errorf("signed=%v: %+v", signed, info)
		}
		if KernelRelease(info.Vermagic) != "9.9.9-test" {
			t.Errorf("KernelRelease(%q) = %q", info.Vermagic, KernelRelease(info.Vermagic))
		}
	}
}

func TestReadInfoRefuses(t *testing.T) {
	ko := kmodtest.Module("m", "9.9.9 SMP ")
	signed := kmodtest.Sign(ko)
	lying := append([]byte{}, signed...)
	lying[len(lying)-len(sigMagic)-4] = 0x7f // signature longer than the file
	for name, b := range map[string][]byte{
		"empty":          nil,
		"text":           []byte("#!/bin/sh\necho not a module\n"),
		"truncated":      ko[:100],
		"no vermagic":    kmodtest.Module("m", ""),
		"lying sig size": lying,
		"only trailer":   []byte(sigMagic),
	} {
		if _, err := ReadInfo(b); !errors.Is(err, ErrNotModule) {
			t.Errorf("%s: %v, want ErrNotModule", name, err)
		}
	}
}

// TestReadInfoHostModules reads real modules of the host's kernel (Debian's
// are signed) and checks them against the kernel's own index.
func TestReadInfoHostModules(t *testing.T) {
	dirs, _ := filepath.Glob("/lib/modules/*/modules.dep")
	var db *DB
	for _, d := range dirs {
		if x, err := Open(filepath.Dir(d)); err == nil && x.Path("qede") != "" {
			db = x
			break
		}
	}
	if db == nil {
		t.Skip("no kernel with modules under /lib/modules")
	}
	for _, m := range []string{"qede", "r8169", "ext4", "megaraid_sas"} {
		b, err := os.ReadFile(filepath.Join(db.Dir, db.Path(m)))
		if err != nil {
			t.Fatal(err)
		}
		info, err := ReadInfo(b)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if info.Name != m || KernelRelease(info.Vermagic) != filepath.Base(db.Dir) {
			t.Errorf("%s: name %q vermagic %q (dir %s)", m, info.Name, info.Vermagic, db.Dir)
		}
		for _, d := range info.Depends {
			if !slices.Contains(db.Deps(m), d) {
				t.Errorf("%s: depends= names %s, modules.dep %v does not", m, d, db.Deps(m))
			}
		}
		if !info.Signed && strings.Contains(filepath.Base(db.Dir), "amd64") {
			t.Errorf("%s: Debian's modules are signed; ReadInfo says not", m)
		}
	}
	if v, err := db.Vermagic(); err != nil || KernelRelease(v) != filepath.Base(db.Dir) {
		t.Errorf("Vermagic = %q, %v", v, err)
	}
}

func TestAddEntries(t *testing.T) {
	db := open(t)
	base := len(db.Modules())
	err := db.Add(
		Entry{Name: "vendor-core", Path: "extra/v/vendor-core.ko", Depends: []string{"jbd2"}},
		Entry{Name: "vendor_nic", Path: "extra/v/vendor_nic.ko", Depends: []string{"vendor_core"}, Aliases: []string{"pci:v00001234d*"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Match("pci:v00001234d00005678sv0sd0bc02sc00i00"); !slices.Equal(got, []string{"vendor_nic"}) {
		t.Errorf("Match = %v", got)
	}
	order, err := db.Resolve("vendor_nic")
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range []string{"jbd2", "vendor_core"} {
		if !before(order, dep, "vendor_nic") {
			t.Errorf("Resolve = %v: %s not before vendor_nic", order, dep)
		}
	}
	dep, _, _, _ := db.Subset(order)
	if !strings.Contains(dep, "extra/v/vendor_nic.ko: ") || !strings.Contains(dep, "extra/v/vendor-core.ko") {
		t.Errorf("index:\n%s", dep)
	}

	// Refused, and nothing added: a dependency nobody provides, a module
	// the kernel already has.
	n := len(db.Modules())
	if err := db.Add(Entry{Name: "x", Path: "extra/x.ko", Depends: []string{"nonexistent"}}); !errors.Is(err, ErrUnknownModule) || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("missing dependency: %v", err)
	}
	if err := db.Add(Entry{Name: "ext4", Path: "extra/ext4.ko"}); !errors.Is(err, ErrConflict) {
		t.Errorf("existing module: %v", err)
	}
	if len(db.Modules()) != n || n != base+2 {
		t.Errorf("modules %d after refusals, want %d", len(db.Modules()), base+2)
	}
}

func FuzzReadInfo(f *testing.F) {
	ko := kmodtest.Module("m", "9.9.9 SMP ", "depends=a,b", "alias=pci:v*", "firmware=x.bin")
	f.Add(ko)
	f.Add(kmodtest.Sign(ko))
	f.Add([]byte(sigMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ReadInfo(b)
		if err == nil && info.Vermagic == "" {
			t.Fatal("accepted a module without vermagic")
		}
	})
}

func TestAddReplaces(t *testing.T) {
	db := open(t)
	old := db.Match("virtio:d00000002v*")
	if len(old) == 0 {
		t.Skip("test index has no virtio_blk alias")
	}
	if err := db.Add(Entry{Name: "virtio_blk", Path: "extra/v/virtio_blk.ko", Aliases: []string{"virtio:d00000002v*"}, Replace: true}); err != nil {
		t.Fatal(err)
	}
	if db.Path("virtio_blk") != "extra/v/virtio_blk.ko" {
		t.Errorf("path %q, want the replacement's", db.Path("virtio_blk"))
	}
	if got := db.Match("virtio:d00000002v00001AF4"); !slices.Equal(got, []string{"virtio_blk"}) {
		t.Errorf("Match = %v", got)
	}
	n := 0
	for _, a := range db.aliases {
		if a.module == "virtio_blk" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d aliases for virtio_blk, want only the replacement's", n)
	}
}
