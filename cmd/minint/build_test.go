package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/kmod/kmodtest"
)

func runBuildCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(append([]string{"build"}, args...), &out, &errOut)
	return code, out.String() + errOut.String()
}

func TestBuildCommandErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	// Driver packs: one built for another kernel, one unsigned, one empty.
	foreign, unsigned, empty := t.TempDir(), t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(foreign, "modules"), 0o755)
	os.WriteFile(filepath.Join(foreign, "modules/acme.ko"), kmodtest.Sign(kmodtest.Module("acme", "5.10.0-1-amd64 SMP mod_unload modversions ")), 0o644)
	var kver string
	if ks, _ := filepath.Glob("/lib/modules/*/modules.dep"); len(ks) > 0 {
		kver = filepath.Base(filepath.Dir(ks[len(ks)-1]))
	}
	os.MkdirAll(filepath.Join(unsigned, "modules"), 0o755)
	os.WriteFile(filepath.Join(unsigned, "modules/acme.ko"), kmodtest.Module("acme", kver+" SMP preempt mod_unload modversions "), 0o644)
	for _, c := range []struct {
		args    []string
		code    int
		mention string
	}{
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--modules", "ext4", "--add-modules", "vfat"}, 2, "exclude each other"},
		{[]string{"--file", "nocolon"}, 2, "SRC:DEST"},
		{[]string{"--kernel", "/nonexistent/vmlinuz", "-o", t.TempDir()}, 1, "/nonexistent/vmlinuz"},
		{[]string{"--compress", "lz4", "-o", t.TempDir()}, 2, `invalid argument "lz4" for "--compress" flag: want zstd, gzip, xz or none`},
		{[]string{"--modules", "ext4,nope_mod", "-o", t.TempDir()}, 1, `unknown kernel module "nope_mod"`},
		{[]string{"-o", filepath.Join(file, "sub")}, 1, "cannot write output"},
		{[]string{"--driver-pack", foreign, "-o", t.TempDir()}, 1, "acme.ko was built for kernel 5.10.0-1-amd64"},
		{[]string{"--driver-pack", unsigned, "--require-signed-modules", "-o", t.TempDir()}, 1, "acme.ko has no signature"},
		{[]string{"--driver-pack", empty, "-o", t.TempDir()}, 1, "neither modules/*.ko nor firmware/"},
	} {
		code, out := runBuildCmd(t, c.args...)
		if code != c.code || !strings.Contains(out, c.mention) {
			t.Errorf("minint build %s: exit %d, want %d with %q; output:\n%s", strings.Join(c.args, " "), code, c.code, c.mention, out)
		}
	}
}
