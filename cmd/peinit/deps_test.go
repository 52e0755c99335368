package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestPEImportsNoHostBuilders keeps the import flow one way: what runs in
// the PE (this init, the engine and everything it links) and in the
// deployed system's first boot never links the host-only builders or the
// test harnesses. A PE that did would grow by their dependencies and could
// call code written for the build host.
func TestPEImportsNoHostBuilders(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	const mod = "github.com/minint/minint/"
	forbidden := []string{"initramfs", "media", "qemu", "e2e", "cmd/minint", "internal/testnginx", "internal/treetest", "internal/disktest"}
	for _, bin := range []string{"./", "../minint-setup"} {
		out, err := exec.Command(goBin, "list", "-deps", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", bin, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %q", bin, deps)
		}
		for _, d := range deps {
			p, ok := strings.CutPrefix(d, mod)
			if !ok {
				continue
			}
			for _, f := range forbidden {
				if p == f || strings.HasPrefix(p, f+"/") {
					t.Errorf("%s links %s, a host-only or test package", bin, d)
				}
			}
		}
	}
}
