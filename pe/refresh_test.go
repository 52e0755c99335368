package pe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/pe/journal"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/state"
)

// fakeRefresh is fakeDisk with an existing system on it (root and ESP file
// systems as directories) and the RefreshBackend methods; ops records the
// order of what matters for fail-safety.
type fakeRefresh struct {
	*fakeDisk
	uuid string
	ops  []string
}

func (f *fakeRefresh) op(s string) { f.ops = append(f.ops, s) }

func (f *fakeRefresh) root() string { return filepath.Join(f.dir, "fs-root") }
func (f *fakeRefresh) esp() string  { return filepath.Join(f.dir, "fs-esp") }

func (f *fakeRefresh) Staged(ctx context.Context, uuid string) (TargetDisk, []Part, error) {
	if uuid != f.uuid {
		return TargetDisk{}, nil, fmt.Errorf("%w: no file system with UUID %s", diskops.ErrNotFound, uuid)
	}
	p := func(n int, name, typ, fs string) Part {
		return Part{Planned: diskops.Planned{PartitionSpec: diskops.PartitionSpec{Name: name, Type: typ, FS: fs}, Number: n}, Node: fmt.Sprintf("/dev/fake%d", n), FSUUID: "uuid-" + name}
	}
	return TargetDisk{Path: "/dev/fake", Size: 8 << 30}, []Part{p(1, "esp", "esp", "vfat"), p(2, "root", "linux", "ext4")}, nil
}

func (f *fakeRefresh) PinPE(ctx context.Context, esp Part) error {
	f.op("pin")
	_, err := bootloader.SetLoaderDefault(filepath.Join(f.dir, "fs-"+esp.Name), bootloader.PEEntry)
	return err
}

func (f *fakeRefresh) UnpinPE(ctx context.Context, esp Part) error {
	f.op("unpin")
	dir := filepath.Join(f.dir, "fs-"+esp.Name)
	// What bootfiles did on a real ESP: the new system is the default.
	if err := os.WriteFile(filepath.Join(dir, "loader/loader.conf"), []byte("default minint.conf\n"), 0o644); err != nil {
		return err
	}
	return bootloader.RemoveLoaderEntry(dir, bootloader.PEEntry, bootloader.PEDir)
}

func (f *fakeRefresh) Clean(ctx context.Context, root string) error {
	f.op("clean")
	return f.fakeDisk.Clean(ctx, root)
}

