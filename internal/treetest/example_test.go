package treetest_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/minint/minint/internal/treetest"
)

// A round-trip test builds a tree, sends it through the code under test
// (here: a copy that loses one file's setuid bit) and diffs the result.
func Example() {
	dir, _ := os.MkdirTemp("", "treetest-example")
	defer os.RemoveAll(dir)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	opts := treetest.Options{Seed: 1, Small: true, NoPrivileged: true}
	if _, err := treetest.Build(src, opts); err != nil {
		panic(err)
	}
	if _, err := treetest.Build(dst, opts); err != nil { // stands in for "copy src to dst"
		panic(err)
	}
	os.Chmod(filepath.Join(dst, "modes/setuid"), 0o755)

	want, _ := treetest.Snapshot(src)
	got, _ := treetest.Snapshot(dst)
	for _, line := range treetest.Diff(want, got, treetest.WIMOptions()) {
		fmt.Println(line)
	}
	// Output:
	// modes/setuid: mode 4755 != 0755
}
