package capture

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minint/minint/diskops"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func debianTree(t *testing.T, dir string) {
	writeFiles(t, dir, map[string]string{
		"usr/lib/os-release":             "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"usr/lib/systemd/systemd":        "ELF",
		"boot/vmlinuz-6.1.0-56-amd64":    "k1",
		"boot/vmlinuz-6.1.0-13-amd64":    "k0",
		"boot/initrd.img-6.1.0-56-amd64": "i",
		"etc/fstab":                      "UUID=abc / ext4 defaults 0 1\n# /boot x\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n",
		"etc/machine-id":                 "0123\n",
	})
	// Absolute link, as Debian ships it: must resolve inside the root.
	if err := os.Symlink("/usr/lib/os-release", filepath.Join(dir, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/systemd", filepath.Join(dir, "sbin-init")); err != nil {
		t.Fatal(err)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	debianTree(t, dir)
	s, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &System{OSID: "debian", OSName: "Debian GNU/Linux", OSVersion: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)",
		Kernels: []string{"6.1.0-13-amd64", "6.1.0-56-amd64"}, Init: "/usr/lib/systemd/systemd",
		SeparateBoot: []BootMount{{"/boot/efi", "UUID=1234-ABCD"}}}
	s.UsedBytes = 0
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	data := t.TempDir()
	writeFiles(t, data, map[string]string{"etc/os-release": "ID=x\n"})
	if _, err := Inspect(data); !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "init") {
		t.Errorf("no init: %v", err)
	}
	if _, err := Inspect(t.TempDir()); !errors.Is(err, ErrNoRoot) {
		t.Errorf("empty: %v", err)
	}
	// An os-release link that leaves the root is not followed.
	esc := t.TempDir()
	os.MkdirAll(filepath.Join(esc, "etc"), 0o755)
	os.Symlink("../../../../../../../etc/os-release", filepath.Join(esc, "etc/os-release"))
	writeFiles(t, esc, map[string]string{"sbin/init": "x"})
	if _, err := Inspect(esc); !errors.Is(err, ErrNoRoot) {
		t.Errorf("escaping os-release link followed: %v", err)
	}
}

