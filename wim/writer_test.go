package wim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

func capture(t testing.TB, src, dst string, wo WriterOptions, io ImageOptions) {
	t.Helper()
	w, err := Create(dst, wo)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(context.Background(), src, io); err != nil {
		w.Close()
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// our capture -> wimlib verify + wimlib apply --unix-data -> identical tree,
// and our own apply too.
func TestCaptureWimlibApply(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	genTree(t, src, true) // the full tree is covered by interop_test.go
	for _, c := range []Compression{CompressionNone, CompressionXPRESS, CompressionLZX} {
		for _, integ := range []bool{false, true} {
			name := c.String()
			if integ {
				name += "-integrity"
			}
			t.Run(name, func(t *testing.T) {
				if _, err := newCompressor(c, 32768); c != CompressionNone && err != nil {
					t.Skipf("no %s compressor yet: %v", c, err)
				}
				w := filepath.Join(tmp, name+".wim")
				capture(t, src, w, WriterOptions{Compression: c, Integrity: integ}, ImageOptions{Name: "test"})
				args := []string{"verify", w}
				for _, l := range strings.Split(wimlib(t, args...), "\n") {
					if strings.Contains(l, "WARNING") && !strings.Contains(l, "does not contain integrity information") {
						t.Errorf("wimlib-imagex verify: %s", l)
					}
				}
				dst := filepath.Join(tmp, "wl-"+name)
				wimlib(t, "apply", w, "1", dst, "--unix-data")
				diffTrees(t, src, dst)
				rc, err := OpenReader(w)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				if got := rc.Info().HasIntegrity; got != integ {
					t.Errorf("HasIntegrity = %v", got)
				}
				if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
					t.Fatal(err)
				}
				dst2 := filepath.Join(tmp, "our-"+name)
				if err := rc.Apply(context.Background(), 1, dst2, ApplyOptions{}); err != nil {
					t.Fatal(err)
				}
				diffTrees(t, src, dst2)
				os.RemoveAll(dst)
				os.RemoveAll(dst2)
			})
		}
	}
}

// Non-default chunk sizes: wimlib verifies and applies them.
func TestCaptureChunkSizes(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	genTreeSeed(t, src, 5)
	for _, tc := range []struct {
		c  Compression
		cs int
	}{{CompressionLZX, 65536}, {CompressionLZX, 1 << 20}, {CompressionXPRESS, 65536}} {
		name := fmt.Sprintf("%s-%d", tc.c, tc.cs)
		t.Run(name, func(t *testing.T) {
			w := filepath.Join(tmp, name+".wim")
			capture(t, src, w, WriterOptions{Compression: tc.c, ChunkSize: tc.cs}, ImageOptions{})
			wimlibVerify(t, w)
			dst := filepath.Join(tmp, name)
			wimlib(t, "apply", w, "1", dst, "--unix-data")
			diffTrees(t, src, dst)
			rc, err := OpenReader(w)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got := rc.Info().ChunkSize; got != tc.cs {
				t.Errorf("chunk size %d", got)
			}
			if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Capture holds a File for every path of the tree and a blob source for
// every file to store: their size is most of its memory.
func TestCaptureStructSizes(t *testing.T) {
	if n := unsafe.Sizeof(File{}); n > 320 {
		t.Errorf("File is %d bytes, was 320 (Go's next size class is 352)", n)
	}
	if n := unsafe.Sizeof(blobSource{}); n > 24 {
		t.Errorf("blobSource is %d bytes, was 24", n)
	}
}
