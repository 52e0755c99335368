package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/minint/minint/internal/testnginx"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
)

type fixture struct {
	repo, cache, work string
	minint            string // the CLI under test
	rootfs, tree      string // sample OS root and its tree digest
	pkg               string // sample.wim, manifest.json, manifest.json.sig
	key, pub          string // the key the PE trusts
	otherKey          string // a key it does not trust
	peDir             string // minint build --key output
}

var (
	fxOnce sync.Once
	fx     *fixture
	fxErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fx != nil {
		os.RemoveAll(fx.work)
	}
	os.Exit(code)
}

// setup builds the shared fixture once per test binary.
func setup(t *testing.T) *fixture {
	t.Helper()
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("deploys in QEMU guests: set MININT_E2E=1 (make test does)")
	}
	fxOnce.Do(func() { fx, fxErr = build(t) })
	if fxErr != nil {
		t.Fatal(fxErr)
	}
	return fx
}

func build(t *testing.T) (*fixture, error) {
	wd, _ := os.Getwd()
	f := &fixture{repo: filepath.Dir(wd)}
	f.cache = os.Getenv("MININT_CACHE")
	if f.cache == "" {
		f.cache = filepath.Join(f.repo, "out", "cache")
	}
	var err error
	if f.work, err = os.MkdirTemp("", "minint-e2e-*"); err != nil {
		return nil, err
	}
	start := time.Now()
	f.minint = filepath.Join(f.work, "minint")
	if _, err := run(f.repo, "go", "build", "-o", f.minint, "./cmd/minint"); err != nil {
		return nil, err
	}

	if f.rootfs, f.tree, err = f.sampleRoot(t, "A"); err != nil {
		return nil, err
	}

	f.key, f.pub = filepath.Join(f.work, "test.key"), filepath.Join(f.work, "test.pub")
	f.otherKey = filepath.Join(f.work, "other.key")
	if _, err := run(f.work, f.minint, "keygen", filepath.Join(f.work, "test")); err != nil {
		return nil, err
	}
	if _, err := run(f.work, f.minint, "keygen", filepath.Join(f.work, "other")); err != nil {
		return nil, err
	}
	f.pkg = filepath.Join(f.work, "pkg")
	if err := f.packageRoot(f.rootfs, f.pkg); err != nil {
		return nil, err
	}
	t.Logf("fixture: captured and packaged in %s", time.Since(start).Round(time.Second))
	f.peDir = filepath.Join(f.work, "pe")
	if _, err := run(f.repo, f.minint, "build", "--key", f.pub, "-o", f.peDir, "--cache", f.cache); err != nil {
		return nil, err
	}
	t.Logf("fixture: ready in %s", time.Since(start).Round(time.Second))
	return f, nil
}

// sampleRoot builds (or takes from the cache) the sample OS root with
// make-sample-rootfs.sh's arguments, and returns it with its tree digest.
// The root depends only on the script, the arguments and the host kernel.
func (f *fixture) sampleRoot(t *testing.T, args ...string) (root, tree string, err error) {
	script, err := os.ReadFile(filepath.Join(f.repo, "scripts/make-sample-rootfs.sh"))
	if err != nil {
		return "", "", err
	}
	kver, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	vmlinuz, _ := filepath.Glob("/boot/vmlinuz-*")
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\n%s\n%v\n%v", script, kver, vmlinuz, args)))
	root = filepath.Join(f.cache, "e2e", "rootfs-"+hex.EncodeToString(h[:8]))
	if _, err := os.Stat(filepath.Join(root, "etc/minint-sample/tree-digest.sh")); err != nil {
		tmp := root + ".tmp"
		os.RemoveAll(tmp)
		if _, err := run(f.repo, "bash", append([]string{"scripts/make-sample-rootfs.sh", tmp}, args...)...); err != nil {
			return "", "", err
		}
		if err := os.Rename(tmp, root); err != nil {
			return "", "", err
		}
	}
	out, err := run(f.repo, filepath.Join(root, "etc/minint-sample/tree-digest.sh"), root)
	if err != nil {
		return "", "", err
	}
	tree = strings.TrimSpace(out)
	t.Logf("fixture: sample root %s %v (tree %s…)", root, args, tree[:12])
	return root, tree, nil
}

// packageRoot captures root into dir/sample.wim and signs the package
// with the key the PE trusts.
func (f *fixture) packageRoot(root, dir string) error {
	os.MkdirAll(dir, 0o755)
	if _, err := run(f.work, f.minint, "wim", "capture", "--compress", "lzx", root, filepath.Join(dir, "sample.wim")); err != nil {
		return err
	}
	_, err := run(f.work, f.minint, "package", "create", "--key", f.key, "--name", "sample-os", dir)
	return err
}

