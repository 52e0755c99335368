package wim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minint/minint/internal/treetest"
)

func needWimlib(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("wimlib-imagex"); err != nil {
		t.Skip("wimlib-imagex not installed (the test oracle)")
	}
}

func wimlib(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("wimlib-imagex", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("wimlib-imagex %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func genTree(t testing.TB, dir string, small bool) {
	t.Helper()
	treetest.Generate(t, dir, treetest.Options{Seed: 7, Small: small, NoLinkedSymlinks: true})
}

func diffTrees(t testing.TB, want, got string) {
	t.Helper()
	a, err := treetest.Snapshot(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := treetest.Snapshot(got)
	if err != nil {
		t.Fatal(err)
	}
	if d := treetest.Diff(a, b, treetest.WIMOptions()); len(d) > 0 {
		if len(d) > 40 {
			d = append(d[:40], "...")
		}
		t.Fatalf("trees differ:\n%s", strings.Join(d, "\n"))
	}
}

// wimlib capture -> our apply -> identical tree, for each compression (LZX
// on one thread: the sequential path of a one-vCPU PE).
func TestApplyWimlibCapture(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	genTree(t, src, true) // the full tree is covered by interop_test.go
	for _, c := range []string{"none", "xpress", "lzx"} {
		t.Run(c, func(t *testing.T) {
			w := filepath.Join(tmp, c+".wim")
			wimlib(t, "capture", src, w, "test", "--unix-data", "--norpfix", "--compress="+c)
			rc, err := OpenReader(w)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			dst := filepath.Join(tmp, "out-"+c)
			var last, total int64
			opts := ApplyOptions{Progress: func(d, tt int64) { last, total = d, tt }}
			if c == "lzx" {
				opts.Threads = 1
			}
			err = rc.Apply(context.Background(), 1, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if last != total || total == 0 {
				t.Errorf("progress ended at %d of %d", last, total)
			}
			diffTrees(t, src, dst)
		})
	}
}

func TestApplySubset(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	os.MkdirAll(filepath.Join(src, "c"), 0o755)
	os.WriteFile(filepath.Join(src, "a/b/f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(src, "c/g"), []byte("y"), 0o644)
	w := filepath.Join(tmp, "x.wim")
	wimlib(t, "capture", src, w, "--unix-data")
	rc, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dst := filepath.Join(tmp, "dst")
	if err := rc.Apply(context.Background(), 1, dst, ApplyOptions{Paths: []string{"/a/b"}}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a/b/f")); err != nil || string(b) != "x" {
		t.Fatalf("a/b/f: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "c")); !os.IsNotExist(err) {
		t.Fatalf("c extracted although not selected: %v", err)
	}
}

func genTreeSeed(t testing.TB, dir string, seed uint64) {
	t.Helper()
	treetest.Generate(t, dir, treetest.Options{Seed: seed, Small: true, NoLinkedSymlinks: true})
}

func hasWimlib() bool {
	_, err := exec.LookPath("wimlib-imagex")
	return err == nil
}

// LZMS and solid WIMs are recognised and refused with ErrUnsupported.
func TestUnsupportedFormats(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("lzms ", 1000)), 0o644)
	for _, args := range [][]string{{"--compress=lzms"}, {"--solid"}} {
		w := filepath.Join(tmp, strings.TrimPrefix(args[0], "--")+".wim")
		wimlib(t, append([]string{"capture", src, w, "--unix-data"}, args...)...)
		rc, err := OpenReader(w)
		if err == nil {
			img, _ := rc.Image(1)
			_, err = img.Root()
			if err == nil {
				err = rc.Apply(context.Background(), 1, filepath.Join(tmp, "out"), ApplyOptions{})
			}
			rc.Close()
		}
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: got %v, want ErrUnsupported", args, err)
		} else {
			t.Logf("%v: %v", args, err)
		}
	}
}

// Applying over an existing setgid directory still gives files the group
// stored in the WIM.
func TestApplyIntoSetgidDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(src, "g"), []byte("y"), 0o644)
	w := filepath.Join(tmp, "x.wim")
	capture(t, src, w, WriterOptions{}, ImageOptions{})
	dst := filepath.Join(tmp, "dst")
	os.MkdirAll(filepath.Join(dst, "d"), 0o755)
	for _, d := range []string{dst, filepath.Join(dst, "d")} {
		os.Chown(d, 0, 4242)
		os.Chmod(d, 0o2775)
	}
	rc, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Apply(context.Background(), 1, dst, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d/f", "g"} {
		var st unix.Stat_t
		unix.Lstat(filepath.Join(dst, p), &st)
		if st.Gid != uint32(os.Getegid()) {
			t.Errorf("%s: gid %d, want %d", p, st.Gid, os.Getegid())
		}
	}
}

// A file whose data does not match its SHA-1 is refused and removed;
// InsecureSkipHashCheck applies the damaged bytes as they are.
func TestApplyInsecureSkipHashCheck(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	data := bytes.Repeat([]byte("minint checks every blob "), 1000)
	os.WriteFile(filepath.Join(src, "f"), data, 0o644)
	os.WriteFile(filepath.Join(src, "g"), []byte("intact"), 0o644)
	w := filepath.Join(tmp, "x.wim")
	capture(t, src, w, WriterOptions{Compression: CompressionNone}, ImageOptions{})
	b, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, data)
	if i < 0 || bytes.Count(b, data) != 1 {
		t.Fatal("the file's data is not stored once, uncompressed, in the test WIM")
	}
	b[i+100] ^= 1
	if err := os.WriteFile(w, b, 0o644); err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(data)
	damaged[100] ^= 1

	rc, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dst := filepath.Join(tmp, "checked")
	if err := rc.Apply(context.Background(), 1, dst, ApplyOptions{}); !errors.Is(err, ErrChecksum) {
		t.Errorf("apply of a damaged blob: %v, want ErrChecksum", err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "f")); !os.IsNotExist(err) {
		t.Errorf("the damaged file was left behind: %v", err)
	}
	dst = filepath.Join(tmp, "unchecked")
	if err := rc.Apply(context.Background(), 1, dst, ApplyOptions{InsecureSkipHashCheck: true}); err != nil {
		t.Fatalf("apply with InsecureSkipHashCheck: %v", err)
	}
	for name, want := range map[string][]byte{"f": damaged, "g": []byte("intact")} {
		if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want the %d bytes stored", name, len(got), err, len(want))
		}
	}
}
