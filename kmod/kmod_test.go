package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const testDir = "testdata/lib/modules/9.9.9-test"

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(testDir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// before reports whether a comes before b in order (both present).
func before(order []string, a, b string) bool {
	ia, ib := slices.Index(order, a), slices.Index(order, b)
	return ia >= 0 && ib >= 0 && ia < ib
}

func TestResolveDependencyOrder(t *testing.T) {
	db := open(t)
	got, err := db.Resolve("ext4")
	if err != nil {
		t.Fatal(err)
	}
	// ext4 needs crc16, mbcache, jbd2 (modules.dep) and, before jbd2 and
	// ext4, every module providing crypto-crc32c (softdep).
	want := []string{"crc16", "mbcache", "jbd2", "ext4", "crc32c_generic", "crc32c_intel"}
	if len(got) != len(want) {
		t.Fatalf("Resolve(ext4) = %v, want the modules %v", got, want)
	}
	for _, m := range want {
		if !slices.Contains(got, m) {
			t.Errorf("Resolve(ext4) = %v: %s missing", got, m)
		}
	}
	for _, dep := range []string{"crc16", "mbcache", "jbd2", "crc32c_generic", "crc32c_intel"} {
		if !before(got, dep, "ext4") {
			t.Errorf("Resolve(ext4) = %v: %s not before ext4", got, dep)
		}
	}
	if !before(got, "crc32c_generic", "jbd2") {
		t.Errorf("Resolve(ext4) = %v: jbd2's softdep crc32c_generic not before jbd2", got)
	}
}

func TestResolveSharedDepsOnce(t *testing.T) {
	db := open(t)
	got, err := db.Resolve("sr_mod", "isofs", "virtio_blk", "virtio_pci")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range got {
		seen[m]++
		if seen[m] > 1 {
			t.Errorf("%s listed twice in %v", m, got)
		}
	}
	for _, p := range [][2]string{{"scsi_common", "scsi_mod"}, {"scsi_mod", "sr_mod"}, {"cdrom", "sr_mod"}, {"cdrom", "isofs"}, {"virtio", "virtio_blk"}, {"virtio", "virtio_pci"}} {
		if !before(got, p[0], p[1]) {
			t.Errorf("%v: %s must come before %s", got, p[0], p[1])
		}
	}
}

func TestAliasesAndNames(t *testing.T) {
	db := open(t)
	for _, c := range []struct {
		name string
		want []string
	}{
		{"iso9660", []string{"cdrom", "isofs"}},
		{"usb-storage", []string{"usbcore", "usb_storage"}},
		{"usb_storage", []string{"usbcore", "usb_storage"}},
		{"xhci-pci", []string{"usbcore", "xhci_hcd", "xhci_pci"}}, // .ko.xz paths
		{"ext3", nil},
	} {
		got, err := db.Resolve(c.name)
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.name, err)
			continue
		}
		if c.want != nil && !reflect.DeepEqual(got, c.want) {
			t.Errorf("Resolve(%q) = %v, want %v", c.name, got, c.want)
		}
		if c.want == nil && !slices.Contains(got, "ext4") {
			t.Errorf("Resolve(%q) = %v, want ext4 in it", c.name, got)
		}
	}
	if got := db.Path("xhci-pci"); got != "kernel/drivers/usb/host/xhci-pci.ko.xz" {
		t.Errorf("Path(xhci-pci) = %q", got)
	}
}

func TestBuiltinIsNotLoaded(t *testing.T) {
	db := open(t)
	got, err := db.Resolve("nls_base")
	if err != nil {
		t.Fatalf("built-in module: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("Resolve(built-in nls_base) = %v, want nothing to load", got)
	}
	if !db.Builtin("nls-base") {
		t.Error("Builtin(nls-base) = false")
	}
}

func TestUnknownModuleNamed(t *testing.T) {
	db := open(t)
	_, err := db.Resolve("ext4", "no_such_driver")
	if !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("err = %v, want ErrUnknownModule", err)
	}
	if !strings.Contains(err.Error(), `"no_such_driver"`) {
		t.Errorf("error %q does not name the module", err)
	}
}

