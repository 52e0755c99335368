package diskops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fakeRootUUID = "deadbeef-0102-0304-0506-0708090a0b0c" // gptWithExt4's

func TestFindFilesystem(t *testing.T) {
	root := fakeRoot(t, "", nvme, sata, virtio)
	d, p, err := FindFilesystem(context.Background(), DiscoverOptions{Root: root}, strings.ToUpper(fakeRootUUID))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "nvme0n1" || p.Number != 2 || p.FS.Type != "ext4" {
		t.Errorf("found %s partition %d %+v", d.Name, p.Number, p.FS)
	}
	esp, err := FindESP(d)
	if err != nil {
		t.Fatal(err)
	}
	if esp.Number != 1 || esp.TypeName != "esp" {
		t.Errorf("ESP = %+v", esp)
	}

	_, _, err = FindFilesystem(context.Background(), DiscoverOptions{Root: root}, "0000aaaa-0102-0304-0506-0708090a0b0c")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fakeRootUUID) || !strings.Contains(err.Error(), "0000aaaa") {
		t.Errorf("unknown UUID: %v; want ErrNotFound listing what was seen", err)
	}
	if _, _, err := FindFilesystem(context.Background(), DiscoverOptions{Root: root}, " "); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty UUID: %v", err)
	}
	// The PE's own medium is never the staged root.
	_, _, err = FindFilesystem(context.Background(), DiscoverOptions{Root: root, BootDevices: []string{"nvme0n1"}}, fakeRootUUID)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("UUID on the boot medium: %v, want ErrNotFound", err)
	}
}

func TestFindFilesystemCloned(t *testing.T) {
	twin := virtio
	twin.image = gptWithExt4
	root := fakeRoot(t, "", nvme, twin)
	_, _, err := FindFilesystem(context.Background(), DiscoverOptions{Root: root}, fakeRootUUID)
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "nvme0n1") || !strings.Contains(err.Error(), "vda") {
		t.Errorf("two disks with the UUID: %v; want ErrAmbiguous naming both", err)
	}
}

func TestFindESPNoneOrMany(t *testing.T) {
	d := &Disk{Path: "/dev/vda", Table: &Table{Type: "gpt", Partitions: []PartitionInfo{{Number: 1, TypeName: "linux"}}}}
	if _, err := FindESP(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("no ESP: %v", err)
	}
	d.Table.Partitions = append(d.Table.Partitions, PartitionInfo{Number: 2, TypeName: "esp"}, PartitionInfo{Number: 3, TypeName: "esp", Device: "/dev/vda3"})
	if _, err := FindESP(d); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "/dev/vda3") {
		t.Errorf("two ESPs: %v", err)
	}
}

func TestSetLoaderDefault(t *testing.T) {
	esp := t.TempDir()
	writeFile(t, filepath.Join(esp, "loader/entries/minint.conf"), "title old\n")
	if _, err := SetLoaderDefault(esp, "minint-pe.conf"); err == nil {
		t.Fatal("a default naming a missing entry was accepted")
	}
	if _, err := os.Stat(filepath.Join(esp, "loader/loader.conf")); !os.IsNotExist(err) {
		t.Error("the refused default still wrote loader.conf")
	}
	writeFile(t, filepath.Join(esp, "loader/entries/minint-pe.conf"), "title PE\n")
	writeFile(t, filepath.Join(esp, "loader/loader.conf"), "timeout 3\ndefault   minint.conf\neditor no\n")
	old, err := SetLoaderDefault(esp, "minint-pe.conf")
	if err != nil {
		t.Fatal(err)
	}
	if old != "minint.conf" {
		t.Errorf("old default %q", old)
	}
	b, _ := os.ReadFile(filepath.Join(esp, "loader/loader.conf"))
	if string(b) != "default minint-pe.conf\ntimeout 3\neditor no\n" {
		t.Errorf("loader.conf:\n%s", b)
	}
	if ents, _ := os.ReadDir(filepath.Join(esp, "loader")); len(ents) != 2 {
		t.Errorf("leftover temporary files: %v", ents)
	}
	// Idempotent: a redo after a power cut sees its own default.
	if old, err := SetLoaderDefault(esp, "minint-pe.conf"); err != nil || old != "minint-pe.conf" {
		t.Errorf("again: %q, %v", old, err)
	}
	for _, bad := range []string{"", "../x.conf", "a\nb"} {
		if _, err := SetLoaderDefault(esp, bad); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("entry %q: %v", bad, err)
		}
	}
}

