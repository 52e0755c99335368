package pe

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/netconf"
	"github.com/minint/minint/pe/journal"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/wim"
)

// fakeDisk is a Backend over a directory: the "disk" is a JSON file with
// the partition table, each file system a directory, mounting a symlink.
// It keeps state on disk so that a second Run (the next boot) sees what the
// first left, like a real disk would.
type fakeDisk struct {
	dir   string
	mu    sync.Mutex
	calls map[string]int
	power []string
}

// head starts a sequence written inline in a test.
const head = "version: 1\nsteps:\n"

func newFakeDisk(t *testing.T) *fakeDisk {
	return &fakeDisk{dir: t.TempDir(), calls: map[string]int{}}
}

func (f *fakeDisk) count(op string) {
	f.mu.Lock()
	f.calls[op]++
	f.mu.Unlock()
}

func (f *fakeDisk) SelectDisk(ctx context.Context, rule diskops.Rule) (TargetDisk, error) {
	f.count("select")
	return TargetDisk{Path: "/dev/fake", Size: 8 << 30, Desc: "fake 8 GiB"}, nil
}

func (f *fakeDisk) tablePath() string { return filepath.Join(f.dir, "table.json") }

func (f *fakeDisk) Existing(ctx context.Context, d TargetDisk, l *diskops.Layout) ([]Part, bool) {
	b, err := os.ReadFile(f.tablePath())
	if err != nil {
		return nil, false
	}
	var parts []Part
	json.Unmarshal(b, &parts)
	if len(parts) != len(l.Partitions) {
		return nil, false
	}
	for i := range parts {
		if parts[i].Name != l.Partitions[i].Name {
			return nil, false
		}
		// Like a probe of the partition: the UUID is what is on it now.
		parts[i].FSUUID = ""
		if _, err := os.Stat(filepath.Join(f.dir, "fs-"+parts[i].Name)); err == nil && parts[i].FS != "" {
			parts[i].FSUUID = "uuid-" + parts[i].Name
		}
		// A system hibernated with its memory image on this partition.
		if _, err := os.Stat(filepath.Join(f.dir, "hibernated-"+parts[i].Name)); err == nil {
			parts[i].Hibernated = true
		}
	}
	return parts, true
}

func (f *fakeDisk) Look(ctx context.Context, d TargetDisk, p Part, fn func(root string) error) error {
	f.count("look")
	root := filepath.Join(f.dir, "fs-"+p.Name)
	if _, err := os.Stat(root); err != nil {
		return fmt.Errorf("look %s: not formatted", p.Node)
	}
	return fn(root)
}

func (f *fakeDisk) Partition(ctx context.Context, d TargetDisk, l *diskops.Layout) ([]Part, error) {
	f.count("partition")
	var parts []Part
	for i, p := range l.Partitions {
		parts = append(parts, Part{Planned: diskops.Planned{PartitionSpec: p, Number: i + 1}, Node: fmt.Sprintf("/dev/fake%d", i+1)})
		os.RemoveAll(filepath.Join(f.dir, "fs-"+p.Name)) // a new table loses the old file systems
	}
	b, _ := json.Marshal(parts)
	return parts, os.WriteFile(f.tablePath(), b, 0o644)
}

func (f *fakeDisk) Format(ctx context.Context, d TargetDisk, parts []Part, only []string) ([]Part, error) {
	f.count("format")
	out := append([]Part(nil), parts...)
	for i, p := range out {
		if p.FS == "" {
			continue
		}
		dir := filepath.Join(f.dir, "fs-"+p.Name)
		os.RemoveAll(dir)
		os.Remove(filepath.Join(f.dir, "hibernated-"+p.Name)) // as mkswap does
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		out[i].FSUUID = fmt.Sprintf("uuid-%s", p.Name)
	}
	return out, nil
}

func (f *fakeDisk) Mount(ctx context.Context, p Part, dir string) (func() error, error) {
	f.count("mount")
	src := filepath.Join(f.dir, "fs-"+p.Name)
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("mount %s: not formatted", p.Node)
	}
	os.Remove(dir)
	if err := os.Symlink(src, dir); err != nil {
		return nil, err
	}
	return func() error { return os.Remove(dir) }, nil
}

