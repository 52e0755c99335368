package stage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minint/minint/diskops"
)

// fakeDisk lays out sysRoot like the kernel for one disk vda whose image
// (dev/vda) sgdisk partitions with args (sizes in MiB from 1 MiB on);
// partitions of at least 40 MiB get a FAT32. mountinfo lines go to
// proc/self/mountinfo.
func fakeDisk(t *testing.T, parts []string, mountinfo string) string {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("sgdisk not installed (gdisk)")
	}
	root := t.TempDir()
	img := filepath.Join(root, "dev/vda")
	os.MkdirAll(filepath.Dir(img), 0o755)
	const size = 256 << 20
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, size)
	args := []string{"-o"}
	start := int64(2048)
	type part struct{ start, sectors int64 }
	var ps []part
	for i, p := range parts {
		typ, mib, _ := strings.Cut(p, ":")
		n, _ := strconv.ParseInt(mib, 10, 64)
		args = append(args, "-n", strconv.Itoa(i+1)+":"+strconv.FormatInt(start, 10)+":+"+mib+"M", "-t", strconv.Itoa(i+1)+":"+typ)
		ps = append(ps, part{start, n << 11})
		start += n << 11
	}
	if out, err := exec.Command("sgdisk", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(root, "sys/devices/virtual/block/vda")
	w := func(p, c string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("size", strconv.Itoa(size/512))
	w("dev", "254:0")
	for i, p := range ps {
		n := "vda" + strconv.Itoa(i+1)
		w(n+"/partition", strconv.Itoa(i+1))
		w(n+"/start", strconv.FormatInt(p.start, 10))
		w(n+"/size", strconv.FormatInt(p.sectors, 10))
		w(n+"/dev", "254:"+strconv.Itoa(i+1))
		if p.sectors >= 40<<11 {
			if _, err := diskops.FormatFAT32(f, p.start*512, p.sectors*512, diskops.FATOptions{Label: "P" + strconv.Itoa(i+1), VolumeID: uint32(0x1000 + i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.MkdirAll(filepath.Join(root, "sys/block"), 0o755)
	os.Symlink("../devices/virtual/block/vda", filepath.Join(root, "sys/block/vda"))
	os.MkdirAll(filepath.Join(root, "proc/self"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/self/mountinfo"), []byte(mountinfo), 0o644)
	os.WriteFile(filepath.Join(root, "proc/swaps"), []byte("Filename\tType\tSize\tUsed\tPriority\n"), 0o644)
	return root
}

func TestLocateESP(t *testing.T) {
	needRoot(t) // mounting is tried, and refused without root
	for _, c := range []struct {
		name, mountinfo string
		parts           []string
		want            []string // in the error; none: found
	}{
		{name: "none", parts: []string{"8300:8"}, want: []string{"no EFI system partition on /dev/vda"}},
		{name: "ambiguous", parts: []string{"ef00:40", "ef00:40", "8300:8"},
			want: []string{"2 EFI system partitions on /dev/vda", "/dev/vda1 (vfat P1 UUID=0000-1000)", "/dev/vda2 (vfat P2 UUID=0000-1001)", "give --esp"}},
		{name: "mounted elsewhere", parts: []string{"ef00:40", "8300:8"},
			mountinfo: "40 30 254:1 / /mnt/esp rw,relatime shared:1 - vfat /dev/vda1 rw\n"},
		{name: "mounted without loader", parts: []string{"ef00:40", "8300:8"},
			mountinfo: "40 30 254:1 / /mnt/other rw,relatime shared:1 - vfat /dev/vda1 rw\n",
			want:      []string{"mounted on /mnt/other, has no loader/"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := fakeDisk(t, c.parts, c.mountinfo)
			os.MkdirAll(filepath.Join(sys, "mnt/esp/loader"), 0o755)
			os.MkdirAll(filepath.Join(sys, "mnt/other"), 0o755)
			o := Options{SysRoot: sys}
			err := o.locateESP("vda", 0)
			if len(c.want) == 0 {
				if err != nil || o.ESP != filepath.Join(sys, "mnt/esp") {
					t.Fatalf("ESP %q, %v; want the mounted one", o.ESP, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("found ESP %q %+v, want an error", o.ESP, o.espPart)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLocateSyslinux(t *testing.T) {
	needRoot(t)
	for _, c := range []struct {
		name, mountinfo string
		parts           []string
		want            string
	}{
		{name: "no FAT", parts: []string{"8300:8"}, want: "no FAT partition on /dev/vda"},
		{name: "mounted", parts: []string{"0700:40", "8300:8"},
			mountinfo: "40 30 254:1 / /mnt/boot rw,relatime shared:1 - vfat /dev/vda1 rw\n",
			want:      "/dev/vda1 (vfat P1 UUID=0000-1000) is mounted on /mnt/boot: unmount it first"},
		{name: "FAT without syslinux", parts: []string{"0700:40", "8300:8"},
			mountinfo: "40 30 254:1 / /mnt/other rw,relatime shared:1 - vfat /dev/vda1 rw\n",
			want:      "no syslinux (syslinux/syslinux.cfg and syslinux/ldlinux.sys) on the FAT partitions of /dev/vda: /dev/vda1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := fakeDisk(t, c.parts, c.mountinfo)
			os.MkdirAll(filepath.Join(sys, "mnt/boot/syslinux"), 0o755)
			os.WriteFile(filepath.Join(sys, "mnt/boot/syslinux/syslinux.cfg"), []byte(biosCfg), 0o644)
			os.WriteFile(filepath.Join(sys, "mnt/boot/syslinux/ldlinux.sys"), make([]byte, 4096), 0o644)
			os.MkdirAll(filepath.Join(sys, "mnt/other"), 0o755)
			o := Options{SysRoot: sys}
			err := o.locateSyslinux("vda", 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
