package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestISOCaptureBadInput: a capture ISO's destination and flags are
// checked before anything is built; each mistake is a usage error (exit 2)
// that names it, and no ISO file appears.
func TestISOCaptureBadInput(t *testing.T) {
	dir := t.TempDir()
	seq := filepath.Join(dir, "seq.yaml")
	os.WriteFile(seq, []byte("version: 1\nsteps: []\n"), 0o644)
	out := filepath.Join(dir, "capture.iso")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--capture", "http://10.0.2.2:8080/images/"}, "want an http(s) URL of the WIM file"},
		{[]string{"--capture", "ftp://10.0.2.2/ref.wim"}, "want an http(s) URL of the WIM file"},
		{[]string{"--capture", "10.0.2.2:8080/ref.wim"}, "want an http(s) URL of the WIM file"},
		{[]string{"--capture", "http://10.0.2.2:8080/ref.wim", "--capture-compression", "lzms"}, "compression"},
		{[]string{"--capture", "http://10.0.2.2:8080/ref.wim", "--sequence", seq}, "not both"},
		{[]string{"--capture-compression", "xpress"}, "needs --capture"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(append([]string{"iso", "-o", out, "--pe-dir", dir}, c.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr.String(), c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%v: an ISO was written", c.args)
		}
	}
}

// TestISORefusesBadSequence: `minint iso --sequence` refuses, before
// building anything, a sequence that `sequence check` refuses (the PE
// would only refuse it at boot), with the file, line and column.
func TestISORefusesBadSequence(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.iso")
	for name, src := range map[string]string{
		"clean-first.yaml": "version: 1\nsteps:\n  - {type: mount, existing: true}\n  - {type: clean}\n",
		"nul.yaml":         "version: 1\nsteps:\n  - type: run\n    command: [/bin/echo, \"a\\0b\"]\n",
		"deep.yaml":        "version: 1\nsteps: " + strings.Repeat("[", 5000) + "\n",
	} {
		seq := filepath.Join(dir, name)
		os.WriteFile(seq, []byte(src), 0o644)
		var stdout, stderr bytes.Buffer
		code := runMain([]string{"iso", "-o", out, "--pe-dir", dir, "--sequence", seq}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "--sequence: "+seq+":") {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 naming the file and place", name, code, stderr.String())
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s: an ISO was written", name)
		}
	}
}