func put(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// oldSystem lays out what `minint stage` leaves: an installed system with a
// user, its PE entry on the ESP (one-shot, not the default), the sequence
// in /minint/pe and the state captured while it ran.
func oldSystem(t *testing.T, seqSrc string) *fakeRefresh {
	t.Helper()
	f := &fakeRefresh{fakeDisk: newFakeDisk(t), uuid: "0a1b2c3d-aaaa-4bbb-8ccc-0123456789ab"}
	r, e := f.root(), f.esp()
	put(t, filepath.Join(r, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n")
	put(t, filepath.Join(r, "etc/group"), "root:x:0:\nann:x:1000:\n")
	put(t, filepath.Join(r, "etc/os-release"), "ID=old\n")
	put(t, filepath.Join(r, "home/ann/doc"), "ann's document\n")
	put(t, filepath.Join(r, "opt/from-a"), "only in the old system\n")
	put(t, filepath.Join(r, "sbin/init"), "old init")
	put(t, filepath.Join(r, stagedSequence), seqSrc)
	if _, err := state.Capture(context.Background(), r, filepath.Join(r, "minint/state"), state.Spec{}); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(e, "loader/loader.conf"), "default minint.conf\ntimeout 0\n")
	put(t, filepath.Join(e, "loader/entries/minint.conf"), "title old\n")
	put(t, filepath.Join(e, "loader/entries", bootloader.PEEntry), "title minint PE (refresh)\n")
	put(t, filepath.Join(e, bootloader.PEDir, "vmlinuz"), "kernel")
	return f
}

func refreshSeq(target, manifest, extra string) string {
	return fmt.Sprintf(`version: 1
name: refresh
steps:
  - type: requirements
    min-memory: 128MiB
  - type: mount
    existing: true
    target: %s
  - type: capture-state
  - type: fetch
    manifest: %s
  - type: clean
%s  - type: apply-image
  - type: setup
    hostname: box
    restore-state: {}
  - type: bootfiles
    cmdline: console=ttyS0
  - type: reboot
`, target, manifest, extra)
}

func refreshEnv(t *testing.T, f *fakeRefresh, pub []byte) (*Env, *bytes.Buffer) {
	env, ev := testEnv(t, f.fakeDisk, pub)
	env.Backend = f
	env.Staged = f.uuid
	return env, ev
}

func loaderDefault(t *testing.T, esp string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(esp, "loader/loader.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "default "); ok {
			return v
		}
	}
	return ""
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestRefreshEndToEnd(t *testing.T) {
	url, pub, img, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), url, "")
	f := oldSystem(t, src)
	seq, err := sequence.Parse("refresh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	env, ev := refreshEnv(t, f, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	r := f.root()
	if got := strings.Join(f.ops, " "); got != "pin clean clean unpin" {
		// apply-image cleans again (a no-op on the emptied root) before it
		// applies; pin strictly before the first deletion, unpin last.
		t.Errorf("ops %q, want pin, clean (step), clean (apply-image), unpin", got)
	}
	if applied, _ := os.ReadFile(filepath.Join(r, "applied")); !strings.HasPrefix(string(applied), fmt.Sprintf("%x", sha256sum(img))) {
		t.Errorf("applied %q", applied)
	}
	for _, gone := range []string{"opt/from-a", "home/ann", "etc/os-release"} {
		if exists(filepath.Join(r, gone)) {
			t.Errorf("%s survived the clean", gone)
		}
	}
	m, err := state.ReadManifest(filepath.Join(r, "minint/state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Verify(context.Background(), filepath.Join(r, "minint/state"), m); err != nil {
		t.Errorf("state store after the refresh: %v", err)
	}
	found := false
	for _, e := range m.Entries {
		found = found || e.Path == "home/ann/doc"
	}
	if !found {
		t.Error("the re-capture lost home/ann/doc")
	}
	cfg, err := answer.ReadConfig(filepath.Join(r, answer.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Answer.RestoreState == nil || len(cfg.BootEntries) != 1 {
		t.Errorf("setup config %+v: want restore-state and the boot entry carrying init=", cfg)
	}
	if !exists(filepath.Join(r, "minint", cleaningMarker)) {
		t.Error("no cleaning marker")
	}
	e := f.esp()
	if d := loaderDefault(t, e); d != "minint.conf" {
		t.Errorf("loader default %q after bootfiles, want the new system's", d)
	}
	if exists(filepath.Join(e, "loader/entries", bootloader.PEEntry)) || exists(filepath.Join(e, bootloader.PEDir)) {
		t.Error("the PE's entry or files are still on the ESP")
	}
	j, err := journal.Load(filepath.Join(r, "minint", journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.Origin, "ino ") {
		t.Errorf("journal origin %q", j.Origin)
	}
	if len(f.power) != 1 || f.power[0] != "reboot" {
		t.Errorf("power %v", f.power)
	}
	for _, want := range []string{`"event":"refresh","state":"pinned"`, `"event":"refresh","state":"unpinned"`} {
		if !strings.Contains(ev.String(), want) {
			t.Errorf("no %s event", want)
		}
	}
}

func sha256sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestRefreshFailsBeforeClean: the package is not there. The error does
// not wrap ErrChanged (peinit reboots into the old system), and indeed
// the old system, its boot default and the user's files are untouched.
func TestRefreshFailsBeforeClean(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), strings.Replace(url, "manifest.json", "missing/manifest.json", 1), "")
	f := oldSystem(t, src)
	seq, err := sequence.Parse("refresh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	env, ev := refreshEnv(t, f, pub)
	err = Run(context.Background(), seq, env)
	if err == nil || errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "fetch") {
		t.Fatalf("Run = %v; want the fetch's error, not ErrChanged", err)
	}
	if len(f.ops) != 0 {
		t.Errorf("ops %v before a verified package", f.ops)
	}
	for _, keep := range []string{"opt/from-a", "home/ann/doc", "sbin/init", "etc/os-release"} {
		if !exists(filepath.Join(f.root(), keep)) {
			t.Errorf("%s is gone", keep)
		}
	}
	if d := loaderDefault(t, f.esp()); d != "minint.conf" {
		t.Errorf("loader default %q: the PE was pinned although nothing was deleted", d)
	}
	if !strings.Contains(ev.String(), `"event":"refresh","state":"intact"`) {
		t.Error("no event says the installed system is intact")
	}
}

// TestRefreshFailsAfterClean: once clean started, errors wrap ErrChanged
// (no reboot into a half-deleted system) and the PE is the boot default.
func TestRefreshFailsAfterClean(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), url, "")
	f := oldSystem(t, src)
	seq, _ := sequence.Parse("refresh.yaml", []byte(src))
	env, _ := refreshEnv(t, f, pub)
	env.hook = func(step, point string) error {
		if step == "apply-image" && point == "before" {
			return errors.New("disk on fire")
		}
		return nil
	}
	err := Run(context.Background(), seq, env)
	if !errors.Is(err, ErrChanged) || !errors.Is(err, ErrStep) {
		t.Fatalf("Run = %v, want ErrChanged and ErrStep", err)
	}
	if d := loaderDefault(t, f.esp()); d != bootloader.PEEntry {
		t.Errorf("loader default %q, want the PE while the system is half replaced", d)
	}
	// A PE booted again (the default now) resumes: capture-state is not
	// redone over the cleaned root, and the state store is the one
	// captured from the intact system.
	before, _ := state.ReadManifest(filepath.Join(f.root(), "minint/state"))
	env2, ev2 := refreshEnv(t, f, pub)
	if err := Run(context.Background(), seq, env2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev2.String(), `"op":"capture-state","state":"skipped"`) {
		t.Error("capture-state was not skipped on resume")
	}
	after, err := state.ReadManifest(filepath.Join(f.root(), "minint/state"))
	if err != nil || len(after.Entries) != len(before.Entries) || after.Created != before.Created {
		t.Errorf("state store changed on resume: %v, %d -> %d entries", err, len(before.Entries), len(after.Entries))
	}
	if d := loaderDefault(t, f.esp()); d != "minint.conf" {
		t.Errorf("loader default %q after the resumed run", d)
	}
}

// TestRefreshPowerCutDuringClean: the power goes right after the PE was
// pinned (and again in the middle of apply); each next boot resumes, and
// the end state is the same as without cuts.
func TestRefreshPowerCutDuringClean(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), url, "")
	f := oldSystem(t, src)
	seq, _ := sequence.Parse("refresh.yaml", []byte(src))
	cuts := []struct{ step, point string }{{"clean", "pinned"}, {"apply-image", "after"}}
	for _, c := range cuts {
		env, _ := refreshEnv(t, f, pub)
		env.hook = func(step, point string) error {
			if step == c.step && point == c.point {
				return errors.New("power cut")
			}
			return nil
		}
		if err := Run(context.Background(), seq, env); !errors.Is(err, ErrChanged) {
			t.Fatalf("cut at %s/%s: %v", c.step, c.point, err)
		}
		if d := loaderDefault(t, f.esp()); d != bootloader.PEEntry {
			t.Fatalf("after the cut at %s/%s the boot default is %q, not the PE", c.step, c.point, d)
		}
	}
	env, _ := refreshEnv(t, f, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(f.root(), "opt/from-a")) || !exists(filepath.Join(f.root(), "applied")) {
		t.Error("end state wrong after the cuts")
	}
	m, err := state.ReadManifest(filepath.Join(f.root(), "minint/state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Verify(context.Background(), filepath.Join(f.root(), "minint/state"), m); err != nil {
		t.Errorf("state store: %v", err)
	}
}

