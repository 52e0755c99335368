package pe

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/minint/minint/internal/child"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/wim"
)

func TestCaptureImageNeedsCaptureBackend(t *testing.T) {
	seq, err := sequence.Parse("s.yaml", []byte(head+"  - type: capture-image\n    destination: {url: http://127.0.0.1:1/x.wim}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{ctx: context.Background(), env: &Env{Backend: &struct{ Backend }{}}}
	if err := r.capture(seq.Steps[0].(*sequence.CaptureImage)); err == nil || !strings.Contains(err.Error(), "cannot capture") {
		t.Errorf("got %v", err)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// ext4Image makes an image file holding an ext4 file system over its
// whole length, filled from dir.
func ext4Image(t *testing.T, dir, img string, size string) {
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", dir, img, size).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
}

func TestCaptureToDiskAndURL(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root and loop devices: set MININT_E2E=1 and run as root")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	files := map[string]string{
		"etc/os-release":               "NAME=Debian\nID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian 12\"\n",
		"sbin/init":                    "ELF",
		"boot/vmlinuz-6.1.0-56-amd64":  "kernel",
		"etc/machine-id":               "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_ed25519_key": "SECRET",
		"root/.bash_history":           "history",
	}
	for rel, data := range files {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Incompressible data so that the WIM splits into several parts.
	big := make([]byte, 3<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "usr-data.bin"), big, 0o644)
	srcImg, dstImg := filepath.Join(tmp, "ref.img"), filepath.Join(tmp, "stick.img")
	ext4Image(t, src, srcImg, "32M")
	os.MkdirAll(filepath.Join(tmp, "empty"), 0o755)
	ext4Image(t, filepath.Join(tmp, "empty"), dstImg, "32M")
	before := fileSum(t, srcImg)

	cand := &capture.Candidate{DiskPath: srcImg, Size: 32 << 20, FS: diskops.Filesystem{Type: "ext4"}, System: &capture.System{}}
	dest := &diskops.Disk{Name: "stick", Path: dstImg, Size: 32 << 20, FS: &diskops.Filesystem{Type: "ext4"}}
	var phases []string
	req := CaptureRequest{
		Step: &sequence.CaptureImage{Compression: "none", Generalize: generalize.DefaultOptions(), Check: true, WorkDir: tmp,
			Destination: sequence.CaptureDestination{Disk: &diskops.Rule{Name: "stick"}, Path: "/images/ref.wim", SplitSize: 1 << 20}},
		Phase: func(name, unit string) (func(int64, int64), func(error)) {
			phases = append(phases, name)
			return nil, func(error) {}
		},
		Log: t.Logf,
	}
	rep, err := captureTo(context.Background(), cand, dest, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) < 2 || !strings.HasSuffix(rep.Files[0], ":/images/ref.swm") || strings.Join(phases, ",") != "capture,check" {
		t.Errorf("files %v phases %v", rep.Files, phases)
	}
	if fileSum(t, srcImg) != before {
		t.Fatal("capture wrote to the reference disk")
	}
	// Read the parts back from the destination file system.
	mnt := filepath.Join(tmp, "mnt")
	m, err := diskops.Mount(dstImg, mnt, diskops.MountOptions{FSType: "ext4", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(mnt, "images"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != len(rep.Files) || strings.Contains(strings.Join(names, " "), "partial") {
		t.Errorf("destination holds %v", names)
	}
	checkImage(t, filepath.Join(mnt, "images/ref.swm"), big)
	m.Close()

	// The same to a WebDAV server.
	n := startDAV(t)
	req.Step.Destination = sequence.CaptureDestination{URL: n.url + "/images/ref.wim"}
	phases = nil
	rep, err = captureTo(context.Background(), cand, nil, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(phases, ",") != "capture,check,upload" || rep.Upload == nil || rep.SHA256 == "" {
		t.Errorf("phases %v report %+v", phases, rep)
	}
	checkImage(t, filepath.Join(n.root, "images/ref.wim"), big)
	if left, _ := filepath.Glob(filepath.Join(tmp, "capture-*.wim")); len(left) > 0 {
		t.Errorf("work files left: %v", left)
	}
	if fileSum(t, srcImg) != before {
		t.Fatal("capture wrote to the reference disk")
	}
}

func checkImage(t *testing.T, p string, big []byte) {
	t.Helper()
	rc, err := wim.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, err := rc.Image(1)
	if err != nil {
		t.Fatal(err)
	}
	if img.Fields["MININT/OS_ID"] != "debian" || img.Fields["MININT/KERNELS"] != "6.1.0-56-amd64" || img.Name != "Debian 12" {
		t.Errorf("xml %q %v", img.Name, img.Fields)
	}
	for _, gone := range []string{"/etc/ssh/ssh_host_ed25519_key", "/root/.bash_history"} {
		if _, err := img.Lookup(gone); !errors.Is(err, wim.ErrNotFound) {
			t.Errorf("%s: %v", gone, err)
		}
	}
	f, err := img.Lookup("/etc/machine-id")
	if err != nil || f.Size != 0 {
		t.Errorf("machine-id %v %v", f, err)
	}
	f, err = img.Lookup("/usr-data.bin")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := f.Open()
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(b, big) {
		t.Errorf("data differs: %v", err)
	}
}

type davServer struct{ url, root string }

func startDAV(t *testing.T) *davServer {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("nginx not installed")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	prefix := t.TempDir()
	root := filepath.Join(prefix, "www")
	os.MkdirAll(root, 0o755)
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755)
	conf := fmt.Sprintf(`master_process off; worker_processes 1; pid %[1]s/nginx.pid; error_log %[1]s/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  server { listen %[2]s; root %[3]s; client_max_body_size 0;
    location / { dav_methods PUT DELETE MKCOL COPY MOVE; create_full_put_path on; } } }
`, prefix, addr, root)
	os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644)
	cmd := exec.Command(bin, "-c", filepath.Join(prefix, "nginx.conf"), "-p", prefix, "-g", "daemon off;")
	cmd.Stderr = os.Stderr
	if err := child.Start(cmd); err != nil { // no nginx left behind by a killed test
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return &davServer{url: "http://" + addr, root: root}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("nginx did not start")
	return nil
}

// partitioned makes a GPT image file with one ext4 partition per tree
// (16 MiB each) and returns it as a discovered disk.
func partitioned(t *testing.T, name, img string, trees []string, labels []string) *diskops.Disk {
	t.Helper()
	run := func(prog string, args ...string) {
		if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
		}
	}
	size := int64(len(trees)*16+2) << 20
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, size)
	var args []string
	for i := range trees {
		args = append(args, "-n", fmt.Sprintf("%d:%d:+16M", i+1, 2048+i*16*2048))
	}
	run("sgdisk", append(args, img)...)
	for i, dir := range trees {
		run("mkfs.ext4", "-q", "-F", "-E", fmt.Sprintf("offset=%d", int64(2048+i*16*2048)*512), "-L", labels[i], "-d", dir, img, "16M")
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := diskops.ReadTable(f, size, 512)
	if err != nil || tab == nil {
		t.Fatalf("table of %s: %v", img, err)
	}
	for i := range tab.Partitions {
		tab.Partitions[i].FS = diskops.ProbeFilesystem(f, tab.Partitions[i].Start, tab.Partitions[i].Size)
	}
	return &diskops.Disk{Name: name, Path: img, Kind: "loop", Transport: "loop", Size: size, Table: tab}
}

func TestCaptureFromDisksSeparateBoot(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root and loop devices: set MININT_E2E=1 and run as root")
	}
	for _, tool := range []string{"sgdisk", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	tmp := t.TempDir()
	write := func(root string, files map[string]string) string {
		for rel, data := range files {
			p := filepath.Join(root, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	boot := write(filepath.Join(tmp, "boot"), map[string]string{"vmlinuz-6.1.0-56-amd64": "kernel", "initrd.img-6.1.0-56-amd64": "initrd"})
	root := write(filepath.Join(tmp, "root"), map[string]string{
		"etc/os-release": "ID=debian\nNAME=Debian\nVERSION_ID=12\n", "sbin/init": "x",
		"etc/fstab":      "LABEL=ROOT / ext4 defaults 0 1\nLABEL=BOOT /boot ext4 defaults 0 2\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n",
		"etc/machine-id": "0123456789abcdef\n",
	})
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	empty := filepath.Join(tmp, "empty")
	os.MkdirAll(empty, 0o755)
	ref := partitioned(t, "ref", filepath.Join(tmp, "ref.img"), []string{boot, root}, []string{"BOOT", "ROOT"})
	stick := partitioned(t, "stick", filepath.Join(tmp, "stick.img"), []string{empty}, []string{"STICK"})
	before := fileSum(t, ref.Path)
	var logged []string
	req := CaptureRequest{
		Step: &sequence.CaptureImage{Compression: "xpress", Generalize: generalize.DefaultOptions(), Check: true, WorkDir: tmp,
			Destination: sequence.CaptureDestination{Disk: &diskops.Rule{Name: "ref"}, Partition: 1, Path: "/ref.wim"}},
		Log: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) },
	}
	disks := []*diskops.Disk{ref, stick}
	if _, err := captureFromDisks(context.Background(), disks, req); err == nil || !strings.Contains(err.Error(), "reference disk itself") {
		t.Fatalf("destination on the reference disk: %v", err)
	}
	req.Step.Destination.Disk = &diskops.Rule{Name: "stick"}
	rep, err := captureFromDisks(context.Background(), disks, req)
	if err != nil {
		t.Fatal(err)
	}
	if fileSum(t, ref.Path) != before {
		t.Fatal("capture wrote to the reference disk")
	}
	if rep.System.OSID != "debian" || strings.Join(rep.System.Kernels, " ") != "6.1.0-56-amd64" || len(rep.Files) != 1 {
		t.Errorf("report %+v", rep)
	}
	log := strings.Join(logged, "\n")
	if !strings.Contains(log, "captured with it: /boot") || !strings.Contains(log, "not captured: /boot/efi") {
		t.Errorf("log:\n%s", log)
	}
	mnt := filepath.Join(tmp, "mnt")
	p := stick.Table.Partitions[0]
	m, err := diskops.Mount(stick.Path, mnt, diskops.MountOptions{FSType: "ext4", ReadOnly: true, Offset: p.Start, Size: p.Size})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rc, err := wim.OpenReader(filepath.Join(mnt, "ref.wim"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, _ := rc.Image(1)
	if f, err := img.Lookup("/boot/vmlinuz-6.1.0-56-amd64"); err != nil || f.Size != 6 {
		t.Errorf("kernel in the image: %v %v", f, err)
	}
	if img.Fields["MININT/KERNELS"] != "6.1.0-56-amd64" {
		t.Errorf("fields %v", img.Fields)
	}
	if _, err := os.Stat(filepath.Join(mnt, "ref.wim.partial")); !os.IsNotExist(err) {
		t.Errorf("partial left: %v", err)
	}
}
