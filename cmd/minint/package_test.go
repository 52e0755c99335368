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
	"github.com/minint/minint/wim"
	"github.com/minint/minint/wim/wimtest"
)

// writeWIM writes a small real WIM at p (package create decodes the
// image) and returns its size.
func writeWIM(t testing.TB, p string) int64 {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "hostname"), []byte("pc17\n"), 0o644)
	os.WriteFile(filepath.Join(src, "data"), bytes.Repeat([]byte("wim"), 100000), 0o644)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	return wimtest.Capture(t, src, p, wim.WriterOptions{Compression: wim.CompressionXPRESS}, wim.ImageOptions{Name: "test"})
}

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
	writeWIM(t, filepath.Join(pkg, "os.wim"))
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
	// The medium's short signature name still verifies, with a warning;
	// a signature larger than any the PE reads does not.
	long, short := filepath.Join(pkg, manifest.SignatureName), filepath.Join(pkg, manifest.ShortSignatureName)
	os.Rename(long, short)
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 0 || !strings.Contains(out, "signature under its old name") {
		t.Errorf("verify with the short signature name: %d %s", code, out)
	}
	os.Rename(short, long)
	good, _ := os.ReadFile(long)
	os.WriteFile(long, append(good, make([]byte, sign.MaxSize)...), 0o644)
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 1 || !strings.Contains(out, "too large") {
		t.Errorf("verify with an oversized signature: %d %s", code, out)
	}
	os.WriteFile(long, good, 0o644)
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
	sig, err := sign.Sign(mb, priv, m.SignContext())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pkg, manifest.SignatureName), sig, 0o644)
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
	for size, want := range map[string]string{"1K": "too small: at least 4KiB", "65M": "too large: at most 64MiB"} {
		if code, out := run(t, "package", "create", "--key", key+".key", "--chunk-size", size, pkg); code != 2 || !strings.Contains(out, want) {
			t.Errorf("--chunk-size %s: %d %s", size, code, out)
		}
	}

	// The image's XXH64 table is recorded by default, which takes a WIM
	// whose data passes its SHA-1s; --wim-checksums=false leaves it out.
	writeWIM(t, filepath.Join(pkg, "os.wim"))
	if code, out := run(t, "package", "create", "--key", key+".key", pkg); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	mb, _ = os.ReadFile(filepath.Join(pkg, "manifest.json"))
	if !strings.Contains(string(mb), `"wim_xxh64": "`) {
		t.Errorf("manifest without wim_xxh64:\n%s", mb)
	}
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 0 || !strings.Contains(out, "decode os.wim") {
		t.Errorf("verify with the table: %d %s", code, out)
	}
	// A signed table that contradicts the image: verify refuses it.
	json.Unmarshal(mb, &m)
	m.Files[0].WIMChecksums[0] ^= 1
	mb, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(pkg, "manifest.json"), mb, 0o644)
	sig, _ = sign.Sign(mb, priv, m.SignContext())
	os.WriteFile(filepath.Join(pkg, manifest.SignatureName), sig, 0o644)
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 1 || !strings.Contains(out, "checksums in wim_xxh64 differ") {
		t.Errorf("verify a table that contradicts the image: %d %s", code, out)
	}
	os.WriteFile(filepath.Join(pkg, "os.wim"), bytes.Repeat([]byte("wim"), 1000), 0o644)
	if code, out := run(t, "package", "create", "--key", key+".key", pkg); code != 1 || !strings.Contains(out, "os.wim: wim: invalid format") {
		t.Errorf("create with an image that is no WIM: %d %s", code, out)
	}
	if code, out := run(t, "package", "create", "--key", key+".key", "--wim-checksums=false", pkg); code != 0 {
		t.Errorf("create --wim-checksums=false with an image that is no WIM: %d %s", code, out)
	}
	if mb, _ = os.ReadFile(filepath.Join(pkg, "manifest.json")); strings.Contains(string(mb), "wim_xxh64") {
		t.Errorf("--wim-checksums=false wrote a table:\n%s", mb)
	}

	// Chunks are hashed with BLAKE3 unless --chunk-hash says SHA-256,
	// which leaves chunk_hash out for PEs from before it.
	if !strings.Contains(string(mb), `"chunk_hash": "blake3"`) {
		t.Errorf("default manifest without BLAKE3 chunks:\n%s", mb)
	}
	if code, out := run(t, "package", "create", "--key", key+".key", "--wim-checksums=false", "--chunk-hash", "sha256", pkg); code != 0 || !strings.Contains(out, "image os.wim index 1 (4MiB chunks hashed with sha256)") {
		t.Errorf("create --chunk-hash sha256: %d %s", code, out)
	}
	if mb, _ = os.ReadFile(filepath.Join(pkg, "manifest.json")); strings.Contains(string(mb), "chunk_hash") || !strings.Contains(string(mb), `"chunks"`) {
		t.Errorf("--chunk-hash sha256 wrote:\n%s", mb)
	}
	if code, out := run(t, "package", "verify", "--key", key+".pub", pkg); code != 0 {
		t.Errorf("verify SHA-256 chunks: %d %s", code, out)
	}
	if code, out := run(t, "package", "create", "--key", key+".key", "--chunk-hash", "md5", pkg); code != 2 || !strings.Contains(out, `--chunk-hash "md5": want blake3 or sha256`) {
		t.Errorf("create --chunk-hash md5: %d %s", code, out)
	}
}