// TestRefreshLostJournalAfterClean: whatever happens to the journal, the
// capture never runs again over a cleaned root.
func TestRefreshLostJournalAfterClean(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), url, "")
	f := oldSystem(t, src)
	seq, _ := sequence.Parse("refresh.yaml", []byte(src))
	env, _ := refreshEnv(t, f, pub)
	env.hook = func(step, point string) error {
		if step == "apply-image" && point == "before" {
			return errors.New("power cut")
		}
		return nil
	}
	Run(context.Background(), seq, env)
	before, _ := os.ReadFile(filepath.Join(f.root(), "minint/state", state.IndexName))
	os.Remove(filepath.Join(f.root(), "minint", journal.FileName))
	env2, _ := refreshEnv(t, f, pub)
	err := Run(context.Background(), seq, env2)
	if err == nil || !strings.Contains(err.Error(), "already (partly) cleaned") {
		t.Fatalf("Run without the journal after clean = %v, want capture-state refused", err)
	}
	after, _ := os.ReadFile(filepath.Join(f.root(), "minint/state", state.IndexName))
	if !bytes.Equal(before, after) || len(after) == 0 {
		t.Error("the state store's index changed")
	}
}

// TestRefreshNewStaging: a journal left by an earlier staging (the old
// system ran again since) is not resumed: the capture is redone.
func TestRefreshNewStaging(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), strings.Replace(url, "manifest.json", "missing/manifest.json", 1), "")
	f := oldSystem(t, src)
	seq, _ := sequence.Parse("refresh.yaml", []byte(src))
	env, _ := refreshEnv(t, f, pub)
	if err := Run(context.Background(), seq, env); err == nil {
		t.Fatal("want the fetch to fail")
	}
	// Same staging, booted again: resumes, capture-state done.
	env2, ev2 := refreshEnv(t, f, pub)
	Run(context.Background(), seq, env2)
	if !strings.Contains(ev2.String(), `"op":"capture-state","state":"skipped"`) {
		t.Error("the same staging did not resume")
	}
	// Staged again: stage copies the sequence anew.
	p := filepath.Join(f.root(), stagedSequence)
	os.Remove(p)
	put(t, p+".tmp", src)
	os.Rename(p+".tmp", p)
	env3, ev3 := refreshEnv(t, f, pub)
	Run(context.Background(), seq, env3)
	if strings.Contains(ev3.String(), `"op":"capture-state","state":"skipped"`) || !strings.Contains(ev3.String(), `"op":"capture-state","state":"done"`) {
		t.Errorf("a new staging resumed the old journal:\n%s", ev3.String())
	}
}

