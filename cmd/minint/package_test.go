package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sign"
)

// run runs the CLI and returns its exit code and everything it printed.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := runMain(args, &out, &out)
	return code, out.String()
}

func TestPackageCommands(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "os.wim"), bytes.Repeat([]byte("wim"), 100000), 0o644)
	key := filepath.Join(dir, "k")
	if code, out := run(t, "keygen", key); code != 0 {
		t.Fatalf("keygen: %d %s", code, out)
	}
	if fi, err := os.Stat(key + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi, err)
	}
	if code, _ := run(t, "keygen", key); code != 1 {
		t.Error("keygen overwrote an existing key")
	}
	if code, out := run(t, "package", "create", "--key", key+".key", pkg); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 0 {
		t.Fatalf("verify: %d %s", code, out)
	}
	// Another key, then a changed file: both rejected.
	run(t, "keygen", filepath.Join(dir, "other"))
	if code, out := run(t, "package", "verify", "--key", filepath.Join(dir, "other.pub"), pkg); code != 1 || !strings.Contains(out, "signature") {
		t.Errorf("verify with another key: %d %s", code, out)
	}
	// A signed manifest whose chunk hashes contradict the file (the PE
	// checks chunks only): rejected too.
	mb, _ := os.ReadFile(filepath.Join(pkg, "manifest.json"))
	var m manifest.Manifest
	json.Unmarshal(mb, &m)
	m.Files[0].Chunks[0] = strings.Repeat("0", 64)
	mb, _ = json.Marshal(m)
	kb, _ := os.ReadFile(key + ".key")
	priv, err := sign.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pkg, "manifest.json"), mb, 0o644)
	os.WriteFile(filepath.Join(pkg, "manifest.sig"), sign.Sign(mb, priv), 0o644)
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 1 || !strings.Contains(out, "chunk hash") {
		t.Errorf("verify a manifest whose chunks contradict the file: %d %s", code, out)
	}
	if code, out := run(t, "package", "create", "--key", key+".key", pkg); code != 0 {
		t.Fatalf("create again: %d %s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(pkg, "os.wim"))
	b[10] ^= 1
	os.WriteFile(filepath.Join(pkg, "os.wim"), b, 0o644)
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 1 || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("verify a changed file: %d %s", code, out)
	}
	if code, _ := run(t, "package", "create", pkg); code != 2 {
		t.Error("create without --key is not a usage error")
	}
}

func TestSequenceCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("version: 1\nsteps:\n  - type: requirements\n    min-memory: 256MiB\n  - type: run\n    shell: echo hi\n  - type: poweroff\n"), 0o644)
	code, out := run(t, "sequence", "check", good)
	if code != 0 || !strings.Contains(out, "[2/3] run: run: /bin/sh -c echo hi") || !strings.Contains(out, "valid (3 steps") {
		t.Errorf("check good: %d %s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nsteps:\n  - type: run\n    shell: x\n    timout: 5m\n"), 0o644)
	code, out = run(t, "sequence", "check", bad)
	if code != 1 || !strings.Contains(out, `bad.yaml:5:5: unknown key "timout": did you mean "timeout"?`) {
		t.Errorf("check bad: %d %s", code, out)
	}
}