func (f *fakeDisk) Clean(ctx context.Context, root string) error {
	f.count("clean")
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() != "minint" {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
	return nil
}

// Apply "applies" by writing the SHA-256 of the whole image (read through
// the ReaderAt it was given) and the index, plus a tree with /sbin/init.
func (f *fakeDisk) Apply(ctx context.Context, req ApplyRequest) error {
	f.count("apply")
	if req.BenchNoHash {
		f.count("apply-nohash")
	}
	if req.Checksums != nil {
		f.count("apply-checksums")
	}
	r, size, dir := req.Image, req.Size, req.Dir
	// Like a WIM: the tables at the end are read first.
	if _, err := r.ReadAt(make([]byte, min(size, 1000)), size-min(size, 1000)); err != nil && err != io.EOF {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return err
	}
	req.Progress(size, size)
	os.MkdirAll(filepath.Join(dir, "sbin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "sbin/init"), []byte("init"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	return os.WriteFile(filepath.Join(dir, "applied"), []byte(fmt.Sprintf("%x index %d\n", h.Sum(nil), req.Index)), 0o644)
}

func (f *fakeDisk) BootFiles(ctx context.Context, req BootRequest) ([]answer.BootEntry, error) {
	f.count("bootfiles")
	p := filepath.Join(req.Root, "boot/extlinux.conf")
	os.MkdirAll(filepath.Dir(p), 0o755)
	entry := fmt.Sprintf("LABEL linux\n  APPEND root=UUID=%s rw %s\n", req.RootPart.FSUUID, req.Cmdline)
	return []answer.BootEntry{{Path: "/boot/extlinux.conf"}}, os.WriteFile(p, []byte(entry), 0o644)
}

func (f *fakeDisk) Power(ctx context.Context, kind string) error {
	f.power = append(f.power, kind)
	return nil
}

// testPkg serves a signed package over HTTP and returns the manifest URL,
// the public key and the image bytes.
func testPkg(t *testing.T, chunked bool) (string, ed25519.PublicKey, []byte, string) {
	t.Helper()
	dir := t.TempDir()
	img := make([]byte, 300000)
	rand.New(rand.NewSource(7)).Read(img)
	os.WriteFile(filepath.Join(dir, "os.wim"), img, 0o644)
	pubF, privF, _ := sign.GenerateKey()
	pub, _ := sign.ParsePublicKey(pubF)
	priv, _ := sign.ParsePrivateKey(privF)
	cs := int64(-1)
	if chunked {
		cs = 64 << 10
	}
	m, _, err := manifest.Build(dir, []string{"os.wim"}, manifest.BuildOptions{Name: "os", Version: "2.1", Image: &manifest.Image{File: "os.wim", Index: 2}, ChunkSize: cs})
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in for the WIM's checksum table (this image is no WIM),
	// to see where the engine hands it on.
	m.Files[0].WIMChecksums = testChecksums
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), mb, 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json.sig"), signPkg(t, m, mb, priv), 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL + "/manifest.json", pub, img, dir
}

var testChecksums = wim.Checksums("8 bytes!")

func seqFor(t *testing.T, manifestURL, extra string) *sequence.Sequence {
	t.Helper()
	src := fmt.Sprintf(`version: 1
name: test
steps:
  - type: requirements
    min-memory: 128MiB
    min-disk: 1G
  - type: select-disk
    disk: {first-largest: true}
  - type: partition
    partitions:
      - {name: esp, size: 64M, type: esp, fs: vfat}
      - {name: root, size: rest, type: linux, fs: ext4}
  - type: format
  - type: mount
    target: %s
  - type: fetch
    manifest: %s
%s  - type: apply-image
  - type: setup
    hostname: box
    users: [{name: op, ssh-authorized-keys: ["ssh-ed25519 AAAA op"]}]
  - type: bootfiles
    cmdline: console=ttyS0
  - type: run
    name: mark
    in-target: false
    shell: echo ran >> "$MININT_TARGET/marks"
  - type: reboot
`, filepath.Join(t.TempDir(), "target"), manifestURL, extra)
	seq, err := sequence.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func testEnv(t *testing.T, fd *fakeDisk, pub ed25519.PublicKey) (*Env, *bytes.Buffer) {
	setup := filepath.Join(t.TempDir(), "minint-setup")
	os.WriteFile(setup, []byte("#!setup"), 0o755)
	ev := &bytes.Buffer{}
	return &Env{
		Backend:     fd,
		Inventory:   Inventory{Firmware: "uefi", Arch: "amd64", Memory: 512 << 20, CPUs: 2, Disks: []DiskInfo{{Path: "/dev/fake", Size: 8 << 30}}},
		PublicKey:   pub,
		SetupBinary: setup,
		Events:      ev,
		LogDir:      t.TempDir(),
	}, ev
}

// snapshot lists the target tree (paths, sizes, contents) minus the
// journal, logs and downloads, which legitimately differ between runs.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	root, _ = filepath.EvalSymlinks(root)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(rel, "minint/journal") || strings.HasPrefix(rel, "minint/.journal") || strings.HasPrefix(rel, "minint/failure-") || rel == "minint/os.wim" || rel == "marks" {
			return nil
		}
		fmt.Fprintf(&b, "%s %v", rel, d.Type())
		if d.Type().IsRegular() {
			c, _ := os.ReadFile(p)
			if rel == answer.ConfigFile[1:] {
				c = []byte(strings.Split(string(c), `"created"`)[0]) // timestamp
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(c))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestRunEndToEnd(t *testing.T) {
	url, pub, img, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	seq := seqFor(t, url, "")
	env, ev := testEnv(t, fd, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	// The target is unmounted (symlink gone) after Run; look at the fs dir.
	root := filepath.Join(fd.dir, "fs-root")
	applied, _ := os.ReadFile(filepath.Join(root, "applied"))
	if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
		t.Errorf("applied %q, want %q", applied, want)
	}
	boot, _ := os.ReadFile(filepath.Join(root, "boot/extlinux.conf"))
	if !strings.Contains(string(boot), "APPEND root=UUID=uuid-root rw console=ttyS0 "+answer.InitArg) {
		t.Errorf("boot entry %q", boot)
	}
	cfg, err := answer.ReadConfig(filepath.Join(root, answer.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Answer.Hostname != "box" || len(cfg.BootEntries) != 1 || cfg.BootEntries[0].Path != "/boot/extlinux.conf" || cfg.Init != "/sbin/init" {
		t.Errorf("setup config %+v", cfg)
	}
	if b, _ := os.ReadFile(filepath.Join(root, answer.Binary)); string(b) != "#!setup" {
		t.Errorf("setup binary %q", b)
	}
	if len(fd.power) != 1 || fd.power[0] != "reboot" {
		t.Errorf("power %v", fd.power)
	}
	// Events: every step started and finished, as JSON lines.
	var starts, dones int
	for _, l := range strings.Split(strings.TrimSpace(ev.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("event %q: %v", l, err)
		}
		if e["event"] == "step" && e["state"] == "start" {
			starts++
		}
		if e["event"] == "step" && e["state"] == "done" {
			dones++
		}
	}
	if starts != len(seq.Steps) || dones != len(seq.Steps) {
		t.Errorf("%d step starts, %d dones, want %d", starts, dones, len(seq.Steps))
	}

	// Booting the PE again after success does nothing destructive, and
	// says that the sequence ended in an earlier boot rather than now.
	want := snapshot(t, root)
	env2, ev2 := testEnv(t, fd, pub)
	var console bytes.Buffer
	env2.Console = &console
	before := fd.calls["partition"] + fd.calls["apply"] + fd.calls["format"]
	if err := Run(context.Background(), seq, env2); err != nil {
		t.Fatal(err)
	}
	if after := fd.calls["partition"] + fd.calls["apply"] + fd.calls["format"]; after != before || len(fd.power) != 1 {
		t.Errorf("a finished sequence ran again: %v power %v", fd.calls, fd.power)
	}
	if !strings.Contains(ev2.String(), `"event":"sequence","state":"done","msg":"test","data":{"earlier_boot":true}`) ||
		!strings.Contains(console.String(), "test: finished in an earlier boot, by the journal on the target disk. Nothing was done now.") {
		t.Errorf("a finished journal's run does not say so:\n%s\n%s", console.String(), ev2.String())
	}
	// minint.redo=1 runs it again from the fetch: verified, cleaned and
	// applied again, and rebooted, to the same tree.
	env3, ev3 := testEnv(t, fd, pub)
	env3.Redo = true
	if err := Run(context.Background(), seq, env3); err != nil {
		t.Fatal(err)
	}
	if fd.calls["apply"] != 2 || fd.calls["partition"] != 1 || len(fd.power) != 2 || strings.Contains(ev3.String(), "earlier_boot") {
		t.Errorf("redo: calls %v, power %v", fd.calls, fd.power)
	}
	if got := snapshot(t, root); got != want {
		t.Errorf("tree after the redo:\n%s\nwant\n%s", got, want)
	}
}

// deployedOnce deploys seqFor's sequence on a new fake disk, as the first
// PE boot of the tests that then bring a PE back to the deployed disk.
func deployedOnce(t *testing.T) (*fakeDisk, *sequence.Sequence, ed25519.PublicKey) {
	t.Helper()
	url, pub, _, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	seq := seqFor(t, url, "")
	env, _ := testEnv(t, fd, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	return fd, seq, pub
}

// TestDeployedBefore: once the deployed system has started (a first boot
// that restores a user state removes the journal), a PE that comes to the
// disk again does not partition it: the run fails, naming the system and
// minint.redo=1, and the disk is as it was. With Redo it is deployed
// again. A disk with the layout and nothing installed (a power cut before
// mount) is partitioned.
func TestDeployedBefore(t *testing.T) {
	fd, seq, pub := deployedOnce(t)
	// The first boot restored a user state: setup removed /minint; the
	// system is there.
	root := filepath.Join(fd.dir, "fs-root")
	if err := os.RemoveAll(filepath.Join(root, "minint")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("PRETTY_NAME=Debian GNU/Linux 12 (bookworm)\n"), 0o644)
	os.WriteFile(filepath.Join(root, "sbin/init"), []byte("#!init"), 0o755)
	os.WriteFile(filepath.Join(root, "home-data"), []byte("the users' files"), 0o644)
	want := snapshot(t, root)

	env2, _ := testEnv(t, fd, pub)
	mounts, looks := fd.calls["mount"], fd.calls["look"]
	err := Run(context.Background(), seq, env2)
	if fd.calls["mount"] != mounts || fd.calls["look"] != looks+1 {
		t.Errorf("the refused disk was mounted writable (or not looked at): %v", fd.calls)
	}
	if !errors.Is(err, ErrDeployed) || !strings.Contains(err.Error(), "partition 2 holds an installed system (Debian GNU/Linux 12 (bookworm))") ||
		!strings.Contains(err.Error(), "minint.redo=1") {
		t.Fatalf("second PE boot: %v", err)
	}
	if fd.calls["partition"] != 1 || fd.calls["format"] != 1 {
		t.Errorf("the disk was changed: %v", fd.calls)
	}
	if got := snapshot(t, root); got != want {
		t.Errorf("the system's tree changed:\n%s\nwant\n%s", got, want)
	}

	env3, _ := testEnv(t, fd, pub)
	env3.Redo = true
	if err := Run(context.Background(), seq, env3); err != nil {
		t.Fatal(err)
	}
	if fd.calls["partition"] != 2 || fd.calls["apply"] != 2 {
		t.Errorf("redo: %v", fd.calls)
	}
	if _, err := os.Stat(filepath.Join(root, "home-data")); err == nil {
		t.Error("redo kept the old system's files")
	}

	// The layout with nothing installed, as a power cut after partition
	// or format leaves it: partitioned again, and deployed.
	for _, step := range []string{"format", "mount"} {
		fresh := newFakeDisk(t)
		envA, _ := testEnv(t, fresh, pub)
		crashAt(t, seq, envA, step, "before")
		envB, _ := testEnv(t, fresh, pub)
		if err := Run(context.Background(), seq, envB); err != nil {
			t.Fatalf("after a power cut before %s: %v", step, err)
		}
	}
}

// TestHibernated: a disk with the sequence's layout whose system is
// hibernated is not touched, not even looked at, whatever its journal
// says: its file systems are as the hibernated memory holds them. With
// Redo it is deployed again. (In a real layout the memory image is on a
// swap partition; the fake marks the ESP.)
func TestHibernated(t *testing.T) {
	fd, seq, pub := deployedOnce(t)
	root := filepath.Join(fd.dir, "fs-root")
	want := snapshot(t, root)
	if err := os.WriteFile(filepath.Join(fd.dir, "hibernated-esp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	env2, _ := testEnv(t, fd, pub)
	calls := maps.Clone(fd.calls)
	err := Run(context.Background(), seq, env2)
	if !errors.Is(err, ErrHibernated) || !strings.Contains(err.Error(), "/dev/fake partition 1 holds the memory image of a hibernated system") ||
		!strings.Contains(err.Error(), "minint.redo=1") {
		t.Fatalf("PE boot on the hibernated disk: %v", err)
	}
	calls["select"]++ // selecting reads, and is all the run may do
	if !maps.Equal(fd.calls, calls) {
		t.Errorf("the hibernated disk was touched: calls %v, want %v", fd.calls, calls)
	}
	if got := snapshot(t, root); got != want {
		t.Errorf("the system's tree changed:\n%s\nwant\n%s", got, want)
	}

	// Redo starts over from the partitions (format writes the swap area
	// again, so the new system cannot resume the old one's memory); the
	// next PE boot finds a finished journal and no memory image.
	env3, _ := testEnv(t, fd, pub)
	env3.Redo = true
	if err := Run(context.Background(), seq, env3); err != nil {
		t.Fatal(err)
	}
	if fd.calls["partition"] != calls["partition"]+1 || fd.calls["format"] != calls["format"]+1 || fd.calls["apply"] != calls["apply"]+1 {
		t.Errorf("redo on the hibernated disk did not deploy it again from its partitions: %v", fd.calls)
	}
	env4, _ := testEnv(t, fd, pub)
	if err := Run(context.Background(), seq, env4); err != nil {
		t.Fatalf("PE boot after the redo: %v", err)
	}
}

type crash struct{ step, point string }

// runToCrash runs seq until env's hook panics with a crash (a power cut in
// the middle of the run) and fails the test if it does not.
// uninterrupted runs seq on a fresh fake disk and returns seq and the end
// state (the fake's fs dir is the tree) that a resumed run must reach.
func uninterrupted(t *testing.T, url string, pub ed25519.PublicKey) (*sequence.Sequence, string) {
	t.Helper()
	ref := newFakeDisk(t)
	seq := seqFor(t, url, "")
	env, _ := testEnv(t, ref, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	return seq, snapshot(t, filepath.Join(ref.dir, "fs-root"))
}

// crashAt runs seq with env until the engine reaches point ("before" or
// "after") of the step named step, where the PE "loses power".
func crashAt(t *testing.T, seq *sequence.Sequence, env *Env, step, point string) {
	t.Helper()
	env.hook = func(s, p string) error {
		if s == step && p == point {
			panic(crash{s, p})
		}
		return nil
	}
	runToCrash(t, seq, env)
}

func runToCrash(t *testing.T, seq *sequence.Sequence, env *Env) {
	t.Helper()
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no crash")
		} else if _, ok := r.(crash); !ok {
			panic(r)
		}
	}()
	Run(context.Background(), seq, env)
}

// TestResumeAfterCrash interrupts the run at each step (before it starts,
// and after it did its work but before the journal says so), boots "again"
// and checks that the end state equals an uninterrupted run's.
func TestResumeAfterCrash(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	seq, want := uninterrupted(t, url, pub)

	for _, st := range seq.Steps {
		for _, point := range []string{"before", "after"} {
			name := st.Base().Name
			t.Run(name+"-"+point, func(t *testing.T) {
				fd := newFakeDisk(t)
				env, _ := testEnv(t, fd, pub)
				crashAt(t, seq, env, name, point)
				env2, _ := testEnv(t, fd, pub)
				if err := Run(context.Background(), seq, env2); err != nil {
					t.Fatalf("resumed run: %v", err)
				}
				if got := snapshot(t, filepath.Join(fd.dir, "fs-root")); got != want {
					t.Errorf("end state differs after a crash %s %s:\n%s\nwant\n%s", point, name, got, want)
				}
				// Destructive steps ran at most once unless they were
				// the one interrupted, or the crash came before there was a
				// file system to hold the journal (partition done, format
				// not yet).
				for _, op := range []string{"partition", "format"} {
					max := 1
					if name == op && point == "after" || op == "partition" && name == "format" && point == "before" {
						max = 2
					}
					if fd.calls[op] > max {
						t.Errorf("%s ran %d times", op, fd.calls[op])
					}
				}
				marks, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root/marks"))
				if n := strings.Count(string(marks), "ran"); n < 1 || (n > 1 && !(name == "mark" && point == "after")) {
					t.Errorf("run step ran %d times", n)
				}
				if len(fd.power) != 1 {
					t.Errorf("power %v", fd.power)
				}
			})
		}
	}
}

// TestResumeDistrustsJournal: whoever ran a system on the target disk can
// write a journal for the deployment's sequence there (its digest is
// public) along with any files. A run that resumes from such a journal
// still deploys only the signed package: here the journal of a run cut
// off before its boot files meets a staged image and an applied tree the
// attacker replaced, and a state that claims the image verified, and the
// end state is an uninterrupted run's.
func TestResumeDistrustsJournal(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	seq, want := uninterrupted(t, url, pub)
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	crashAt(t, seq, env, "bootfiles", "before")
	root := filepath.Join(fd.dir, "fs-root")
	evil := bytes.Repeat([]byte("evil"), 75000) // the image's size
	staged := filepath.Join(root, "minint/os.wim")
	if err := os.WriteFile(staged, evil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "applied"), []byte("the attacker's system\n"), 0o644)
	os.WriteFile(filepath.Join(root, "sbin/backdoor"), []byte("#!/bin/sh\n"), 0o755)
	jf := filepath.Join(root, "minint", journal.FileName)
	j, err := journal.Load(jf)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(evil)
	j.State = []byte(fmt.Sprintf(`{"image":{"path":%q,"entry":{"path":"os.wim","size":%d,"sha256":"%x"},"index":2,"verified":true}}`, staged, len(evil), sum))
	if err := journal.Save(jf, j); err != nil {
		t.Fatal(err)
	}

	env2, _ := testEnv(t, fd, pub)
	var console bytes.Buffer
	env2.Console = &console
	if err := Run(context.Background(), seq, env2); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if got := snapshot(t, root); got != want {
		t.Errorf("end state after a planted journal:\n%s\nwant\n%s", got, want)
	}
	if fd.calls["apply"] != 2 {
		t.Errorf("apply ran %d times, want again after the resume", fd.calls["apply"])
	}
	if !strings.Contains(console.String(), "fetch, apply-image, setup run again") {
		t.Errorf("console does not say what runs again:\n%s", console.String())
	}
}

// TestFetchBinding: a fetch step's package: and min-version: refuse a
// package of another name or an older version signed by the same key
// (a replayed release) before anything is applied; a signature under the
// old name manifest.sig is still read, with a warning.
func TestFetchBinding(t *testing.T) {
	for name, c := range map[string]struct {
		extra string
		prep  func(dir string)
		want  error
		msg   string
	}{
		"at the floor":  {extra: "    package: os\n    min-version: 2.1\n"},
		"older":         {extra: "    min-version: 2.10\n", want: sign.ErrVersion, msg: "version 2.1 is older than the minimum 2.10"},
		"other package": {extra: "    package: debian-12\n", want: sign.ErrSignature, msg: `the package is "os", not the "debian-12"`},
		"old sig name": {prep: func(dir string) {
			os.Rename(filepath.Join(dir, "manifest.json.sig"), filepath.Join(dir, "manifest.sig"))
		}, msg: "signature found only under its old name"},
	} {
		t.Run(name, func(t *testing.T) {
			url, pub, _, dir := testPkg(t, false)
			if c.prep != nil {
				c.prep(dir)
			}
			fd := newFakeDisk(t)
			env, _ := testEnv(t, fd, pub)
			var console bytes.Buffer
			env.Console = &console
			err := Run(context.Background(), seqFor(t, url, c.extra), env)
			if c.want == nil {
				if err != nil || !strings.Contains(console.String(), c.msg) {
					t.Fatalf("err = %v, console:\n%s\nwant success saying %q", err, console.String(), c.msg)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want %v saying %q", err, c.want, c.msg)
			}
			if fd.calls["apply"] != 0 || fd.calls["bootfiles"] != 0 {
				t.Errorf("after a refused package: %v", fd.calls)
			}
		})
	}
}

func TestRunFailClosed(t *testing.T) {
	url, pub, _, dir := testPkg(t, false)
	cases := map[string]struct {
		prep func(env *Env)
		want error
	}{
		"bad signature": {func(env *Env) {
			os.WriteFile(filepath.Join(dir, "manifest.json.sig"), signPkg(t, &manifest.Manifest{}, []byte("other"), mustPriv(t)), 0o644)
		}, sign.ErrSignature},
		"wrong key":  {func(env *Env) { env.PublicKey = mustPriv(t).Public().(ed25519.PublicKey) }, sign.ErrSignature},
		"no key":     {func(env *Env) { env.PublicKey = nil }, sign.ErrSignature},
		"wrong hash": {func(env *Env) { corrupt(t, filepath.Join(dir, "os.wim")) }, manifest.ErrChecksum},
		"truncated":  {func(env *Env) { os.Truncate(filepath.Join(dir, "os.wim"), 1000) }, manifest.ErrSize},
		"404":        {func(env *Env) { os.Remove(filepath.Join(dir, "os.wim")) }, httpx.ErrNotFound},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			// Fresh package files for each case.
			url, pub, _, d := testPkg(t, false)
			dir = d
			fd := newFakeDisk(t)
			env, ev := testEnv(t, fd, pub)
			c.prep(env)
			err := Run(context.Background(), seqFor(t, url, ""), env)
			if !errors.Is(err, c.want) || !errors.Is(err, ErrStep) || !strings.Contains(err.Error(), `"fetch"`) {
				t.Fatalf("err = %v, want %v in step fetch", err, c.want)
			}
			if fd.calls["apply"] != 0 || fd.calls["bootfiles"] != 0 {
				t.Errorf("after a failed verification: %v", fd.calls)
			}
			if _, err := os.Stat(filepath.Join(fd.dir, "fs-root/boot")); !os.IsNotExist(err) {
				t.Error("boot files written")
			}
			logs, _ := filepath.Glob(filepath.Join(fd.dir, "fs-root/minint/failure-*.log"))
			if len(logs) != 1 {
				t.Errorf("failure log not saved in the staging folder: %v", logs)
			}
			if !strings.Contains(ev.String(), `"state":"failed"`) {
				t.Error("no failed event")
			}
		})
	}
	_ = url
	_ = pub
}

// signPkg signs a package's manifest as minint package create does.
func signPkg(t testing.TB, m *manifest.Manifest, mb []byte, priv ed25519.PrivateKey) []byte {
	t.Helper()
	sig, err := sign.Sign(mb, priv, m.SignContext())
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func mustPriv(t *testing.T) ed25519.PrivateKey {
	_, privF, _ := sign.GenerateKey()
	p, err := sign.ParsePrivateKey(privF)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func corrupt(t *testing.T, p string) {
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
}

func TestRequirementsNotMet(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	env, ev := testEnv(t, fd, pub)
	env.Inventory.Memory = 64 << 20
	env.Inventory.Disks = []DiskInfo{{Path: "/dev/fake", Size: 128 << 20}, {Path: "/dev/sr0", Size: 1 << 40, BootMedium: true}}
	err := Run(context.Background(), seqFor(t, url, ""), env)
	if err == nil || !strings.Contains(err.Error(), "memory: 64.0 MiB, need at least 128MiB (134217728 bytes)") || !strings.Contains(err.Error(), "disk: largest candidate is 128.0 MiB, need at least 1GiB (1073741824 bytes)") {
		t.Fatalf("err = %v", err)
	}
	if len(fd.calls) != 0 {
		t.Errorf("backend called although requirements failed: %v", fd.calls)
	}
	if !strings.Contains(ev.String(), `"unmet"`) {
		t.Error("no requirements event")
	}
	logs, _ := filepath.Glob(filepath.Join(env.LogDir, "failure-*.log"))
	if len(logs) != 1 {
		t.Errorf("failure log not saved to LogDir: %v", logs)
	}
}

func TestStreamMode(t *testing.T) {
	url, pub, img, _ := testPkg(t, true)
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	if err := Run(context.Background(), seqFor(t, url, "    mode: stream\n"), env); err != nil {
		t.Fatal(err)
	}
	applied, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root/applied"))
	if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
		t.Errorf("applied %q, want %q", applied, want)
	}
	if _, err := os.Stat(filepath.Join(fd.dir, "fs-root/minint/os.wim")); !os.IsNotExist(err) {
		t.Error("stream mode staged the image")
	}
	// Without chunk hashes, stream mode refuses.
	url2, pub2, _, _ := testPkg(t, false)
	fd2 := newFakeDisk(t)
	env2, _ := testEnv(t, fd2, pub2)
	if err := Run(context.Background(), seqFor(t, url2, "    mode: stream\n"), env2); !errors.Is(err, manifest.ErrFormat) {
		t.Fatalf("unchunked stream: %v", err)
	}
}

func TestDryRun(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	var out bytes.Buffer
	env.Console = &out
	env.DryRun = true
	if err := Run(context.Background(), seqFor(t, url, ""), env); err != nil {
		t.Fatal(err)
	}
	for op := range fd.calls {
		if op != "select" {
			t.Errorf("dry run called %s", op)
		}
	}
	for _, want := range []string{"Plan for test", "partition (gpt): esp 64MiB vfat; root rest ext4", "fetch " + url, "reboot"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	if len(fd.power) != 0 {
		t.Error("dry run rebooted")
	}
}

// TestStatusPost: events and the failure log go to the status URL, each
// naming the machine; a log upload that meets a transient failure is
// retried (the log is what the technician needs most).
func TestStatusPost(t *testing.T) {
	var mu sync.Mutex
	var events []map[string]any
	var logs []string
	var machines []string
	logTries := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		machines = append(machines, r.Header.Get(progress.MachineHeader))
		if r.Header.Get("X-Minint-Log") != "" {
			if logTries++; logTries == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			logs = append(logs, string(b))
			return
		}
		var e map[string]any
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("posted %q: %v", b, err)
		}
		events = append(events, e)
	}))
	defer srv.Close()
	url, pub, _, dir := testPkg(t, false)
	os.Remove(filepath.Join(dir, "os.wim")) // 404: fails in fetch
	seq := seqFor(t, url, "")
	seq.StatusURL = srv.URL
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	env.Machine = progress.NewMachine("", "52:54:00:12:34:56", "pc17", "10.0.2.15", "QEMU")
	env.HTTP = &httpx.Client{Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	if err := Run(context.Background(), seq, env); err == nil {
		t.Fatal("no error")
	}
	mu.Lock()
	defer mu.Unlock()
	var sawStart, sawFailed bool
	for _, e := range events {
		sawStart = sawStart || (e["event"] == "step" && e["state"] == "start" && e["op"] == "requirements")
		sawFailed = sawFailed || (e["event"] == "step" && e["state"] == "failed" && e["op"] == "fetch")
	}
	if !sawStart || !sawFailed {
		t.Errorf("posted events lack start/failed (%d events)", len(events))
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "404") || logTries != 2 {
		t.Errorf("uploaded logs %q after %d tries", logs, logTries)
	}
	for _, m := range machines {
		if got, _ := progress.ParseMachine(m); got != env.Machine {
			t.Fatalf("a post named the machine %q, want %+v", m, env.Machine)
		}
	}
}

// powerSpy is a fake disk that calls onPower when a step reboots.
type powerSpy struct {
	*fakeDisk
	onPower func()
}

func (p powerSpy) Power(ctx context.Context, kind string) error {
	p.onPower()
	return p.fakeDisk.Power(ctx, kind)
}

// TestStatusBeforeReboot: when the last step reboots, the status URL has
// heard that the sequence is done before the machine goes away (the
// queue of events does not survive a reboot).
func TestStatusBeforeReboot(t *testing.T) {
	var mu sync.Mutex
	var kinds []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e progress.Event
		json.NewDecoder(r.Body).Decode(&e)
		mu.Lock()
		kinds = append(kinds, e.Kind+" "+e.Op+" "+e.State)
		mu.Unlock()
	}))
	defer srv.Close()
	url, pub, _, _ := testPkg(t, false)
	seq := seqFor(t, url, "")
	seq.StatusURL = srv.URL
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	var atPower []string
	env.Backend = powerSpy{fd, func() {
		mu.Lock()
		atPower = append([]string(nil), kinds...)
		mu.Unlock()
	}}
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	if len(atPower) < 2 || atPower[len(atPower)-1] != "sequence  done" || atPower[len(atPower)-2] != "step reboot done" {
		t.Errorf("when the machine rebooted the status URL had heard %q, want the reboot step and the sequence done last", atPower)
	}
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, k := range kinds {
		if k == "sequence  done" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("sequence done reported %d times", n)
	}
}

func TestRunFromMedium(t *testing.T) {
	_, pub, img, pkgDir := testPkg(t, false)
	medium := t.TempDir()
	os.MkdirAll(filepath.Join(medium, "images"), 0o755)
	if err := os.Rename(pkgDir, filepath.Join(medium, "images/pkg")); err != nil {
		t.Fatal(err)
	}
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	env.MediumDir = medium
	if err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env); err != nil {
		t.Fatal(err)
	}
	applied, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root/applied"))
	if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
		t.Errorf("applied %q, want %q", applied, want)
	}
	if _, err := os.Stat(filepath.Join(fd.dir, "fs-root/minint/os.wim")); !os.IsNotExist(err) {
		t.Error("an image on the medium was copied to the staging folder")
	}
	// A changed byte on the medium stops the sequence before apply.
	corrupt(t, filepath.Join(medium, "images/pkg/os.wim"))
	fd2 := newFakeDisk(t)
	env2, _ := testEnv(t, fd2, pub)
	env2.MediumDir = medium
	if err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env2); !errors.Is(err, manifest.ErrChecksum) || fd2.calls["apply"] != 0 {
		t.Fatalf("corrupt medium: %v, calls %v", err, fd2.calls)
	}
}

