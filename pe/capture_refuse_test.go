package pe

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/sequence"
)

// TestCaptureRefused: destinations that refuse the image (a server that
// forbids writes, one without WebDAV, a disk too small for it) and a
// machine with no installed system each stop the capture with an error
// that says what is wrong, leave nothing under the final name or in the
// work directory, and never write to the reference disk.
func TestCaptureRefused(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root, loop devices and nginx: set MININT_E2E=1 and run as root")
	}
	for _, tool := range []string{"sgdisk", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	for rel, data := range map[string]string{
		"etc/os-release": "ID=debian\nNAME=Debian\nVERSION_ID=12\n", "sbin/init": "x",
		"etc/machine-id": "0123456789abcdef0123456789abcdef\n", "etc/ssh/ssh_host_ed25519_key": "SECRET",
	} {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// 4 MiB that do not compress: more than the small stick holds.
	big := make([]byte, 4<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "data.bin"), big, 0o644)
	empty := filepath.Join(tmp, "empty")
	os.MkdirAll(empty, 0o755)
	ref := partitioned(t, "ref", filepath.Join(tmp, "ref.img"), []string{src}, []string{"ROOT"})
	stick := partitioned(t, "stick", filepath.Join(tmp, "stick.img"), []string{empty}, []string{"STICK"})
	// Shrink the stick's file system to 2 MiB (the partition stays).
	p := stick.Table.Partitions[0]
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "offset="+strconv.FormatInt(p.Start, 10), "-L", "STICK", stick.Path, "2M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	blank := &diskops.Disk{Name: "blank", Path: filepath.Join(tmp, "blank.img"), Kind: "loop", Transport: "loop", Size: 16 << 20}
	os.WriteFile(blank.Path, make([]byte, 16<<20), 0o644)
	before := fileSum(t, ref.Path)

	www := t.TempDir()
	dav := testnginx.Start(t, www, testnginx.Options{WebDAV: true, Extra: []string{
		"location /ro/ { limit_except GET HEAD { deny all; } }",
		"location /static/ { dav_methods off; }",
	}})
	work := filepath.Join(tmp, "work")
	os.MkdirAll(work, 0o755)
	step := func(d sequence.CaptureDestination) CaptureRequest {
		return CaptureRequest{Step: &sequence.CaptureImage{Compression: "none", Generalize: generalize.DefaultOptions(), Check: true,
			WorkDir: work, Destination: d}, Log: t.Logf}
	}
	cases := []struct {
		name  string
		disks []*diskops.Disk
		dest  sequence.CaptureDestination
		want  []string
		is    error
	}{
		{"forbidden", []*diskops.Disk{ref}, sequence.CaptureDestination{URL: dav.URL + "/ro/ref.wim"}, []string{"403", "refuses writes", "/ro/ref.wim"}, nil},
		{"no-webdav", []*diskops.Disk{ref}, sequence.CaptureDestination{URL: dav.URL + "/static/ref.wim"}, []string{"405", "WebDAV"}, nil},
		{"disk-too-small", []*diskops.Disk{ref, stick}, sequence.CaptureDestination{Disk: &diskops.Rule{Name: "stick"}, Partition: 1, Path: "/ref.wim"},
			[]string{"no space left", "destination " + stick.Path + "#1 is too small", "ref.img partition 1"}, nil},
		{"no-system", []*diskops.Disk{blank, stick}, sequence.CaptureDestination{URL: dav.URL + "/images/ref.wim"}, []string{"no installed system"}, capture.ErrNoRoot},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := captureFromDisks(context.Background(), c.disks, step(c.dest))
			if err == nil {
				t.Fatal("capture succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			if fileSum(t, ref.Path) != before {
				t.Fatal("the reference disk was written")
			}
			if left, _ := os.ReadDir(work); len(left) > 0 {
				t.Errorf("work files left: %v", left)
			}
			var served []string
			filepath.Walk(www, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					served = append(served, p)
				}
				return nil
			})
			if len(served) > 0 {
				t.Errorf("the server holds %v", served)
			}
		})
	}
	// Nothing, not even a .partial, on the stick.
	m, err := diskops.Mount(stick.Path, filepath.Join(tmp, "mnt"), diskops.MountOptions{FSType: "ext4", ReadOnly: true, Offset: p.Start, Size: p.Size})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ents, _ := os.ReadDir(filepath.Join(tmp, "mnt"))
	for _, e := range ents {
		if e.Name() != "lost+found" {
			t.Errorf("the stick holds %s after a failed capture", e.Name())
		}
	}
}