func run(dir, prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MININT_SRC="+filepath.Dir(mustWd()))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(prog), strings.Join(args, " "), err, stdout.String(), lastLines(stderr.String(), 20))
	}
	return stdout.String(), nil
}

func mustWd() string { wd, _ := os.Getwd(); return wd }

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// harnessCmdline is what every PE booted by these tests gets on its kernel
// command line: JSON events on the serial console, which the tests read,
// and no wait at the failure menu.
const harnessCmdline = "minint.events=serial minint.failwait=0"

// sequence is the test's task sequence: both partition layouts (the one for
// the firmware runs), the image from manifest, setup, boot files, reboot.
func sequence(manifest, minDisk string) string {
	if minDisk == "" {
		minDisk = "256MiB"
	}
	return fmt.Sprintf(`version: 1
name: e2e
steps:
  - type: requirements
    min-memory: 256MiB
    min-disk: %s
    devices: [disk]
  - type: select-disk
    disk: {transport: virtio}
  - type: partition
    name: partition-uefi
    when: firmware == uefi
    table: gpt
    partitions:
      - {name: esp, size: 64M, type: esp, fs: vfat, label: ESP}
      - {name: root, size: rest, type: linux, fs: ext4, label: root}
  - type: partition
    name: partition-bios
    when: firmware == bios
    table: mbr
    partitions:
      - {name: boot, size: 64M, type: fat32, fs: vfat, label: BOOT, bootable: true}
      - {name: root, size: rest, type: linux, fs: ext4, label: root}
  - type: format
  - type: mount
  - type: fetch
    manifest: %s
  - type: apply-image
  - type: setup
    hostname: e2e-host
    users:
      - name: alice
        groups: [users]
        ssh-authorized-keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyTestKeyTestKeyTestKeyTestKey0001 alice@e2e"]
    files:
      - {path: /etc/minint-deployed, content: "deployed by minint e2e\n", mode: "0644"}
  - type: bootfiles
    cmdline: console=ttyS0
  - type: reboot
`, minDisk, manifest)
}

// iso writes the sequence and builds a boot ISO from the shared PE; with
// image, the package's files go on it under /minint/image/.
// An empty seq puts none on the ISO; extra are more `minint iso` flags.
func (f *fixture) iso(t *testing.T, seq string, pkgDir string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "e2e.iso")
	// The harness reads the PE's events on the serial console, and a
	// failure must not wait at its menu.
	cmdline := harnessCmdline
	var rest []string
	for i := 0; i < len(extra); i++ {
		if extra[i] == "--cmdline" && i+1 < len(extra) {
			cmdline += " " + extra[i+1]
			i++
			continue
		}
		rest = append(rest, extra[i])
	}
	args := append([]string{"iso", "-o", out, "--pe-dir", f.peDir, "--cmdline", cmdline}, rest...)
	if seq != "" {
		sp := filepath.Join(dir, "sequence.yaml")
		if err := os.WriteFile(sp, []byte(seq), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := run(dir, f.minint, "sequence", "check", sp); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--sequence", sp)
	}
	if pkgDir != "" {
		// On the ISO the signature takes the 8.3-safe name the PE reads
		// there (sign.ShortSignatureFor).
		for n, dest := range map[string]string{"manifest.json": "manifest.json", "manifest.json.sig": "manifest.sig", "sample.wim": "sample.wim"} {
			args = append(args, "--add", filepath.Join(pkgDir, n)+":image/"+dest)
		}
	}
	if _, err := run(dir, f.minint, args...); err != nil {
		t.Fatal(err)
	}
	return out
}

// vm starts a guest with the ISO in its CD drive and disk as its virtio
// disk. With diskFirst the disk boots first (a blank one falls through to
// the CD) and reboots are allowed, so that the PE's reboot starts the
// deployed OS.
// More disks (e.g. a hookDisk) come after the target disk.
func vm(t *testing.T, iso, disk, firmware string, diskFirst bool, more ...qemu.Disk) *qemu.VM {
	t.Helper()
	// Each wait is bounded by the test's own deadline; the VM's is only
	// the backstop, generous for two guests sharing two cores.
	return startVM(t, qemu.Options{ISO: iso, Firmware: firmware, Mem: "512M",
		Disks:     append([]qemu.Disk{{Path: disk, Size: 512 << 20, Boot: diskFirst}}, more...),
		DiskFirst: diskFirst, AllowReboot: diskFirst, WorkDir: t.TempDir(), Timeout: 10 * time.Minute})
}