// mediumPkg puts a chunked signed package on a medium directory and returns
// the medium, the public key and the image bytes.
func mediumPkg(t *testing.T) (string, ed25519.PublicKey, []byte) {
	_, pub, img, pkgDir := testPkg(t, true)
	medium := t.TempDir()
	os.MkdirAll(filepath.Join(medium, "images"), 0o755)
	if err := os.Rename(pkgDir, filepath.Join(medium, "images/pkg")); err != nil {
		t.Fatal(err)
	}
	return medium, pub, img
}

// headDisk applies like fakeDisk but reads only the image's first and last
// bytes (a WIM's header and tables, as when an image holds more than the
// one applied): what it does not read must still be verified before the
// steps after the apply.
type headDisk struct{ *fakeDisk }

func (d headDisk) Apply(ctx context.Context, req ApplyRequest) error {
	d.count("apply")
	for _, off := range []int64{req.Size - 1000, 0} {
		if _, err := req.Image.ReadAt(make([]byte, 1000), off); err != nil {
			return err
		}
	}
	os.MkdirAll(filepath.Join(req.Dir, "sbin"), 0o755)
	return os.WriteFile(filepath.Join(req.Dir, "sbin/init"), []byte("init"), 0o755)
}

// TestRunFromMediumChunked: an image with chunk hashes on the medium is
// verified while it is applied, each byte hashed once, with no pass of
// its own before apply-image (issue 16.1); a changed chunk fails
// apply-image, whether the apply read it or not, and nothing is made
// bootable.
func TestRunFromMediumChunked(t *testing.T) {
	medium, pub, img := mediumPkg(t)
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	env.MediumDir = medium
	console := &bytes.Buffer{}
	env.Console = console
	var order []string
	env.hook = func(step, point string) error {
		order = append(order, step+" "+point)
		return nil
	}
	if err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env); err != nil {
		t.Fatal(err)
	}
	applied, _ := os.ReadFile(filepath.Join(fd.dir, "fs-root/applied"))
	if want := fmt.Sprintf("%x index 2\n", sha256.Sum256(img)); string(applied) != want {
		t.Errorf("applied %q, want %q", applied, want)
	}
	// The fake apply reads the last 1000 bytes, then everything: with the
	// chunk cache, the file is hashed exactly once.
	if want := fmt.Sprintf("verified whole: every chunk matches the signed manifest, %s hashed", bytesize.Size(len(img)).Human()); !strings.Contains(console.String(), want) {
		t.Errorf("console lacks %q:\n%s", want, console)
	}
	if fmt.Sprint(order) != "[requirements before requirements after select-disk before select-disk after partition before partition after format before format after mount before mount after fetch before fetch after apply-image before apply-image after setup before setup after bootfiles before bootfiles after mark before mark after reboot before reboot after]" {
		t.Errorf("steps ran in order %v", order)
	}

	// A changed chunk is found by apply-image, not by the fetch step
	// (which does not hash the image).
	for _, tc := range []struct {
		name    string
		backend func(*fakeDisk) Backend
	}{
		{"read by the apply", func(f *fakeDisk) Backend { return f }},
		{"not read by the apply", func(f *fakeDisk) Backend { return headDisk{f} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			medium, pub, _ := mediumPkg(t)
			corrupt(t, filepath.Join(medium, "images/pkg/os.wim")) // byte 150000: chunk 2
			fd := newFakeDisk(t)
			env, _ := testEnv(t, fd, pub)
			env.Backend = tc.backend(fd)
			env.MediumDir = medium
			err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env)
			if !errors.Is(err, manifest.ErrChecksum) || !strings.Contains(err.Error(), `"apply-image"`) || !strings.Contains(err.Error(), "bytes 131072-196607 do not match the signed manifest's chunk hash") {
				t.Fatalf("err = %v", err)
			}
			if fd.calls["apply"] != 1 || fd.calls["bootfiles"] != 0 {
				t.Errorf("calls %v: want one apply and no boot files", fd.calls)
			}
			if _, err := os.Stat(filepath.Join(fd.dir, "fs-root/minint/"+answer.ConfigFile)); !os.IsNotExist(err) {
				t.Error("setup ran after a failed verification")
			}
			if _, err := os.Stat(filepath.Join(fd.dir, "fs-esp/boot/extlinux.conf")); !os.IsNotExist(err) {
				t.Error("boot files written")
			}
		})
	}
}

