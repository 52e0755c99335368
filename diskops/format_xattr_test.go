package diskops

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFormatExt4SmallRootHoldsLargeXattrs: a root partition of a few
// hundred MiB (a small VM's) gets 4 KiB blocks, so a 3000-byte xattr — which
// a 1 KiB-block ext4 refuses with ENOSPC — fits, and the file system is
// fsck-clean. Needs root and loop devices to mount it.
func TestFormatExt4SmallRootHoldsLargeXattrs(t *testing.T) {
	img := filepath.Join(t.TempDir(), "root.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	f.Truncate(size)
	_, err = Format(context.Background(), f, 0, size, FormatSpec{FS: "ext4", Label: "root", UUID: "01234567-89ab-4def-8123-456789abcdef"})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("dumpe2fs"); err != nil {
		t.Skip("no dumpe2fs (e2fsprogs)")
	}
	out, err := exec.Command("dumpe2fs", "-h", img).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("Block size:               4096")) {
		t.Errorf("block size is not 4096:\n%s", grepLine(string(out), "Block size"))
	}
	if out, err := exec.Command("fsck.ext4", "-n", "-f", img).CombinedOutput(); err != nil {
		t.Errorf("fsck.ext4: %v\n%s", err, out)
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.big", bytes.Repeat([]byte{0xa5}, 3000), 0); err != nil {
		t.Errorf("a 3000-byte xattr on a 256 MiB root: %v", err)
	}
}

func grepLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
