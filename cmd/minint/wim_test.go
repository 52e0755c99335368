package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/treetest"
)

// wimRun runs `minint wim ARGS…` and returns the exit status, what went to
// stdout and what went to stderr.
func wimRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(append([]string{"wim"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestWimCLIRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 51, Small: true, NoLinkedSymlinks: true})
	w := filepath.Join(dir, "x.wim")
	events := filepath.Join(dir, "events.jsonl")

	if code, _, stderr := wimRun(t, "capture", src, w, "--name", "test image", "--description", "from the CLI test",
		"--compress", "none", "--check", "--json-events", events); code != 0 {
		t.Fatalf("capture: exit %d\n%s", code, stderr)
	}
	ev, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(ev)), "\n") {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
	}
	if last["op"] != "capture" || last["state"] != "done" {
		t.Errorf("last event %v, want capture done", last)
	}

	code, out, stderr := wimRun(t, "info", w, "--json")
	if code != 0 {
		t.Fatalf("info: exit %d\n%s", code, stderr)
	}
	var info wimInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	if len(info.Images) != 1 || info.Images[0].Name != "test image" || info.Images[0].Description != "from the CLI test" ||
		!info.Integrity || info.Compression != "none" || info.Images[0].Files == 0 {
		t.Errorf("info --json: %+v", info)
	}
	if code, out, _ := wimRun(t, "info", w); code != 0 || !strings.Contains(out, "Name:          test image") {
		t.Errorf("info: exit %d\n%s", code, out)
	}
	code, out, _ = wimRun(t, "dir", w, "--long")
	if code != 0 || !strings.Contains(out, "/files/one-byte") || !strings.Contains(out, "/links/relative -> ../files/one-byte") {
		t.Errorf("dir --long: exit %d\n%s", code, out)
	}
	if code, _, stderr := wimRun(t, "verify", w); code != 0 {
		t.Errorf("verify: exit %d\n%s", code, stderr)
	}

	apply := filepath.Join(dir, "apply")
	if code, _, stderr := wimRun(t, "apply", w, "test image", apply); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	want, err := treetest.Snapshot(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := treetest.Snapshot(apply)
	if err != nil {
		t.Fatal(err)
	}
	if d := treetest.Diff(want, got, treetest.WIMOptions()); len(d) > 0 {
		t.Errorf("apply: trees differ:\n%s", strings.Join(d, "\n"))
	}

	// extract puts each path directly into --dest-dir (--dest is the same
	// flag), like wimlib-imagex; --preserve-dir-structure keeps the image's
	// directories.
	for _, c := range []struct {
		flags []string
		files map[string]string // image path -> extracted path
	}{
		{[]string{"--dest"}, map[string]string{"dirs/a/top.txt": "top.txt", "modes/setuid": "modes/setuid"}},
		{[]string{"--dest-dir"}, map[string]string{"dirs/a/top.txt": "top.txt", "modes/setuid": "modes/setuid"}},
		{[]string{"--preserve-dir-structure", "--dest-dir"}, map[string]string{"dirs/a/top.txt": "dirs/a/top.txt", "modes/setuid": "modes/setuid"}},
	} {
		ext := filepath.Join(dir, "extract"+strings.Join(c.flags, ""))
		args := append([]string{"extract", w, "1", "/dirs/a/top.txt", "/modes"}, append(c.flags, ext)...)
		if code, _, stderr := wimRun(t, args...); code != 0 {
			t.Fatalf("extract %v: exit %d\n%s", c.flags, code, stderr)
		}
		for in, out := range c.files {
			a, _ := os.ReadFile(filepath.Join(src, in))
			b, err := os.ReadFile(filepath.Join(ext, out))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("extract %v: %s as %s: %v", c.flags, in, out, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(ext, "files")); err == nil {
			t.Errorf("extract wrote /files, which was not asked for")
		}
	}
}

func TestWimCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(dir, "x.wim")
	if code, _, stderr := wimRun(t, "capture", src, w, "--compress=none"); code != 0 {
		t.Fatalf("capture: exit %d\n%s", code, stderr)
	}
	if code, out, _ := wimRun(t, "info", w, "1"); code != 0 || !strings.Contains(out, "Name:          src\n") {
		t.Errorf("capture without --name: the image is not named after the source directory:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"capture"}, 2, "want 2 to 4 arguments, got 0"},
		{[]string{"capture", src, filepath.Join(dir, "y.wim"), "--compress=zip"}, 2, "--compress"},
		{[]string{"capture", src, w}, 1, "already exists"},
		{[]string{"capture", filepath.Join(dir, "nope"), filepath.Join(dir, "z.wim")}, 1, "no such file"},
		{[]string{"capture", src, filepath.Join(dir, "z.wim"), "--no-such-flag"}, 2, "unknown flag"},
		{[]string{"apply", w}, 2, "want 2 to 3 arguments"},
		{[]string{"apply", w, "7", filepath.Join(dir, "out")}, 2, "image 7"},
		{[]string{"apply", w, "no such name", filepath.Join(dir, "out")}, 2, `no image named "no such name"`},
		{[]string{"info", filepath.Join(dir, "missing.wim")}, 1, "no such file"},
		{[]string{"info", src + "/f"}, 1, "invalid format"},
		{[]string{"extract", w, "1", "--dest", dir}, 2, "want at least 3 arguments, got 2"},
		{[]string{"capture", src, filepath.Join(dir, "y.wim"), "name", "--name", "other"}, 2, "image name given both as an argument and with --name"},
		{[]string{"capture", src, filepath.Join(dir, "y.wim"), "name", "desc", "--description", "other"}, 2, "--description"},
		{[]string{"capture", src, filepath.Join(dir, "y.wim"), "a", "b", "c"}, 2, "want 2 to 4 arguments, got 5"},
		{[]string{"split", w, filepath.Join(dir, "p.wim"), "10"}, 2, "must end in .swm"},
		{[]string{"split", w, filepath.Join(dir, "p.swm"), "0"}, 2, "SIZE: 0 bytes is too small: at least 1MiB (1048576 bytes)"},
		{[]string{"split", w, filepath.Join(dir, "p.swm"), "512K"}, 2, "SIZE: 512KiB (524288 bytes) is too small"},
		{[]string{"split", w, filepath.Join(dir, "p.swm"), "4 parsecs"}, 2, `invalid size "4 parsecs"`},
		{[]string{"export", w, "1"}, 2, "want 3 to 5 arguments, got 2"},
		{[]string{"export", w, "1", w, "--compress=lzx"}, 2, "keeps its own compression"},
		{[]string{"append", src, w, "--compress=lzx"}, 2, "append keeps the WIM's compression"},
	} {
		code, _, stderr := wimRun(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("minint wim %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "z.wim")); err == nil {
		t.Errorf("a failed capture left z.wim behind")
	}
	// Help is not an error, and goes to stdout.
	if code, stdout, stderr := wimRun(t, "apply", "--help"); code != 0 || !strings.Contains(stdout, "Usage: minint wim apply") {
		t.Errorf("apply --help: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestWimCLIConvert: append, export and split, read back through the CLI.
func TestWimCLIConvert(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	treetest.Generate(t, a, treetest.Options{Seed: 61, Small: true, NoLinkedSymlinks: true})
	treetest.Generate(t, b, treetest.Options{Seed: 62, NoLinkedSymlinks: true})
	w := filepath.Join(dir, "x.wim")
	for _, args := range [][]string{
		{"capture", a, w, "--compress=none"},
		{"append", b, w, "--name", "second"},
		{"export", w, "second", filepath.Join(dir, "e.wim"), "--compress=none"},
		{"export", w, "1", filepath.Join(dir, "e.wim"), "--name", "first again"},
		{"split", filepath.Join(dir, "e.wim"), filepath.Join(dir, "p.swm"), "1"},
	} {
		if code, _, stderr := wimRun(t, args...); code != 0 {
			t.Fatalf("minint wim %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
	}
	code, out, _ := wimRun(t, "info", filepath.Join(dir, "p.swm"), "--json")
	var info wimInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || len(info.Images) != 2 ||
		info.Images[0].Name != "second" || info.Images[1].Name != "first again" || info.TotalParts < 2 {
		t.Fatalf("info of the split set: exit %d\n%s", code, out)
	}
	for sel, src := range map[string]string{"second": b, "first again": a} {
		out := filepath.Join(dir, "out-"+strings.ReplaceAll(sel, " ", "-"))
		if code, _, stderr := wimRun(t, "apply", filepath.Join(dir, "p.swm"), sel, out); code != 0 {
			t.Fatalf("apply %s: exit %d\n%s", sel, code, stderr)
		}
		want, _ := treetest.Snapshot(src)
		got, _ := treetest.Snapshot(out)
		if d := treetest.Diff(want, got, treetest.WIMOptions()); len(d) > 0 {
			t.Errorf("image %q through append, export and split: trees differ:\n%s", sel, strings.Join(d, "\n"))
		}
	}
	if code, _, stderr := wimRun(t, "verify", filepath.Join(dir, "p.swm")); code != 0 {
		t.Errorf("verify of the split set: exit %d\n%s", code, stderr)
	}
}

// TestWimCLIConfig: --config leaves out what the exclusion list names, in
// wimlib's syntax, and a bad config file is reported by name.
func TestWimCLIConfig(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 71, Small: true})
	cfg := filepath.Join(dir, "capture.ini")
	if err := os.WriteFile(cfg, []byte("[ExclusionList]\n/files\n*.txt\n[ExclusionException]\n/dirs/a/top.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(dir, "x.wim")
	if code, _, stderr := wimRun(t, "capture", src, w, "--compress=xpress", "--config", cfg); code != 0 {
		t.Fatalf("capture --config: exit %d\n%s", code, stderr)
	}
	code, out, _ := wimRun(t, "dir", w)
	if code != 0 {
		t.Fatalf("dir: exit %d", code)
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		listed[l] = true
	}
	for p, want := range map[string]bool{
		"/files": false, "/files/one-byte": false, "/dirs/a/b/c/d/e/f/g/h/deep.txt": false,
		"/dirs/a/top.txt": true, "/dup/a": true, "/modes/setuid": true,
	} {
		if listed[p] != want {
			t.Errorf("%s listed: %v, want %v", p, listed[p], want)
		}
	}
	if code, _, stderr := wimRun(t, "capture", src, filepath.Join(dir, "y.wim"), "--config", filepath.Join(dir, "missing.ini")); code != 1 || !strings.Contains(stderr, "missing.ini") {
		t.Errorf("capture with a missing config: exit %d\n%s", code, stderr)
	}
}

// TestWimCLIParity: what wimlib-imagex users type works the same way.
func TestWimCLIParity(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 52, Small: true, NoLinkedSymlinks: true, PortableNames: true})
	w := filepath.Join(dir, "x.wim")

	// NAME and DESCRIPTION as arguments.
	if code, _, stderr := wimRun(t, "capture", src, w, "base image", "the first one", "--compress=none"); code != 0 {
		t.Fatalf("capture SRC WIM NAME DESCRIPTION: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := wimRun(t, "append", src, w, "second"); code != 0 {
		t.Fatalf("append SRC WIM NAME: exit %d\n%s", code, stderr)
	}
	code, out, _ := wimRun(t, "info", w, "--json")
	var info wimInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || len(info.Images) != 2 ||
		info.Images[0].Name != "base image" || info.Images[0].Description != "the first one" || info.Images[1].Name != "second" {
		t.Fatalf("info after capture and append with arguments: exit %d\n%s", code, out)
	}

	// A name in use is refused, by append and by export, and nothing is
	// added.
	for _, args := range [][]string{
		{"append", src, w, "second"},
		{"append", src, w, "--name", "base image"},
		{"export", w, "1", w},
	} {
		if code, _, stderr := wimRun(t, args...); code != 1 || !strings.Contains(stderr, "duplicate image name") {
			t.Errorf("minint wim %s: exit %d, want 1 and a duplicate name error\n%s", strings.Join(args, " "), code, stderr)
		}
	}
	if code, _, stderr := wimRun(t, "export", w, "1", w, "thirdd"); code != 0 {
		t.Errorf("export under a new name given as an argument: exit %d\n%s", code, stderr)
	}
	if code, out, _ := wimRun(t, "info", w, "--json"); code != 0 || json.Unmarshal([]byte(out), &info) != nil || len(info.Images) != 3 {
		t.Errorf("after the refused appends: exit %d\n%s", code, out)
	}

	// A WIM with two images of one name (from another tool: edit the XML,
	// which nothing checksums): selecting by that name is ambiguous.
	b, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	from, to := utf16le("second"), utf16le("thirdd")
	copy(b[bytes.LastIndex(b, from):], to) // the last XML data is the current one
	dup := filepath.Join(dir, "dup.wim")
	if err := os.WriteFile(dup, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := wimRun(t, "dir", dup, "thirdd"); code != 2 || !strings.Contains(stderr, "images 2, 3 are all named") {
		t.Errorf("dir by a name two images carry: exit %d, want 2 and an ambiguity error\n%s", code, stderr)
	}
	if code, _, stderr := wimRun(t, "dir", dup, "3"); code != 0 {
		t.Errorf("dir by index: exit %d\n%s", code, stderr)
	}

	// dir -l prints modes as ls -l does: compare with GNU ls on the source.
	code, out, stderr := wimRun(t, "dir", w, "1", "-l")
	if code != 0 {
		t.Fatalf("dir -l: exit %d\n%s", code, stderr)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		path := line[strings.Index(line, " /")+1:]
		if i := strings.Index(path, " -> "); i >= 0 {
			path = path[:i]
		}
		if path == "/" || strings.ContainsAny(path, "\n\t") {
			continue
		}
		ls, err := exec.Command("ls", "-ld", filepath.Join(src, path)).Output()
		if err != nil {
			t.Fatalf("ls -ld %s: %v", path, err)
		}
		want := strings.TrimRight(strings.Fields(string(ls))[0], ".+")
		if f[0] != want {
			t.Errorf("dir -l %s: mode %s, ls -l says %s", path, f[0], want)
		}
		checked++
	}
	for _, want := range []string{"-rwsr-xr-x", "drwxrwxrwt", "drwxrwsr-x", "lrwxrwxrwx", "-rwsrwsrwt", "----------"} {
		if !strings.Contains(out, want+" ") {
			t.Errorf("dir -l shows no %s entry:\n%s", want, out)
		}
	}
	if checked < 20 {
		t.Errorf("dir -l: only %d lines compared with ls", checked)
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r), 0)
	}
	return b
}