// TestReadmeKeyFlow: the README's commands as pasted (issue 12.6): keygen
// makes keys/ itself; package create and package sign name signatures
// FILE.sig; the signatures bind name, version and purpose, which verify
// and the PE check.
func TestReadmeKeyFlow(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.MkdirAll("pkg", 0o755)
	writeWIM(t, "pkg/os.wim")
	os.WriteFile("pkg/manifest.sig", []byte("stale\n"), 0o644) // from an older minint
	seq := "version: 1\nsteps:\n  - type: poweroff\n"
	os.WriteFile("seq.yaml", []byte(seq), 0o644)
	for _, args := range [][]string{
		{"keygen", "keys/deploy"},
		{"package", "create", "--key", "keys/deploy.key", "--name", "debian-12", "--version", "12.4", "--expires", "90d", "pkg"},
		{"package", "verify", "--key", "keys/deploy.pub", "--package", "debian-12", "--min-version", "12.4", "pkg"},
		{"package", "sign", "--key", "keys/deploy.key", "--version", "3", "seq.yaml"},
	} {
		if code, out := run(t, args...); code != 0 {
			t.Fatalf("minint %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	for _, f := range []string{"keys/deploy.key", "keys/deploy.pub", "pkg/manifest.json.sig", "seq.yaml.sig"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range []string{"pkg/manifest.sig", "seq.sig"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s exists (old signature name)", f)
		}
	}
	mb, _ := os.ReadFile("pkg/manifest.json")
	if !strings.Contains(string(mb), `"package_version": "12.4"`) || !strings.Contains(string(mb), `"expires"`) || strings.Contains(string(mb), "manifest.sig") {
		t.Errorf("manifest:\n%s", mb)
	}
	pubF, _ := os.ReadFile("keys/deploy.pub")
	pub, err := sign.ParsePublicKey(pubF)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile("seq.yaml.sig")
	if s, err := sign.Verify([]byte(seq), sig, pub, sign.Policy{Purpose: sign.PurposeSequence, MinVersion: "3"}); err != nil || s.Name != "seq.yaml" {
		t.Errorf("seq.yaml.sig: %+v, %v", s, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"package", "verify", "--key", "keys/deploy.pub", "--min-version", "12.10", "pkg"}, "version 12.4 is older than the minimum 12.10"},
		{[]string{"package", "verify", "--key", "keys/deploy.pub", "--package", "windows", "pkg"}, `not the "windows"`},
		{[]string{"package", "sign", "--key", "keys/deploy.key", "pkg/os.wim"}, "signs task sequences"},
		{[]string{"package", "create", "--key", "keys/deploy.key", "--version", "12.x", "pkg"}, "dot-separated numbers"},
		{[]string{"package", "create", "--key", "keys/deploy.key", "--expires", "yesterday", "pkg"}, "--expires"},
	} {
		if code, out := run(t, c.args...); code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("minint %s: exit %d, want a failure saying %q:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
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
	// A machine's variables, bound as the PE would.
	fleet := filepath.Join(dir, "fleet.yaml")
	os.WriteFile(fleet, []byte("version: 1\nvars: {hostname: \"pc-${machine.serial}\", role: ~}\nrules:\n  - match: {mac: \"52:54:00:*\"}\n    vars: {role: vm}\nsteps:\n  - type: run\n    shell: echo ${var.hostname} ${var.role}\n"), 0o644)
	code, out = run(t, "sequence", "check", fleet)
	if code != 0 || !strings.Contains(out, "variable hostname: default pc-${machine.serial}, 0 rules") || !strings.Contains(out, "variable role: no default, 1 rule (the plan shows its name)") {
		t.Errorf("check with variables: %d %s", code, out)
	}
	code, out = run(t, "sequence", "check", "--mac", "52:54:00:12:34:56", "--serial", "S1", fleet)
	if code != 0 || !strings.Contains(out, "variable role = vm (rule at line 4)") || !strings.Contains(out, "run: /bin/sh -c echo pc-S1 vm") {
		t.Errorf("check a machine: %d %s", code, out)
	}
	code, out = run(t, "sequence", "check", "--mac", "8c:16:45:00:00:01", "--serial", "S1", fleet)
	if code != 1 || !strings.Contains(out, "fleet.yaml:8:12: ${var.role} has no value on this machine") {
		t.Errorf("check a machine no rule matches: %d %s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nsteps:\n  - type: run\n    shell: x\n    timout: 5m\n"), 0o644)
	code, out = run(t, "sequence", "check", bad)
	if code != 1 || !strings.Contains(out, `bad.yaml:5:5: unknown key "timout": did you mean "timeout"?`) {
		t.Errorf("check bad: %d %s", code, out)
	}
}
