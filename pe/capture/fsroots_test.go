package capture

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/wim"
)

// fsImage makes a whole-disk xfs or btrfs image of size holding tree (a
// reference machine installed without a partition table), probed like
// diskops.Discover does.
func fsImage(t *testing.T, fstype, tree string, size int64) (string, *diskops.Disk) {
	t.Helper()
	mkfs := "mkfs." + fstype
	if _, err := exec.LookPath(mkfs); err != nil {
		t.Skipf("%s not installed (xfsprogs, btrfs-progs)", mkfs)
	}
	img := filepath.Join(t.TempDir(), fstype+".img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, size)
	args := []string{"-L", "ref-" + fstype, img}
	if fstype == "btrfs" {
		args = append([]string{"-q", "--rootdir", tree}, args...)
	} else {
		args = append([]string{"-q"}, args...)
	}
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mkfs, err, out)
	}
	if fstype == "xfs" {
		// mkfs.xfs cannot fill it: copy the tree in through a mount.
		mnt := t.TempDir()
		m, err := diskops.Mount(img, mnt, diskops.MountOptions{FSType: "xfs"})
		if err != nil {
			t.Skipf("cannot mount xfs here: %v", err)
		}
		if out, err := exec.Command("cp", "-a", tree+"/.", mnt).CombinedOutput(); err != nil {
			m.Close()
			t.Fatalf("cp: %v\n%s", err, out)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs := diskops.ProbeFilesystem(f, 0, size)
	if fs == nil || fs.Type != fstype {
		t.Fatalf("%s image probes as %+v", fstype, fs)
	}
	return img, &diskops.Disk{Name: fstype, Path: img, Kind: "loop", Transport: "loop", Size: size, FS: fs}
}

// TestXFSAndBtrfsRoots: reference machines with xfs and btrfs roots are
// found (mounted read-only without log replay), two of them are refused
// as ambiguous with both listed, one is captured, and neither disk is
// written.
func TestXFSAndBtrfsRoots(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root and loop devices: set MININT_E2E=1 and run as root")
	}
	deb := filepath.Join(t.TempDir(), "deb")
	debianTree(t, deb)
	writeFiles(t, deb, map[string]string{"etc/ssh/ssh_host_ed25519_key": "SECRET", "srv/data.txt": "kept\n"})
	alp := filepath.Join(t.TempDir(), "alp")
	writeFiles(t, alp, map[string]string{"etc/os-release": "ID=alpine\nNAME=\"Alpine Linux\"\nVERSION_ID=3.20.0\n", "sbin/init": "x"})
	ximg, xdisk := fsImage(t, "xfs", deb, 300<<20)
	bimg, bdisk := fsImage(t, "btrfs", alp, 128<<20)
	xsum, bsum := sum(t, ximg), sum(t, bimg)

	cands, err := FindInstalledRoots(context.Background(), []*diskops.Disk{xdisk, bdisk}, FindOptions{TempDir: t.TempDir(), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 2 || cands[0].System.OSID != "debian" || cands[1].System.OSID != "alpine" {
		t.Fatalf("candidates %v", cands)
	}
	_, err = SelectRoot(cands, RootRule{})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "xfs") || !strings.Contains(err.Error(), "btrfs") ||
		!strings.Contains(err.Error(), "Alpine") || !strings.Contains(err.Error(), "Debian GNU/Linux 12") {
		t.Errorf("two systems: %v", err)
	}
	c, err := SelectRoot(cands, RootRule{Label: "ref-xfs"})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	m, err := c.MountReadOnly(mnt)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ref.wim")
	_, err = Image(t.Context(), mnt, out, Options{Compression: wim.CompressionXPRESS, Generalize: generalize.DefaultOptions(), Check: true})
	if cerr := m.Close(); cerr != nil {
		t.Error(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	rc, err := wim.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, _ := rc.Image(1)
	if f, err := img.Lookup("/srv/data.txt"); err != nil || f.Size != 5 {
		t.Errorf("/srv/data.txt in the image: %v", err)
	}
	if _, err := img.Lookup("/etc/ssh/ssh_host_ed25519_key"); !errors.Is(err, wim.ErrNotFound) {
		t.Errorf("host key captured: %v", err)
	}
	if sum(t, ximg) != xsum || sum(t, bimg) != bsum {
		t.Error("finding or capturing wrote to a reference disk")
	}
}