// startVM starts a guest with its console logged (and copied to stderr
// with MININT_E2E_CONSOLE=1), killed when the test ends, and the end of its
// console shown when the test failed.
func startVM(t *testing.T, o qemu.Options) *qemu.VM {
	t.Helper()
	o.LogPath = filepath.Join(t.TempDir(), "console.log")
	if os.Getenv("MININT_E2E_CONSOLE") == "1" {
		o.Console = os.Stderr
	}
	v, err := qemu.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.Kill()
		v.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(o.LogPath)
			t.Logf("console of %s (last 80 lines):\n%s", filepath.Base(o.WorkDir), lastLines(string(b), 80))
		}
	})
	return v
}

// sampleOS is the deployed OS's report (scripts/make-sample-rootfs.sh).
type sampleOS struct {
	OS, Version, Hostname, Kernel, Marker, Tree, Cmdline string
	Users                                                []string
	SSHKeys                                              int    `json:"ssh_keys"`
	MachineID                                            string `json:"machine_id"`
	HostKey                                              string `json:"host_key"`
	SecureBoot                                           string `json:"secure_boot"` // on, off, bios
	Setup                                                json.RawMessage
}

// waitDeployed waits for the deployed OS's report and checks it against
// the sequence and the source tree.
func (f *fixture) waitDeployed(t *testing.T, v *qemu.VM) {
	t.Helper()
	f.waitDeployedTree(t, v, f.tree)
}

// waitDeployedTree is waitDeployed for an image of another tree; it
// returns the deployed OS's report.
func (f *fixture) waitDeployedTree(t *testing.T, v *qemu.VM, want string) sampleOS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ev, err := v.WaitEvent(ctx, "the deployed OS's sample-os report", func(e qemu.Event) bool {
		return e.Kind == "sample-os" || (e.Kind == "pe" && e.State == "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind == "pe" {
		t.Fatalf("PE failed: %s", ev.Error)
	}
	var s sampleOS
	if err := json.Unmarshal(ev.Raw, &s); err != nil {
		t.Fatalf("sample-os line %s: %v", ev.Raw, err)
	}
	var res struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(s.Setup, &res); err != nil || !res.OK {
		t.Errorf("first-boot setup result %s: not ok", s.Setup)
	}
	if s.OS != "minint-sample" || s.Version != "A" {
		t.Errorf("deployed OS %q version %q, want minint-sample A", s.OS, s.Version)
	}
	if s.Hostname != "e2e-host" {
		t.Errorf("hostname %q, want e2e-host from the answer file", s.Hostname)
	}
	if len(s.Users) != 1 || s.Users[0] != "alice" || s.SSHKeys != 1 {
		t.Errorf("users %v with %d key files, want [alice] with 1", s.Users, s.SSHKeys)
	}
	if s.Marker != "deployed by minint e2e" {
		t.Errorf("marker file %q", s.Marker)
	}
	if s.Tree != want {
		t.Errorf("deployed tree digest %s, source tree %s: the applied system differs from the captured one", s.Tree, want)
	}
	if !strings.Contains(s.Cmdline, "console=ttyS0") || !strings.Contains(s.Cmdline, "root=UUID=") {
		t.Errorf("deployed kernel command line %q lacks the boot entry's root=UUID= and console=ttyS0", s.Cmdline)
	}
	// The sample OS powers off after reporting.
	select {
	case <-v.Exited():
	case <-time.After(60 * time.Second):
		t.Error("the deployed OS did not power off")
	}
	return s
}

// peEnd waits for the PE's final event (done or failed).
func peEnd(t *testing.T, v *qemu.VM) qemu.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ev, err := v.WaitEvent(ctx, "the PE's end", func(e qemu.Event) bool { return e.Kind == "pe" })
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// stepStates maps step names to their last state in the PE's events.
func stepStates(v *qemu.VM) map[string]string {
	m := map[string]string{}
	for _, e := range v.Events() {
		if e.Kind == "step" && e.Op != "" {
			m[e.Op] = e.State
		}
	}
	return m
}

// peFailure waits for the PE to fail and for QEMU to exit (the ISO's PE
// powers off when done).
func peFailure(t *testing.T, v *qemu.VM) qemu.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ev, err := v.WaitEvent(ctx, "the PE's verdict", func(e qemu.Event) bool {
		return e.Kind == "pe" && (e.State == "failed" || e.State == "done") || e.Kind == "sample-os"
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "pe" || ev.State != "failed" {
		t.Fatalf("want the PE to fail, got %s", ev.Raw)
	}
	select {
	case <-v.Exited():
	case <-time.After(60 * time.Second):
		t.Error("the PE did not power off after failing")
	}
	return ev
}

// nginx serves dir on a free 127.0.0.1 port (plus any extra server
// directives); the guest reaches it at 10.0.2.2:port.
func nginx(t *testing.T, dir string, extra ...string) int {
	t.Helper()
	return testnginx.Start(t, dir, testnginx.Options{Extra: extra}).Port
}
