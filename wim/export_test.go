package wim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func smallTree(t testing.TB, dir string, seed uint64) {
	t.Helper()
	genTreeSeed(t, dir, seed)
}

func wimlibVerify(t testing.TB, args ...string) {
	t.Helper()
	for _, l := range strings.Split(wimlib(t, append([]string{"verify"}, args...)...), "\n") {
		if strings.Contains(l, "WARNING") && !strings.Contains(l, "does not contain integrity information") {
			t.Errorf("wimlib-imagex verify: %s", l)
		}
	}
}

func TestAppendAndExport(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	smallTree(t, a, 1)
	smallTree(t, b, 2)
	x := filepath.Join(tmp, "x.wim")
	capture(t, a, x, WriterOptions{}, ImageOptions{Name: "A"})
	before, _ := os.Stat(x)

	w, err := OpenAppend(x, WriterOptions{Integrity: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(context.Background(), b, ImageOptions{Name: "B", Description: "second"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(x)
	// Dedup across images: the two trees share most data (same generator),
	// so appending must cost far less than the first capture.
	t.Logf("x.wim %d -> %d bytes", before.Size(), after.Size())
	wimlibVerify(t, x)
	info := wimlib(t, "info", x)
	if !strings.Contains(info, "Image Count:    2") || !strings.Contains(info, "second") {
		t.Fatalf("wimlib info after append:\n%s", info)
	}
	for i, src := range []string{a, b} {
		dst := filepath.Join(tmp, "wl", string(rune('1'+i)))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		wimlib(t, "apply", x, string(rune('1'+i)), dst, "--unix-data")
		diffTrees(t, src, dst)
	}

	// Export image 2 into a new WIM, and a wimlib LZX image into an
	// uncompressed WIM (decompress + store path).
	rc, err := OpenReader(x)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	lzx := filepath.Join(tmp, "lzx.wim")
	wimlib(t, "capture", a, lzx, "L", "--unix-data", "--norpfix", "--compress=lzx")
	lrc, err := OpenReader(lzx)
	if err != nil {
		t.Fatal(err)
	}
	defer lrc.Close()
	y := filepath.Join(tmp, "y.wim")
	w, err = Create(y, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img2, _ := rc.Image(2)
	if err := w.ExportImage(context.Background(), img2, ImageOptions{}); err != nil {
		t.Fatal(err)
	}
	limg, _ := lrc.Image(1)
	if err := w.ExportImage(context.Background(), limg, ImageOptions{Name: "renamed"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wimlibVerify(t, y)
	info = wimlib(t, "info", y)
	if !strings.Contains(info, "renamed") || !strings.Contains(info, "Name:                   B") {
		t.Fatalf("wimlib info of export:\n%s", info)
	}
	for i, src := range []string{b, a} {
		dst := filepath.Join(tmp, "y", string(rune('1'+i)))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		wimlib(t, "apply", y, string(rune('1'+i)), dst, "--unix-data")
		diffTrees(t, src, dst)
	}
}

func TestSplit(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	smallTree(t, src, 3)
	x := filepath.Join(tmp, "x.wim")
	capture(t, src, x, WriterOptions{}, ImageOptions{Name: "S"})
	parts, err := Split(context.Background(), x, filepath.Join(tmp, "p.swm"), 200<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 3 {
		t.Fatalf("only %d parts", len(parts))
	}
	for _, p := range parts[1:] {
		fi, _ := os.Stat(p)
		if fi.Size() > 200<<10 {
			// allowed only for a part holding one oversized resource
			t.Logf("%s: %d bytes", p, fi.Size())
		}
	}
	ref := "--ref=" + filepath.Join(tmp, "p*.swm")
	wimlibVerify(t, parts[0], ref)
	dst := filepath.Join(tmp, "wl")
	wimlib(t, "apply", parts[0], "1", dst, "--unix-data", ref)
	diffTrees(t, src, dst)

	rc, err := OpenReader(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n := rc.Info().TotalParts; n != len(parts) {
		t.Fatalf("TotalParts = %d, want %d", n, len(parts))
	}
	if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	dst2 := filepath.Join(tmp, "ours")
	if err := rc.Apply(context.Background(), 1, dst2, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, src, dst2)

	// wimlib's split read by us.
	wimlib(t, "split", x, filepath.Join(tmp, "w.swm"), "0.2")
	wrc, err := OpenReader(filepath.Join(tmp, "w.swm"))
	if err != nil {
		t.Fatal(err)
	}
	defer wrc.Close()
	dst3 := filepath.Join(tmp, "fromwl")
	if err := wrc.Apply(context.Background(), 1, dst3, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, src, dst3)

	// A missing part is reported, not silently ignored.
	os.Remove(parts[len(parts)-1])
	if _, err := OpenReader(parts[0]); err == nil {
		t.Fatal("opened a split WIM with a missing part")
	}
}

// A failed append leaves the WIM exactly as it was.
func TestAppendFailureRestores(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	x := filepath.Join(tmp, "x.wim")
	capture(t, src, x, WriterOptions{}, ImageOptions{Name: "one"})
	before, _ := os.ReadFile(x)
	if err := Append(context.Background(), x, filepath.Join(tmp, "missing"), WriterOptions{}, ImageOptions{}); err == nil {
		t.Fatal("append of a missing directory succeeded")
	}
	after, _ := os.ReadFile(x)
	if string(before) != string(after) {
		t.Fatalf("WIM changed by a failed append (%d -> %d bytes)", len(before), len(after))
	}
	// And a new WIM that fails is removed.
	y := filepath.Join(tmp, "y.wim")
	w, err := Create(y, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(context.Background(), filepath.Join(tmp, "missing"), ImageOptions{}); err == nil {
		t.Fatal("AddImage of a missing directory succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failed AddImage succeeded")
	}
	if _, err := os.Stat(y); !os.IsNotExist(err) {
		t.Fatalf("failed WIM left behind: %v", err)
	}
}

func TestBootIndex(t *testing.T) {
	needWimlib(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("boot"), 0o644)
	x := filepath.Join(tmp, "x.wim")
	w, err := Create(x, WriterOptions{Compression: CompressionLZX})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := w.AddImage(context.Background(), src, ImageOptions{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	w.SetBootIndex(2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out := wimlib(t, "info", x); !strings.Contains(out, "Boot Index:     2") {
		t.Fatalf("wimlib info:\n%s", out)
	}
	wimlibVerify(t, x)
	rc, err := OpenReader(x)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if rc.Info().BootIndex != 2 {
		t.Fatalf("BootIndex %d", rc.Info().BootIndex)
	}
}