// TestBenchFloors: a benchmark floor applies an image from the medium
// unverified, with a warning, and only the unhashed floor asks the apply
// to skip the WIM's SHA-1s; an image from a server is verified, and its
// SHA-1s checked, whatever the flag says.
func TestBenchFloors(t *testing.T) {
	for _, c := range []struct {
		floor  BenchFloor
		noHash int
	}{
		{BenchUnverifiedMedium, 0},
		{BenchUnhashedMedium, 1},
	} {
		t.Run(string(c.floor), func(t *testing.T) {
			medium, pub, _ := mediumPkg(t)
			corrupt(t, filepath.Join(medium, "images/pkg/os.wim"))
			fd := newFakeDisk(t)
			env, ev := testEnv(t, fd, pub)
			env.MediumDir = medium
			env.bench = c.floor
			if err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env); err != nil {
				t.Fatalf("floor: %v", err)
			}
			if !strings.Contains(ev.String(), `"event":"warning","op":"fetch","msg":"BENCHMARK (minint.bench=`+string(c.floor)+`)`) {
				t.Errorf("no warning event:\n%s", ev)
			}
			if fd.calls["apply"] != 1 || fd.calls["apply-nohash"] != c.noHash || fd.calls["apply-checksums"] != 0 {
				t.Errorf("calls %v, want 1 apply, %d without SHA-1s, none with the manifest's checksum table", fd.calls, c.noHash)
			}

			url, pub, _, dir := testPkg(t, true)
			corrupt(t, filepath.Join(dir, "os.wim"))
			fd = newFakeDisk(t)
			env, _ = testEnv(t, fd, pub)
			env.bench = c.floor
			if err := Run(context.Background(), seqFor(t, url, ""), env); !errors.Is(err, manifest.ErrChecksum) || fd.calls["bootfiles"] != 0 || fd.calls["apply-nohash"] != 0 {
				t.Fatalf("over HTTP with the flag: %v, calls %v", err, fd.calls)
			}
		})
	}
	// A value that names no floor verifies, like none.
	medium, pub, _ := mediumPkg(t)
	corrupt(t, filepath.Join(medium, "images/pkg/os.wim"))
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	env.MediumDir = medium
	env.bench = "unverified"
	if err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env); !errors.Is(err, manifest.ErrChecksum) || fd.calls["bootfiles"] != 0 {
		t.Fatalf("unknown floor: %v, calls %v", err, fd.calls)
	}
}

