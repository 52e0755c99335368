package wim_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/treetest"
)

// wimlib runs wimlib-imagex, the reference implementation the interop tests
// use as an oracle, and fails the test when it fails.
func wimlib(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("wimlib-imagex")
	if err != nil {
		t.Skip("wimlib-imagex not installed (Debian package wimtools): no interop oracle")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("wimlib-imagex %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOracleSelfCheck makes sure the oracle itself round-trips the generated
// tree under the options the interop tests use; otherwise a failure there
// could be wimlib's rather than ours.
func TestOracleSelfCheck(t *testing.T) {
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	treetest.Generate(t, src, treetest.Options{Seed: 11, NoLinkedSymlinks: true})
	w := filepath.Join(dir, "x.wim")
	wimlib(t, "capture", src, w, "--unix-data", "--compress=none")
	wimlib(t, "apply", w, "1", out, "--unix-data")
	if d := treetest.Diff(snapshot(t, src), snapshot(t, out), treetest.WIMOptions()); len(d) > 0 {
		t.Errorf("wimlib does not round-trip the tree:\n%s", strings.Join(d, "\n"))
	}
}

func snapshot(t testing.TB, dir string) treetest.Tree {
	t.Helper()
	tr, err := treetest.Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
