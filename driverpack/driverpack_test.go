package driverpack

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minint/minint/kmod"
	"github.com/minint/minint/kmod/kmodtest"
)

const vermagic = "9.9.9-test SMP preempt mod_unload modversions "

// kernel makes a modules directory with an index and two real-looking
// modules, so that DB.Vermagic can read the kernel's vermagic.
func kernel(t *testing.T) *kmod.DB {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lib/modules/9.9.9-test")
	os.MkdirAll(filepath.Join(dir, "kernel"), 0o755)
	os.WriteFile(filepath.Join(dir, "kernel/crc16.ko"), kmodtest.Sign(kmodtest.Module("crc16", vermagic)), 0o644)
	os.WriteFile(filepath.Join(dir, "kernel/ixgbe.ko"), kmodtest.Sign(kmodtest.Module("ixgbe", vermagic, "alias=pci:v00008086d000010FBsv*sd*bc*sc*i*")), 0o644)
	os.WriteFile(filepath.Join(dir, kmod.DepFile), []byte("kernel/crc16.ko:\nkernel/ixgbe.ko:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, kmod.AliasFile), []byte("alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe\n"), 0o644)
	db, err := kmod.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

type packFile struct {
	path string
	data []byte
}

func makePack(t *testing.T, files ...packFile) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "acme")
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestInstall(t *testing.T) {
	db := kernel(t)
	dir := makePack(t,
		packFile{"pack.yaml", []byte("name: acme-nic\nload: [acme-core]\n")},
		packFile{"modules/acme_core.ko", kmodtest.Sign(kmodtest.Module("acme_core", vermagic, "depends=crc16"))},
		packFile{"modules/net/acme_nic.ko", kmodtest.Sign(kmodtest.Module("acme_nic", vermagic, "depends=acme_core", "alias=pci:v0000AC3Ed*sv*sd*bc02sc*i*", "firmware=acme/nic.bin"))},
		// A vendor's newer ixgbe replaces the kernel's.
		packFile{"modules/ixgbe.ko", kmodtest.Sign(kmodtest.Module("ixgbe", vermagic, "alias=pci:v00008086d000010FBsv*sd*bc*sc*i*"))},
		packFile{"firmware/acme/nic.bin", []byte("firmware")},
	)
	p, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "acme-nic" || !slices.Equal(p.Load, []string{"acme_core"}) || !slices.Equal(p.ModuleNames(), []string{"acme_core", "acme_nic", "ixgbe"}) {
		t.Errorf("pack %+v", p)
	}
	files, err := p.Install(db, Options{RequireSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, f := range files {
		dests = append(dests, f.Dest)
	}
	want := []string{
		"lib/firmware/acme/nic.bin",
		"lib/modules/9.9.9-test/extra/acme-nic/acme_core.ko",
		"lib/modules/9.9.9-test/extra/acme-nic/ixgbe.ko",
		"lib/modules/9.9.9-test/extra/acme-nic/net/acme_nic.ko",
	}
	if !slices.Equal(dests, want) {
		t.Errorf("files %v, want %v", dests, want)
	}
	if got := db.Match("pci:v0000AC3Ed00000001sv00000000sd00000000bc02sc00i00"); !slices.Equal(got, []string{"acme_nic"}) {
		t.Errorf("modalias match %v", got)
	}
	order, err := db.Resolve("acme_nic")
	if err != nil || !slices.Equal(order, []string{"crc16", "acme_core", "acme_nic"}) {
		t.Errorf("Resolve(acme_nic) = %v, %v", order, err)
	}
	if db.Path("ixgbe") != "extra/acme-nic/ixgbe.ko" {
		t.Errorf("ixgbe at %q, want the pack's", db.Path("ixgbe"))
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name  string
		files []packFile
		opts  Options
		want  error
		say   []string
	}{
		{"foreign kernel", []packFile{{"modules/acme.ko", kmodtest.Sign(kmodtest.Module("acme", "6.1.0-9-amd64 SMP preempt mod_unload modversions "))}},
			Options{}, ErrForeignKernel, []string{"acme.ko", "6.1.0-9-amd64", "9.9.9-test", "linux-headers-9.9.9-test"}},
		{"unsigned", []packFile{{"modules/acme.ko", kmodtest.Module("acme", vermagic)}},
			Options{RequireSigned: true}, ErrUnsigned, []string{"acme.ko", "no signature"}},
		{"missing dependency", []packFile{{"modules/acme.ko", kmodtest.Sign(kmodtest.Module("acme", vermagic, "depends=acme_core"))}},
			Options{}, kmod.ErrUnknownModule, []string{"acme_core", "acme"}},
		{"not a module", []packFile{{"modules/acme.ko", []byte("#!/bin/sh\n")}},
			Options{}, ErrFormat, []string{"acme.ko"}},
		{"compressed", []packFile{{"modules/acme.ko.xz", []byte("\xfd7zXZ")}},
			Options{}, ErrFormat, []string{"compressed"}},
		{"empty", []packFile{{"README", []byte("hi")}}, Options{}, ErrFormat, []string{"neither"}},
		{"bad yaml", []packFile{{"pack.yaml", []byte("nmae: x\n")}, {"firmware/x.bin", []byte("x")}}, Options{}, ErrFormat, []string{"pack.yaml"}},
		{"load unknown", []packFile{{"pack.yaml", []byte("load: [other]\n")}, {"firmware/x.bin", []byte("x")}}, Options{}, ErrFormat, []string{"other"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := kernel(t)
			before := len(db.Modules())
			dir := makePack(t, c.files...)
			p, err := Open(dir)
			if err == nil {
				_, err = p.Install(db, c.opts)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			for _, s := range c.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if len(db.Modules()) != before {
				t.Errorf("the refused pack changed the module index")
			}
		})
	}
}

func TestSymlinkOutside(t *testing.T) {
	dir := makePack(t, packFile{"firmware/ok.bin", []byte("x")})
	os.Symlink("/etc/passwd", filepath.Join(dir, "firmware/passwd"))
	if _, err := Open(dir); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "outside") {
		t.Errorf("symlink out of the pack: %v", err)
	}
}