func TestRefreshNotStaged(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), url, "")
	f := oldSystem(t, src)
	seq, _ := sequence.Parse("refresh.yaml", []byte(src))
	env, _ := refreshEnv(t, f, pub)
	env.Staged = ""
	if err := Run(context.Background(), seq, env); err == nil || !strings.Contains(err.Error(), "minint.staged") || errors.Is(err, ErrChanged) {
		t.Errorf("no minint.staged: %v", err)
	}
	env.Staged = "ffffffff-0000-4000-8000-000000000000"
	if err := Run(context.Background(), seq, env); !errors.Is(err, diskops.ErrNotFound) {
		t.Errorf("unknown UUID: %v", err)
	}
	// A plain backend cannot refresh.
	env.Staged = f.uuid
	env.Backend = f.fakeDisk
	if err := Run(context.Background(), seq, env); err == nil || !strings.Contains(err.Error(), "cannot refresh") {
		t.Errorf("backend without RefreshBackend: %v", err)
	}
	os.RemoveAll(filepath.Join(f.root(), "minint"))
	env.Backend = f
	if err := Run(context.Background(), seq, env); err == nil || !strings.Contains(err.Error(), "not staged") {
		t.Errorf("root without /minint: %v", err)
	}
	if !exists(filepath.Join(f.root(), "opt/from-a")) {
		t.Error("the old system was touched")
	}
}

