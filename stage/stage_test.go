package stage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/state"
)

func fakeSystem(t *testing.T) (Options, string) {
	t.Helper()
	root, host := t.TempDir(), t.TempDir()
	for p, c := range map[string]string{
		"etc/passwd":                          "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n",
		"etc/group":                           "root:x:0:\nann:x:1000:\n",
		"etc/fstab":                           "UUID=1 / ext4 defaults 0 1\n",
		"boot/efi/loader/loader.conf":         "default minint.conf\n",
		"boot/efi/loader/entries/minint.conf": "title old\nlinux /old/vmlinuz\n",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	treetest.Generate(t, filepath.Join(root, "home/ann"), treetest.Options{Seed: 4, Small: true})
	for n, c := range map[string]string{"vmlinuz": "kernel", "initramfs.img": "initramfs", "seq.yaml": "steps: []\n"} {
		os.WriteFile(filepath.Join(host, n), []byte(c), 0o644)
	}
	efivars := filepath.Join(host, "efivars")
	os.MkdirAll(efivars, 0o755)
	os.WriteFile(filepath.Join(efivars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0, 1, 0}, 0o644)
	return Options{
		Root: root, Kernel: filepath.Join(host, "vmlinuz"), Initramfs: filepath.Join(host, "initramfs.img"),
		Sequence: filepath.Join(host, "seq.yaml"), Cmdline: "minint.done=reboot", EFIVars: efivars,
		StagedFS: "UUID=0b9e6e49-5b7a-4c43-9b7f-3f5d2d9a1c01",
	}, host
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: stage captures every user's files")
	}
}

func TestStageOnFakeRoot(t *testing.T) {
	needRoot(t)
	o, _ := fakeSystem(t)
	before, _ := treetest.Snapshot(o.Root)

	// Dry run: a plan, and not one byte changed.
	o.DryRun = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan) != 5 || !strings.Contains(strings.Join(res.Plan, "\n"), "minint.staged=UUID=0b9e6e49-5b7a-4c43-9b7f-3f5d2d9a1c01") {
		t.Errorf("plan %q", res.Plan)
	}
	after, _ := treetest.Snapshot(o.Root)
	if d := treetest.Diff(before, after, treetest.DiffOptions{}); len(d) > 0 {
		t.Fatalf("dry run changed the root:\n%s", strings.Join(d, "\n"))
	}

	o.DryRun = false
	var log bytes.Buffer
	o.Log = &log
	res, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Linked == 0 || res.Stats.Copied != 0 {
		t.Errorf("state not hard-linked: %+v", res.Stats)
	}
	if _, err := state.ReadManifest(filepath.Join(o.Root, "minint/state")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"minint/pe/vmlinuz":                      "kernel",
		"minint/pe/initramfs.img":                "initramfs",
		"minint/pe/sequence.yaml":                "steps: []\n",
		"boot/efi/minint-pe/vmlinuz":             "kernel",
		"boot/efi/loader/entries/minint-pe.conf": "title minint PE (refresh)\nlinux /minint-pe/vmlinuz\ninitrd /minint-pe/initramfs.img\noptions minint.done=reboot minint.staged=UUID=0b9e6e49-5b7a-4c43-9b7f-3f5d2d9a1c01\n",
		"boot/efi/loader/loader.conf":            "default minint.conf\n", // the default is untouched: one shot only
	} {
		if b, err := os.ReadFile(filepath.Join(o.Root, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	v, err := os.ReadFile(filepath.Join(o.EFIVars, "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"))
	if err != nil || !bytes.Contains(v, []byte("m\x00i\x00n\x00i\x00n\x00t\x00-\x00p\x00e\x00")) {
		t.Errorf("one-shot variable %q, %v", v, err)
	}
	backups, _ := filepath.Glob(filepath.Join(o.Root, "minint/backup/*/esp/loader/loader.conf"))
	efib, _ := filepath.Glob(filepath.Join(o.Root, "minint/backup/*/efivars/BootOrder-*"))
	fstab, _ := filepath.Glob(filepath.Join(o.Root, "minint/backup/*/root/etc/fstab"))
	if len(backups) != 1 || len(efib) != 1 || len(fstab) != 1 {
		t.Errorf("backup: %v %v %v", backups, efib, fstab)
	}
	// The user's files are untouched by the capture.
	now, _ := treetest.Snapshot(filepath.Join(o.Root, "home"))
	if d := treetest.Diff(sub(before, "home"), now, treetest.DiffOptions{IgnoreRoot: true, IgnoreHardLinks: true}); len(d) > 0 {
		t.Errorf("capture changed the homes:\n%s", strings.Join(d, "\n"))
	}
}

// sub is the part of a snapshot under dir, re-rooted.
func sub(t treetest.Tree, dir string) treetest.Tree {
	out := treetest.Tree{Root: filepath.Join(t.Root, dir), Entries: map[string]*treetest.Entry{}}
	for p, e := range t.Entries {
		if r, ok := strings.CutPrefix(p, dir+"/"); ok {
			c := *e
			c.Path = r
			out.Entries[r] = &c
		} else if p == dir {
			c := *e
			c.Path = "."
			out.Entries["."] = &c
		}
	}
	return out
}

func TestStageRequirementsRefused(t *testing.T) {
	needRoot(t)
	o, host := fakeSystem(t)
	os.RemoveAll(filepath.Join(o.Root, "boot/efi"))
	o.Kernel = filepath.Join(host, "missing")
	o.MinMemory = 1 << 60
	o.Cmdline += " minint.staged=LABEL=x minint.sequence=http://x/y.yaml"
	before, _ := treetest.Snapshot(o.Root)
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrRequirements) {
		t.Fatalf("Run = %v", err)
	}
	for _, want := range []string{"PE kernel", "ESP", "memory", "must not set minint.staged=", "must not set minint.sequence="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("report lacks %q:\n%v", want, err)
		}
	}
	after, _ := treetest.Snapshot(o.Root)
	if d := treetest.Diff(before, after, treetest.DiffOptions{}); len(d) > 0 {
		t.Fatalf("refused stage changed the root:\n%s", strings.Join(d, "\n"))
	}
}

