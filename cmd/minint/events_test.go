package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/treetest"
)

// TestJSONEventsOwnStdout runs every command that has --json-events with
// --json-events -: stdout must then carry only JSON-lines events, and what
// the command says for people (plans, tables, "wrote …", progress) must
// arrive on stderr instead.
func TestJSONEventsOwnStdout(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(name, content string) string {
		t.Helper()
		os.MkdirAll(filepath.Dir(p(name)), 0o755)
		if err := os.WriteFile(p(name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p(name)
	}
	treetest.Generate(t, p("src"), treetest.Options{Seed: 7, Small: true, NoLinkedSymlinks: true})
	sparse := func(name string, size int64) string {
		f, err := os.Create(p(name))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size)
		f.Close()
		return p(name)
	}
	write("seq.yaml", "version: 1\nname: demo\nsteps:\n  - type: requirements\n    min-memory: 256MiB\n  - type: run\n    shell: echo hi\n  - type: poweroff\n")
	write("layout.yaml", "partitions:\n  - {name: esp, size: 40M, type: esp, fs: vfat}\n  - {name: root, size: rest}\n")
	write("cleanroot/etc/hostname", "pc17\n")
	os.MkdirAll(p("cleanroot/minint"), 0o755)
	writeWIM(t, p("pkg/os.wim"))
	write("pe/vmlinuz", strings.Repeat("k", 100000))
	write("pe/initramfs.cpio.gz", emptyInitramfs) // iso customize and show read it
	write("pe/pe.json", `{"kernel": "vmlinuz", "initramfs": "initramfs.cpio.gz", "id": "abc", "kernel_version": "6.1"}`)
	// A stand-in for QEMU that boots a "PE" which reports success on the
	// serial console at once.
	write("bin/qemu-system-x86_64", "#!/bin/sh\necho 'minint PE starting'\necho '{\"event\":\"pe\",\"state\":\"done\"}'\n")
	os.Chmod(p("bin/qemu-system-x86_64"), 0o755)
	write("accounts/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n")
	write("accounts/etc/group", "root:x:0:\nann:x:1000:\n")
	write("accounts/home/ann/doc.txt", "hello\n")
	write("stagehost/efivars/.keep", "")
	if code, _, stderr := runCLI(t, "keygen", p("k")); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}

	isoTools := true
	for _, f := range []string{"/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"} {
		if _, err := os.Stat(f); err != nil {
			isoTools = false
		}
	}
	root := os.Geteuid() == 0
	cases := []struct {
		path   string // the command
		args   []string
		code   int
		stderr string // what people are told, now on stderr
		skip   bool
	}{
		{"build", []string{"--kernel", p("no-such-vmlinuz"), "-o", p("pe-out")}, 1, "no-such-vmlinuz", false},
		{"iso", []string{"--pe-dir", p("pe"), "-o", p("m.iso")}, 0, "media id", !isoTools},
		{"netboot", []string{"--pe-dir", p("pe"), "-o", p("nb")}, 0, "media id", !isoTools},
		{"netboot customize", []string{p("nb"), "--nameserver", "192.0.2.53"}, 0, "media id", !isoTools},
		{"iso customize", []string{p("m.iso"), "-o", p("c.iso"), "--sequence", p("seq.yaml")}, 0, "media id", !isoTools},
		{"qemu", []string{"--kernel", p("pe/vmlinuz"), "--no-net", "--log", ""}, 0, "minint PE starting", false},
		{"sequence check", []string{p("seq.yaml")}, 0, "valid (3 steps", false},
		{"wim capture", []string{p("src"), p("x.wim"), "--name", "one"}, 0, "capture: done", false},
		{"wim append", []string{p("src"), p("x.wim"), "--name", "two"}, 0, "append: done", false},
		{"wim apply", []string{p("x.wim"), "two", p("applied")}, 0, "apply: done", false},
		{"wim extract", []string{p("x.wim"), "one", "/files", "--dest", p("extracted")}, 0, "extract: done", false},
		{"wim verify", []string{p("x.wim")}, 0, "OK", false},
		{"wim export", []string{p("x.wim"), "one", p("e.wim")}, 0, "export: done", false},
		{"package create", []string{"--key", p("k.key"), p("pkg")}, 0, "wrote ", false},
		{"package verify", []string{"--key", p("k.pub"), p("pkg")}, 0, "1 file verified", false},
		{"disk partition", []string{"--layout", p("layout.yaml"), "--yes", sparse("disk.img", 100<<20)}, 0, "NAME", false},
		{"disk clean", []string{"--yes", p("cleanroot")}, 0, "deleted 2 entries", false},
		{"disk erase", []string{"--yes", "--samples", "4", sparse("erase.img", 4<<20)}, 0, "erased", false},
		{"state capture", []string{"--root", p("accounts"), "--key", p("k.key"), p("store")}, 0, "entries", !root},
		{"state push", []string{p("store"), p("share")}, 0, "push-state: done", !root},
		{"state pull", []string{"--key", p("k.pub"), p("share"), p("pulled")}, 0, "pull-state: done", !root},
		{"stage", []string{"--root", p("accounts"), "--efivars", p("stagehost/efivars"), "--capture-only", "--yes"}, 0, "capture: done", !root},
	}
	t.Setenv("PATH", p("bin")+":"+os.Getenv("PATH"))
	tested := map[string]bool{}
	for _, c := range cases {
		tested[c.path] = true
		if c.skip {
			t.Logf("minint %s: skipped (needs root or host packages)", c.path)
			continue
		}
		args := append(argv(c.path, c.args...), "--json-events", "-")
		code, stdout, stderr := runCLI(t, args...)
		if code != c.code || !strings.Contains(stderr, c.stderr) {
			t.Errorf("minint %s: exit %d (want %d), stderr lacks %q:\n%s", strings.Join(args, " "), code, c.code, c.stderr, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		for _, l := range lines {
			var ev map[string]any
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["event"] == nil {
				t.Errorf("minint %s: stdout line %q is not a JSON event (%v)", c.path, l, err)
			}
		}
		if stdout == "" {
			t.Errorf("minint %s: no events on stdout", c.path)
		}
	}
	for path, c := range visibleCommands() {
		if c.Flags().Lookup("json-events") != nil && !tested[path] {
			t.Errorf("minint %s has --json-events but no case here", path)
		}
	}
}

// TestQuiet: -q leaves out progress, not results or errors.
func TestQuiet(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 8, Small: true, NoLinkedSymlinks: true})
	w := filepath.Join(dir, "q.wim")
	if code, stdout, stderr := runCLI(t, "wim", "capture", "-q", src, w); code != 0 || stdout != "" || stderr != "" {
		t.Errorf("wim capture -q: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, "wim", "capture", src, w+"2"); code != 0 || !strings.Contains(stderr, "capture: done") {
		t.Errorf("wim capture without -q shows no progress: %q", stderr)
	}
	if code, _, stderr := runCLI(t, "wim", "capture", "-q", src, w); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("wim capture -q onto an existing WIM: exit %d, stderr %q", code, stderr)
	}
}

// TestDestructiveVerbsAsk: without --yes and without a terminal, every
// destructive disk verb refuses and changes nothing; --dry-run says what it
// would do and changes nothing either.
func TestDestructiveVerbsAsk(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	data := bytes.Repeat([]byte("precious"), 4<<20/8)
	os.WriteFile(img, data, 0o644)
	for _, args := range [][]string{
		{"disk", "erase", img},
		{"disk", "format", "--fs", "vfat", img},
		{"disk", "erase", "--dry-run", img},
		{"disk", "format", "--fs", "vfat", "--dry-run", img},
	} {
		code, stdout, stderr := runCLI(t, args...)
		dry := args[len(args)-2] == "--dry-run"
		switch {
		case dry && (code != 0 || !strings.HasPrefix(stdout, "would ")):
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		case !dry && (code != 1 || !strings.Contains(stderr, "add --yes")):
			t.Errorf("%v: exit %d, stderr %q; want a refusal asking for --yes", args, code, stderr)
		}
		if b, _ := os.ReadFile(img); !bytes.Equal(b, data) {
			t.Fatalf("%v changed the disk", args)
		}
	}
}
