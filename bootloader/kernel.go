package bootloader

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/minint/minint/diskops"
)

// Kernel is a kernel and its initrd found under a root's /boot.
type Kernel struct {
	Version string
	Path    string // absolute path of vmlinuz-<version>
	Initrd  string // absolute path of the initrd, "" when there is none
}

// FindKernel returns the newest kernel under root/boot: vmlinuz-<version>
// with the initrd named initrd.img-<version> (Debian) or
// initramfs-<version>.img (Fedora). Versions compare like dpkg: digit runs
// numerically, the rest as text. The boot entries use it on the applied
// root, and the PE build (package initramfs) on the build host's.
func FindKernel(root string) (*Kernel, error) {
	boot := filepath.Join(root, "boot")
	ents, err := os.ReadDir(boot)
	if err != nil {
		return nil, fmt.Errorf("%w: no kernel: %v", diskops.ErrNotFound, err)
	}
	var ks []*Kernel
	for _, e := range ents {
		v, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		k := &Kernel{Version: v, Path: filepath.Join(boot, e.Name())}
		for _, n := range []string{"initrd.img-" + v, "initramfs-" + v + ".img", "initrd-" + v} {
			if fi, err := os.Stat(filepath.Join(boot, n)); err == nil && fi.Mode().IsRegular() {
				k.Initrd = filepath.Join(boot, n)
				break
			}
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%w: no vmlinuz-<version> in %s", diskops.ErrNotFound, boot)
	}
	sort.Slice(ks, func(i, j int) bool { return compareVersions(ks[i].Version, ks[j].Version) > 0 })
	return ks[0], nil
}

// compareVersions orders "6.1.0-56-amd64" after "6.1.0-9-amd64".
func compareVersions(a, b string) int {
	ta, tb := versionTokens(a), versionTokens(b)
	for i := 0; i < len(ta) && i < len(tb); i++ {
		x, y := ta[i], tb[i]
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	return len(ta) - len(tb)
}

func versionTokens(s string) []string {
	var out []string
	cur := ""
	for _, r := range s {
		if len(cur) > 0 && unicode.IsDigit(r) != unicode.IsDigit(rune(cur[len(cur)-1])) {
			out = append(out, cur)
			cur = ""
		}
		cur += string(r)
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}