// TestApplyGetsChecksums: the manifest's WIM checksum table reaches the
// apply in every way of fetching, each of which authenticates every byte
// the apply reads (the benchmark floors, which do not, are in
// TestBenchFloors).
func TestApplyGetsChecksums(t *testing.T) {
	medium, mpub, _ := mediumPkg(t)
	url, pub, _, _ := testPkg(t, true)
	for _, c := range []struct {
		name, manifest, extra string
		pub                   ed25519.PublicKey
	}{
		{"medium, verified while applied", "medium:/images/pkg/manifest.json", "", mpub},
		{"medium, verified before", "medium:/images/pkg/manifest.json", "  - {type: run, name: between, in-target: false, shell: \"true\"}\n", mpub},
		{"pipeline", url, "    mode: pipeline\n", pub},
		{"stage", url, "    mode: stage\n", pub},
		{"stream", url, "    mode: stream\n", pub},
	} {
		t.Run(c.name, func(t *testing.T) {
			fd := newFakeDisk(t)
			env, _ := testEnv(t, fd, c.pub)
			env.MediumDir = medium
			if err := Run(context.Background(), seqFor(t, c.manifest, c.extra), env); err != nil {
				t.Fatal(err)
			}
			if fd.calls["apply"] != 1 || fd.calls["apply-checksums"] != 1 {
				t.Errorf("calls %v, want one apply with the manifest's checksum table", fd.calls)
			}
		})
	}
}

