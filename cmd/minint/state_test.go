package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateCommands: capture → verify → push to a directory → pull →
// restore, then a damaged copy is refused by verify.
func TestStateCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: restores owners")
	}
	old, dst, work := t.TempDir(), t.TempDir(), t.TempDir()
	for r, files := range map[string]map[string]string{
		old: {"etc/passwd": "ann:x:1000:1000::/home/ann:/bin/sh\n", "etc/group": "ann:x:1000:\n", "home/ann/doc": "hello\n"},
		dst: {"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/group": "root:x:0:\n"},
	} {
		for p, c := range files {
			os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(r, p), []byte(c), 0o644)
		}
	}
	for _, p := range []string{"home/ann", "home/ann/doc"} {
		os.Chown(filepath.Join(old, p), 1000, 1000) // a restore takes only the user's own files from a home
	}
	store, share, pulled := filepath.Join(old, "minint/state"), filepath.Join(work, "share"), filepath.Join(work, "pulled")
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := runMain(args, &out, &errOut); code != want {
			t.Fatalf("minint %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
		}
		return errOut.String()
	}
	key, other := filepath.Join(work, "state"), filepath.Join(work, "other")
	run(0, "keygen", key)
	run(0, "keygen", other)
	run(2, "state", "capture", "--root", old, store) // no --key
	run(0, "state", "capture", "--root", old, "--key", key+".key", store)
	run(0, "state", "verify", "--key", key+".pub", store)
	run(0, "state", "push", store, share)
	if e := run(1, "state", "pull", "--key", other+".pub", share, pulled); !strings.Contains(e, "not signed by a trusted state key") {
		t.Errorf("pull with a foreign key: %s", e)
	}
	run(2, "state", "pull", share, pulled) // no --key
	run(0, "state", "pull", "--key", other+".pub", "--key", key+".pub", share, pulled)
	run(1, "state", "restore", "--root", dst, "--key", other+".pub", pulled)
	run(0, "state", "restore", "--root", dst, "--key", key+".pub", pulled)
	if b, _ := os.ReadFile(filepath.Join(dst, "home/ann/doc")); string(b) != "hello\n" {
		t.Errorf("restored %q", b)
	}
	os.WriteFile(filepath.Join(share, "manifest.json"), []byte("{}"), 0o644)
	if e := run(1, "state", "verify", "--key", key+".pub", share); !strings.Contains(e, "checksum") {
		t.Errorf("verify of a damaged store: %s", e)
	}
	run(2, "state", "restore", "--key", key+".pub", pulled) // no --root: never defaults to /
}