func sum(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// diskImage makes a GPT disk image: 1 Debian root, 2 plain data (ext4),
// 3 a second system (alpine), 4 swap-free vfat-less free space.
func diskImage(t *testing.T) (string, *diskops.Disk) {
	for _, tool := range []string{"sgdisk", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	tmp := t.TempDir()
	img := filepath.Join(tmp, "disk.img")
	deb, data, alp := filepath.Join(tmp, "deb"), filepath.Join(tmp, "data"), filepath.Join(tmp, "alp")
	debianTree(t, deb)
	writeFiles(t, data, map[string]string{"etc/os-release": "ID=decoy\n", "README": "no init here\n"})
	writeFiles(t, alp, map[string]string{"etc/os-release": "ID=alpine\nNAME=\"Alpine Linux\"\nVERSION_ID=3.20.0\n", "sbin/init": "x",
		"boot/vmlinuz-lts": "k"})
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 64<<20)
	run("sgdisk", "-n", "1:2048:+16M", "-n", "2:0:+16M", "-n", "3:0:+16M", img)
	for i, dir := range []string{deb, data, alp} {
		off := int64(2048+i*16*2048) * 512
		run("mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", off), "-L", fmt.Sprintf("p%d", i+1), "-d", dir, img, "16M")
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := diskops.ReadTable(f, 64<<20, 512)
	if err != nil || tab == nil {
		t.Fatalf("table: %v", err)
	}
	for i := range tab.Partitions {
		tab.Partitions[i].FS = diskops.ProbeFilesystem(f, tab.Partitions[i].Start, tab.Partitions[i].Size)
	}
	return img, &diskops.Disk{Name: "img", Path: img, Kind: "loop", Transport: "loop", Size: 64 << 20, Table: tab}
}

func TestFindInstalledRoots(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root and loop devices: set MININT_E2E=1 and run as root")
	}
	img, disk := diskImage(t)
	before := sum(t, img)
	var logged []string
	cands, err := FindInstalledRoots(context.Background(), []*diskops.Disk{disk},
		FindOptions{TempDir: t.TempDir(), Log: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 2 || cands[0].Partition != 1 || cands[1].Partition != 3 {
		t.Fatalf("candidates %v", cands)
	}
	if s := cands[0].System; s.OSID != "debian" || len(s.Kernels) != 2 || cands[0].FS.Label != "p1" || s.UsedBytes == 0 {
		t.Errorf("debian: %+v %+v", cands[0].FS, s)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "partition 2") {
		t.Errorf("log %q", logged)
	}
	_, err = SelectRoot(cands, RootRule{})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "Debian GNU/Linux 12") || !strings.Contains(err.Error(), "Alpine") {
		t.Errorf("ambiguous: %v", err)
	}
	c, err := SelectRoot(cands, RootRule{OS: "alpine"})
	if err != nil || c.Partition != 3 {
		t.Errorf("os rule: %v %v", c, err)
	}
	c, err = SelectRoot(cands, RootRule{Label: "p1", Disk: &diskops.Rule{Transport: "loop"}})
	if err != nil || c.Partition != 1 {
		t.Errorf("label rule: %v %v", c, err)
	}
	if _, err := SelectRoot(cands, RootRule{UUID: "nope"}); !errors.Is(err, ErrNoRoot) {
		t.Errorf("no match: %v", err)
	}
	if after := sum(t, img); after != before {
		t.Error("looking for roots wrote to the disk")
	}
	// Only the data partition: a clear error naming what was looked at.
	disk.Table.Partitions = disk.Table.Partitions[1:2]
	if _, err := FindInstalledRoots(context.Background(), []*diskops.Disk{disk}, FindOptions{}); !errors.Is(err, ErrNoRoot) ||
		!strings.Contains(err.Error(), "partition 2 (ext4)") {
		t.Errorf("no root: %v", err)
	}
}

func TestFindFilesystem(t *testing.T) {
	fs := func(typ, uuid, label string) *diskops.Filesystem {
		return &diskops.Filesystem{Type: typ, UUID: uuid, Label: label}
	}
	disks := []*diskops.Disk{
		{Name: "sda", Path: "/dev/sda", Table: &diskops.Table{Partitions: []diskops.PartitionInfo{
			{Number: 1, Device: "/dev/sda1", UUID: "aaaa-1", Name: "esp", FS: fs("vfat", "1234-ABCD", "ESP")},
			{Number: 2, Device: "/dev/sda2", UUID: "aaaa-2", Name: "boot", FS: fs("ext4", "b00t", "boot")},
			{Number: 3, Device: "/dev/sda3", FS: fs("ext4", "r00t", "dup")},
		}}},
		{Name: "sdb", Path: "/dev/sdb", Table: &diskops.Table{Partitions: []diskops.PartitionInfo{
			{Number: 1, Device: "/dev/sdb1", FS: fs("ext4", "other", "dup")},
		}}},
		{Name: "sr0", Path: "/dev/sr0", BootMedium: true, Table: &diskops.Table{Partitions: []diskops.PartitionInfo{
			{Number: 1, Device: "/dev/sr0p1", FS: fs("ext4", "B00T", "boot")},
		}}},
	}
	for src, want := range map[string]string{
		"UUID=B00T": "/dev/sda2", "LABEL=boot": "/dev/sda2", "PARTUUID=AAAA-2": "/dev/sda2",
		"PARTLABEL=esp": "/dev/sda1", "/dev/sdb1": "/dev/sdb1",
	} {
		c, err := FindFilesystem(disks, src)
		if err != nil || c.Device != want {
			t.Errorf("%s: %v %v, want %s", src, c, err, want)
		}
	}
	if _, err := FindFilesystem(disks, "LABEL=dup"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("dup: %v", err)
	}
	for _, src := range []string{"UUID=nope", "", "/dev/sr0p1"} {
		if _, err := FindFilesystem(disks, src); err == nil {
			t.Errorf("%q found", src)
		}
	}
}