// TestStageRefusedUnderSecureBoot: the refresh's one-shot goes through
// systemd-boot, which a machine enforcing Secure Boot does not run.
func TestStageRefusedUnderSecureBoot(t *testing.T) {
	needRoot(t)
	o, _ := fakeSystem(t)
	os.WriteFile(filepath.Join(o.EFIVars, "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{6, 0, 0, 0, 1}, 0o644)
	before, _ := treetest.Snapshot(o.Root)
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrRequirements) || !strings.Contains(err.Error(), "enforces Secure Boot") {
		t.Fatalf("Run = %v", err)
	}
	after, _ := treetest.Snapshot(o.Root)
	if d := treetest.Diff(before, after, treetest.DiffOptions{}); len(d) > 0 {
		t.Fatalf("refused stage changed the root:\n%s", strings.Join(d, "\n"))
	}
}

func TestStageCaptureOnlyToDirectoryStore(t *testing.T) {
	needRoot(t)
	o, host := fakeSystem(t)
	os.RemoveAll(filepath.Join(o.Root, "boot/efi")) // not needed for capture only
	o.CaptureOnly = true
	o.StateStore = filepath.Join(host, "share/pc1")
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrRequirements) || !strings.Contains(err.Error(), "state key") {
		t.Fatalf("a state store without a state key: %v", err)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	o.Spec.Key = key
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, _, err := state.ReadSigned(o.StateStore, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.Root, "minint/pe")); !os.IsNotExist(err) {
		t.Error("capture-only staged the PE")
	}
}

func TestCountdown(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	// "postpone" stops it.
	err := Countdown{Duration: time.Hour, Interactive: true, In: strings.NewReader("postpone\n"), Out: &out}.Wait(ctx)
	if !errors.Is(err, ErrPostponed) {
		t.Fatalf("postpone: %v", err)
	}
	// "now" goes at once.
	if err := (Countdown{Duration: time.Hour, Interactive: true, In: strings.NewReader("what\nnow\n"), Out: &out}).Wait(ctx); err != nil {
		t.Fatalf("now: %v", err)
	}
	// A mandatory deadline inside the countdown refuses postpone and ends it.
	out.Reset()
	err = Countdown{Duration: time.Hour, MandatoryAt: time.Now().Add(200 * time.Millisecond), Interactive: true, In: strings.NewReader("postpone\n"), Out: &out, Tick: 50 * time.Millisecond}.Wait(ctx)
	if err != nil || !strings.Contains(out.String(), "cannot be postponed") {
		t.Fatalf("mandatory: %v\n%s", err, out.String())
	}
	// Non-interactive ignores input and runs to the end.
	err = Countdown{Duration: 100 * time.Millisecond, In: strings.NewReader("postpone\n"), Out: &out}.Wait(ctx)
	if err != nil {
		t.Fatalf("non-interactive: %v", err)
	}
}