// TestMediumManifestBounded: a manifest on the medium is read only up to
// the size a PE reads over HTTP, before its signature is checked.
func TestMediumManifestBounded(t *testing.T) {
	medium, pub, _ := mediumPkg(t)
	os.WriteFile(filepath.Join(medium, "images/pkg/manifest.json"), bytes.Repeat([]byte(" "), manifest.MaxSize+1), 0o644)
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	env.MediumDir = medium
	if err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", ""), env); !errors.Is(err, httpx.ErrTooLarge) || fd.calls["apply"] != 0 {
		t.Fatalf("err = %v, calls %v; want httpx.ErrTooLarge and no apply", err, fd.calls)
	}
}

// TestFetchMediumVerifiesWhenNotApplied: with another step between fetch
// and apply-image, the image on the medium is hashed whole in the fetch
// step (nothing may read it unverified), and a changed byte stops the
// sequence there.
func TestFetchMediumVerifiesWhenNotApplied(t *testing.T) {
	medium, pub, _ := mediumPkg(t)
	corrupt(t, filepath.Join(medium, "images/pkg/os.wim"))
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, pub)
	env.MediumDir = medium
	extra := "  - type: run\n    name: between\n    in-target: false\n    shell: \"true\"\n"
	err := Run(context.Background(), seqFor(t, "medium:/images/pkg/manifest.json", extra), env)
	if !errors.Is(err, manifest.ErrChecksum) || !strings.Contains(err.Error(), `"fetch"`) || fd.calls["apply"] != 0 {
		t.Fatalf("err = %v, calls %v", err, fd.calls)
	}
}

