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