func TestRemoveLoaderEntry(t *testing.T) {
	esp := t.TempDir()
	writeFile(t, filepath.Join(esp, "loader/entries/minint-pe.conf"), "title PE\n")
	writeFile(t, filepath.Join(esp, "loader/entries/minint.conf"), "title new\n")
	writeFile(t, filepath.Join(esp, "minint-pe/vmlinuz"), "k")
	writeFile(t, filepath.Join(esp, "minint/6.1/vmlinuz"), "k")
	if err := RemoveLoaderEntry(esp, "minint-pe.conf", "minint-pe"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"loader/entries/minint-pe.conf": false, "minint-pe": false, "loader/entries/minint.conf": true, "minint/6.1/vmlinuz": true} {
		if _, err := os.Stat(filepath.Join(esp, p)); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
	// Already gone: fine (a redo).
	if err := RemoveLoaderEntry(esp, "minint-pe.conf", "minint-pe"); err != nil {
		t.Errorf("redo: %v", err)
	}
	for _, d := range []string{"/", "..", "../x", "."} {
		if err := RemoveLoaderEntry(esp, "minint-pe.conf", d); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("dir %q: %v", d, err)
		}
	}
}

func TestLoaderDefaultVariable(t *testing.T) {
	v := EFIVars{Dir: t.TempDir()}
	if got, err := v.LoaderDefault(); err != nil || got != "" {
		t.Errorf("unset: %q, %v", got, err)
	}
	if err := v.SetLoaderDefault("minint-pe.conf"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(v.Dir, "LoaderEntryDefault-"+systemdBootGUID))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := decodeUTF16z(raw[4:]); s != "minint-pe.conf" || raw[0] != efiAttrNVBSRT {
		t.Errorf("variable % x", raw)
	}
	if got, err := v.LoaderDefault(); err != nil || got != "minint-pe.conf" {
		t.Errorf("read back %q, %v", got, err)
	}
	if err := v.ClearLoaderDefault(); err != nil {
		t.Fatal(err)
	}
	if got, err := v.LoaderDefault(); err != nil || got != "" {
		t.Errorf("after clear: %q, %v", got, err)
	}
	if err := v.ClearLoaderDefault(); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
}

func TestFindBootPartition(t *testing.T) {
	d := &Disk{Path: "/dev/sda", Table: &Table{Type: "mbr", Partitions: []PartitionInfo{
		{Number: 1, FS: &Filesystem{Type: "vfat"}}, {Number: 2, FS: &Filesystem{Type: "ext4"}}}}}
	p, err := FindBootPartition(d)
	if err != nil || p.Number != 1 {
		t.Fatalf("boot partition %+v, %v", p, err)
	}
	d.Table.Partitions = append(d.Table.Partitions, PartitionInfo{Number: 3, FS: &Filesystem{Type: "vfat"}})
	if _, err := FindBootPartition(d); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("two FAT partitions: %v", err)
	}
	d.Table.Partitions = d.Table.Partitions[1:2]
	if _, err := FindBootPartition(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("no FAT partition: %v", err)
	}
}

func TestSetSyslinuxDefault(t *testing.T) {
	dir := t.TempDir()
	cfg := "DEFAULT minint\nPROMPT 0\nTIMEOUT 0\n\nLABEL minint\n  LINUX /minint/6.1/vmlinuz\n"
	writeFile(t, filepath.Join(dir, "syslinux/syslinux.cfg"), cfg)
	if _, err := SetSyslinuxDefault(dir, "minint-pe"); !errors.Is(err, ErrNotFound) {
		t.Errorf("undefined label: %v", err)
	}
	writeFile(t, filepath.Join(dir, "syslinux/syslinux.cfg"), cfg+"\nLABEL minint-pe\n  LINUX /minint-pe/vmlinuz\n")
	old, err := SetSyslinuxDefault(dir, "minint-pe")
	if err != nil || old != "minint" {
		t.Fatalf("old %q, %v", old, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "syslinux/syslinux.cfg"))
	if want := "DEFAULT minint-pe\nPROMPT 0\nTIMEOUT 0\n\nLABEL minint\n  LINUX /minint/6.1/vmlinuz\n\nLABEL minint-pe\n  LINUX /minint-pe/vmlinuz\n"; string(b) != want {
		t.Errorf("syslinux.cfg:\n%s\nwant\n%s", b, want)
	}
}