func TestRefreshSequenceOrder(t *testing.T) {
	ok := refreshSeq("/mnt/target", "http://h/m.json", "")
	if _, err := sequence.Parse("ok.yaml", []byte(ok)); err != nil {
		t.Fatalf("the refresh sequence is refused: %v", err)
	}
	for _, c := range []struct{ name, src, want string }{
		{"clean without existing root", head + "  - {type: select-disk, disk: {first-largest: true}}\n  - {type: partition, partitions: [{name: root, size: rest, fs: ext4}]}\n  - {type: mount}\n  - {type: capture-state}\n  - {type: fetch, manifest: 'http://h/m.json'}\n  - {type: clean}\n", "existing: true"},
		{"clean before fetch", head + "  - {type: mount, existing: true}\n  - {type: capture-state}\n  - {type: clean}\n  - {type: fetch, manifest: 'http://h/m.json'}\n", "fetch step before it"},
		{"clean after a streamed fetch", head + "  - {type: mount, existing: true}\n  - {type: capture-state}\n  - {type: fetch, manifest: 'http://h/m.json', mode: stream}\n  - {type: clean}\n", "not mode: stream"},
		{"clean without capture", head + "  - {type: mount, existing: true}\n  - {type: fetch, manifest: 'http://h/m.json'}\n  - {type: clean}\n", "capture-state step before it"},
		{"capture after clean", head + "  - {type: mount, existing: true}\n  - {type: capture-state}\n  - {type: fetch, manifest: 'http://h/m.json'}\n  - {type: clean}\n  - {type: capture-state, name: again}\n", "after clean"},
		{"apply without clean", head + "  - {type: mount, existing: true}\n  - {type: capture-state}\n  - {type: fetch, manifest: 'http://h/m.json'}\n  - {type: apply-image}\n", "needs a clean step"},
		{"partition in a refresh", head + "  - {type: select-disk, disk: {first-largest: true}}\n  - {type: partition, partitions: [{name: root, size: rest, fs: ext4}]}\n  - {type: mount, existing: true}\n", "must not partition"},
		{"second mount", head + "  - {type: mount, existing: true}\n  - {type: mount, name: m2, target: /mnt/x}\n", "only the existing root"},
		{"capture before mount", head + "  - {type: capture-state}\n  - {type: mount, existing: true}\n", "mount step before it"},
		{"requirements after clean", head + "  - {type: mount, existing: true}\n  - {type: capture-state}\n  - {type: fetch, manifest: 'http://h/m.json'}\n  - {type: clean}\n  - {type: requirements, min-cpus: 1}\n", "before anything destructive"},
	} {
		_, err := sequence.Parse(c.name, []byte(c.src))
		if !errors.Is(err, sequence.ErrSequence) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want ErrSequence mentioning %q", c.name, err, c.want)
		}
	}
}

// TestRefreshTamperedStateNotCleaned: a store rewritten after the PE's
// capture (consistent hashes, no signature by the capture's key) stops the
// refresh at clean, before anything is deleted: the first boot would
// refuse it, and the data would be gone.
func TestRefreshTamperedStateNotCleaned(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	src := refreshSeq(filepath.Join(t.TempDir(), "target"), url, "")
	f := oldSystem(t, src)
	seq, err := sequence.Parse("refresh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	env, _ := refreshEnv(t, f, pub)
	env.hook = func(step, point string) error {
		if step != "fetch" || point != "before" {
			return nil
		}
		store := filepath.Join(f.root(), "minint/state")
		man, err := os.ReadFile(filepath.Join(store, state.ManifestName))
		if err != nil {
			return err
		}
		man = []byte(strings.Replace(string(man), `"passwd": [`, `"passwd": [ "eve:x:1005:1005::/home/eve:/bin/sh",`, 1))
		sum := sha256.Sum256(man)
		os.WriteFile(filepath.Join(store, state.ManifestName), man, 0o600)
		return os.WriteFile(filepath.Join(store, state.IndexName), fmt.Appendf(nil, "minint-state 1\nmanifest sha256:%x %d\n", sum, len(man)), 0o600)
	}
	err = Run(context.Background(), seq, env)
	if !errors.Is(err, state.ErrUnsigned) {
		t.Fatalf("Run = %v, want ErrUnsigned", err)
	}
	if len(f.ops) != 0 {
		t.Errorf("ops %v with a store that does not verify", f.ops)
	}
	if !exists(filepath.Join(f.root(), "home/ann/doc")) {
		t.Error("home/ann/doc is gone")
	}
}