// TestStageCaptureFailureArmsNothing: when the capture fails, no one-shot
// boot is armed, no PE staged, and the incomplete store is removed.
func TestStageCaptureFailureArmsNothing(t *testing.T) {
	needRoot(t)
	o, _ := fakeSystem(t)
	// A state path behind a symlink is refused by the capture. The link
	// and what it leads to are the fake system's own (not the host's
	// /etc/ssh, which a host may lack).
	if err := os.MkdirAll(filepath.Join(o.Root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(o.Root, "etc/ssh/ssh_host_ed25519_key"), []byte("key"), 0o600)
	os.Symlink("etc", filepath.Join(o.Root, "linked"))
	o.Spec.Paths = []string{"/linked/ssh"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("capture through a symlink: %v", err)
	}
	for _, p := range []string{"minint/state", "minint/pe", "boot/efi/loader/entries/minint-pe.conf"} {
		if _, err := os.Stat(filepath.Join(o.Root, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed capture", p)
		}
	}
	if ents, _ := os.ReadDir(o.EFIVars); len(ents) != 1 {
		t.Errorf("EFI variables changed: %v", ents)
	}
}

// TestStagedFSProbed: without StagedFS the PE's minint.staged= is the
// UUID read from the superblock of the device holding Root (a real ext4
// on a loop device here).
func TestStagedFSProbed(t *testing.T) {
	needRoot(t)
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("mounts a loop device: set MININT_E2E=1")
	}
	o, _ := fakeSystem(t)
	os.RemoveAll(filepath.Join(o.Root, "home/ann")) // its big xattrs need more than mke2fs -d gives
	img := filepath.Join(t.TempDir(), "root.img")
	const uuid = "5d1f3a0e-8c1b-4f7e-9a51-2c6b7e0f4d11"
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-U", uuid, "-d", o.Root, img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	m, err := diskops.Mount(img, filepath.Join(t.TempDir(), "mnt"), diskops.MountOptions{FSType: "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o.Root, o.StagedFS, o.DryRun = m.Target, "", true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "minint.done=reboot minint.staged=UUID=" + uuid; res.Cmdline != want {
		t.Errorf("PE command line %q, want %q", res.Cmdline, want)
	}
}

// TestCountdownPostponeRearms: with Postpone set, "postpone" puts the
// refresh off for that long and the countdown then starts again; a second
// "postpone" is refused once a mandatory deadline falls in the countdown,
// and the refresh goes ahead.
func TestCountdownPostponeRearms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	var out syncBuffer
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- Countdown{Duration: 300 * time.Millisecond, Postpone: 200 * time.Millisecond, Interactive: true,
			In: pr, Out: &out, Tick: 50 * time.Millisecond}.Wait(ctx)
	}()
	fmt.Fprintln(pw, "postpone")
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v\n%s", err, out.String())
	}
	// 200 ms off, then a full 300 ms countdown again.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("went ahead after %s: the postponement and second countdown did not run", d)
	}
	if s := out.String(); !strings.Contains(s, "postponed until") || strings.Count(s, "refreshed in") < 2 {
		t.Errorf("want a postponement and a second countdown:\n%s", s)
	}

	// A mandatory deadline shortens the postponement: the countdown comes
	// back at the deadline and goes at once.
	var out2 syncBuffer
	start = time.Now()
	err := Countdown{Duration: 100 * time.Millisecond, Postpone: time.Hour, MandatoryAt: time.Now().Add(400 * time.Millisecond),
		Interactive: true, In: strings.NewReader("postpone\n"), Out: &out2, Tick: 20 * time.Millisecond}.Wait(ctx)
	if err != nil {
		t.Fatalf("mandatory: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second || !strings.Contains(out2.String(), "postponed until") {
		t.Errorf("a 1 h postponement was not cut at the mandatory deadline (%s):\n%s", d, out2.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the countdown's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