func TestMatchModalias(t *testing.T) {
	db := open(t)
	for _, c := range []struct {
		modalias string
		want     []string
	}{
		{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", []string{"virtio_pci"}},
		{"virtio:d00000002v00001AF4", []string{"virtio_blk"}},
		{"scsi:t-0x05", []string{"sr_mod"}},
		{"usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", []string{"usb_storage"}},
		{"pci:v00008086d000024CDsv00001AF4sd00001100bc0Csc03i30", []string{"xhci_pci"}},
		{"pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80", nil},
		{"acpi:PNP0A08:", []string{"test_class_alias"}},
		{"acpi:PNP0A03:", nil}, // [!3]
		{"acpi:PNP0D08:", nil}, // [A-C]
	} {
		if got := db.Match(c.modalias); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Match(%q) = %v, want %v", c.modalias, got, c.want)
		}
	}
}

func TestFnmatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"a*b", "ab", true},
		{"a*b", "axxb", true},
		{"a*b", "axxbc", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[]]", "]", true},
		{"a/b*", "a/bc", true},
		{"[", "[", true},
	} {
		if got := fnmatch(c.p, c.s); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func TestSubsetRoundTrip(t *testing.T) {
	db := open(t)
	mods, err := db.Resolve("ext4", "sr_mod", "iso9660")
	if err != nil {
		t.Fatal(err)
	}
	dep, alias, soft, builtin := db.Subset(mods)
	dir := t.TempDir()
	for name, data := range map[string]string{DepFile: dep, AliasFile: alias, SoftdepFile: soft, BuiltinFile: builtin} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := Open(dir)
	if err != nil {
		t.Fatalf("subset index does not parse: %v\n%s", err, dep)
	}
	again, err := sub.Resolve("ext4", "sr_mod", "iso9660")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, mods) {
		t.Errorf("subset resolves to %v, original to %v", again, mods)
	}
	if got := sub.Match("scsi:t-0x05"); !reflect.DeepEqual(got, []string{"sr_mod"}) {
		t.Errorf("subset Match(scsi:t-0x05) = %v", got)
	}
	if got := sub.Match("virtio:d00000002v00001AF4"); got != nil {
		t.Errorf("subset matches virtio_blk, which it does not carry: %v", got)
	}
	if !sub.Builtin("nls_base") {
		t.Error("subset lost the built-in list")
	}
}

func TestMalformed(t *testing.T) {
	_, err := parse(strings.NewReader("kernel/a.ko: kernel/b.ko\nthis line is wrong\n"), nil, nil, nil)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want ErrFormat naming line 2", err)
	}
	_, err = parse(strings.NewReader(""), strings.NewReader("alias only-two\n"), nil, nil)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), AliasFile) {
		t.Errorf("err = %v, want ErrFormat naming %s", err, AliasFile)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), DepFile) {
		t.Errorf("Open(empty dir) = %v, want an error naming %s", err, DepFile)
	}
}

// TestHostKernel resolves the real index of the installed kernel(s).
func TestHostKernel(t *testing.T) {
	dirs, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(dirs) == 0 {
		t.Skip("no kernel modules installed on this host (/lib/modules/*/modules.dep)")
	}
	db, err := Open(filepath.Dir(dirs[len(dirs)-1]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Resolve("ext4", "vfat", "iso9660", "usb-storage", "virtio_blk", "sd_mod", "sr_mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{"jbd2", "ext4"}, {"mbcache", "ext4"}, {"fat", "vfat"}, {"cdrom", "isofs"}, {"scsi_mod", "sd_mod"}, {"usbcore", "usb_storage"}} {
		if slices.Contains(got, p[1]) && !before(got, p[0], p[1]) {
			t.Errorf("%s not before %s in %v", p[0], p[1], got)
		}
	}
	for _, m := range got {
		if _, err := os.Stat(filepath.Join(db.Dir, db.Path(m))); err != nil {
			t.Errorf("resolved %s but its file is missing: %v", m, err)
		}
	}
	if _, err := db.Resolve("definitely_not_a_module"); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("unknown module: err = %v", err)
	}
	// The virtio block device's modalias as QEMU presents it.
	if m := db.Match("virtio:d00000002v00001AF4"); !slices.Contains(m, "virtio_blk") {
		t.Errorf("Match(virtio block modalias) = %v, want virtio_blk", m)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{DepFile, AliasFile, SoftdepFile} {
		b, _ := os.ReadFile(filepath.Join(testDir, name))
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		db, err := parse(strings.NewReader(s), strings.NewReader(s), strings.NewReader(s), nil)
		if err != nil {
			return
		}
		for _, m := range db.Modules() {
			if _, err := db.Resolve(m); err != nil {
				t.Errorf("Resolve(%q) of a listed module: %v", m, err)
			}
		}
		db.Match(s)
	})
}