// TestRunNetwork: the sequence's network: is applied before the first
// step; when it cannot be, nothing runs.
func TestRunNetwork(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	for _, fail := range []bool{false, true} {
		fd := newFakeDisk(t)
		env, _ := testEnv(t, fd, pub)
		seq := seqFor(t, url, "")
		seq.Network = &netconf.Config{Interfaces: []netconf.Interface{{Name: "eth0", Address: netip.MustParsePrefix("192.0.2.10/24")}}}
		var got []string
		env.Network = func(ctx context.Context, cfg netconf.Config) error {
			got = append(got, cfg.Interfaces[0].String())
			if len(fd.calls) != 0 {
				t.Errorf("network configured after steps ran: %v", fd.calls)
			}
			if fail {
				return errors.New("no interface eth0")
			}
			return nil
		}
		err := Run(context.Background(), seq, env)
		if len(got) != 1 || got[0] != "eth0 192.0.2.10/24" {
			t.Errorf("fail=%v: network applied %v", fail, got)
		}
		switch {
		case fail && (err == nil || !strings.Contains(err.Error(), "no interface eth0") || len(fd.calls) != 0):
			t.Errorf("failing network: err %v, disk calls %v", err, fd.calls)
		case !fail && err != nil:
			t.Errorf("err %v", err)
		}
	}
}
