package wim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A file whose every chunk is incompressible (random bytes, an archive, a
// compressed initramfs) and which is larger than the writer's output buffer
// is stored raw in a resource whose chunk table is already written out. It
// must still be a valid resource: our reader and wimlib read it, for every
// compression and with one thread or several.
func TestCaptureIncompressibleLargeFile(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	r := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20+12345)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "random.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	// and one that compresses in its first chunk only
	mixed := append(make([]byte, 40000), big[:2<<20]...)
	if err := os.WriteFile(filepath.Join(src, "mixed.bin"), mixed, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{CompressionXPRESS, CompressionLZX} {
		for _, threads := range []int{1, 2} {
			name := fmt.Sprintf("%s-%dthreads", c, threads)
			t.Run(name, func(t *testing.T) {
				w := filepath.Join(tmp, name+".wim")
				capture(t, src, w, WriterOptions{Compression: c, Threads: threads}, ImageOptions{Name: "t"})
				rc, err := OpenReader(w)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
					t.Fatalf("our verify: %v", err)
				}
				dst := filepath.Join(tmp, "out-"+name)
				if err := rc.Apply(context.Background(), 1, dst, ApplyOptions{}); err != nil {
					t.Fatal(err)
				}
				diffTrees(t, src, dst)
				if _, err := exec.LookPath("wimlib-imagex"); err == nil {
					if out, err := exec.Command("wimlib-imagex", "verify", w).CombinedOutput(); err != nil {
						t.Errorf("wimlib-imagex verify: %v\n%s", err, out)
					}
				}
			})
		}
	}
}
