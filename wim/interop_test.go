package wim_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/wim"
)

// The interop tests use wimlib-imagex as the oracle: whatever it captures we
// must apply exactly, whatever we capture it must apply exactly and verify.
// "Exactly" is treetest.Diff with WIM precision (100 ns timestamps).

var compressions = []string{"none", "xpress", "lzx"}

// wimlib runs wimlib-imagex, the reference implementation the interop tests
// use as an oracle, and fails the test when it fails.
func wimlib(t testing.TB, args ...string) string {
	t.Helper()
	out, err := wimlibErr(t, args...)
	if err != nil {
		t.Fatalf("wimlib-imagex %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func wimlibErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("wimlib-imagex")
	if err != nil {
		t.Skip("wimlib-imagex not installed (Debian package wimtools): no interop oracle")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

func snapshot(t testing.TB, dir string) treetest.Tree {
	t.Helper()
	tr, err := treetest.Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func sameTree(t testing.TB, what, want, got string) {
	t.Helper()
	if d := treetest.Diff(snapshot(t, want), snapshot(t, got), treetest.WIMOptions()); len(d) > 0 {
		if len(d) > 40 {
			d = append(d[:40], "…")
		}
		t.Errorf("%s: trees differ:\n%s", what, strings.Join(d, "\n"))
	}
}

// realTree copies real files (Go sources and two Go tool binaries, ~16 MB)
// into dir/real, to go with the generated tree; small enough that LZX
// capture by wimlib stays quick.
func realTree(t testing.TB, dir string) string {
	t.Helper()
	goroot := runtime.GOROOT()
	if goroot == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			t.Skip("no GOROOT to take a real tree from")
		}
		goroot = strings.TrimSpace(string(out))
	}
	tools, _ := filepath.Glob(filepath.Join(goroot, "pkg/tool/*/link"))
	asm, _ := filepath.Glob(filepath.Join(goroot, "pkg/tool/*/asm"))
	net := filepath.Join(goroot, "src/net")
	if len(tools) == 0 || len(asm) == 0 {
		t.Skip("no Go tool binaries to use as a real tree")
	}
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{net, real}, {tools[0], asm[0], filepath.Join(real, "bin")}} {
		if out, err := exec.Command("cp", append([]string{"-a"}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("cp -a %v: %v\n%s", c, err, out)
		}
	}
	return real
}

// genTree builds the generated tree once per test in dir/src. Hard-linked
// symlinks are left out because wimlib cannot apply them (see
// TestOracleSelfCheck).
func genTree(t testing.TB, dir string, seed uint64) string {
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: seed, NoLinkedSymlinks: true})
	return src
}

func minintApply(t testing.TB, wimPath string, index int, dir string) {
	t.Helper()
	r, err := wim.OpenReader(wimPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Apply(context.Background(), index, dir, wim.ApplyOptions{}); err != nil {
		t.Fatalf("apply %s image %d: %v", wimPath, index, err)
	}
}

func minintCapture(t testing.TB, src, wimPath string, comp string, integrity bool, name string) {
	t.Helper()
	c, err := wim.ParseCompression(comp)
	if err != nil {
		t.Fatal(err)
	}
	w, err := wim.Create(wimPath, wim.WriterOptions{Compression: c, Integrity: integrity})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(context.Background(), src, wim.ImageOptions{Name: name}); err != nil {
		t.Fatalf("capture %s: %v", src, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s: %v", wimPath, err)
	}
}

// TestOracleSelfCheck makes sure the oracle itself round-trips the generated
// tree under the options the interop tests use; otherwise a failure there
// could be wimlib's rather than ours.
func TestOracleSelfCheck(t *testing.T) {
	dir := t.TempDir()
	src, out := genTree(t, dir, 11), filepath.Join(dir, "out")
	w := filepath.Join(dir, "x.wim")
	wimlib(t, "capture", src, w, "--unix-data", "--compress=none")
	wimlib(t, "apply", w, "1", out, "--unix-data")
	sameTree(t, "wimlib → wimlib", src, out)
}

// TestInteropWimlibCaptures: wimlib captures, we apply.
func TestInteropWimlibCaptures(t *testing.T) {
	dir := t.TempDir()
	gen := genTree(t, dir, 21)
	for _, comp := range compressions {
		for _, tree := range []struct{ name, src string }{{"generated", gen}, {"real", realTree(t, dir)}} {
			t.Run(comp+"/"+tree.name, func(t *testing.T) {
				d := t.TempDir()
				w, out := filepath.Join(d, "x.wim"), filepath.Join(d, "out")
				wimlib(t, "capture", tree.src, w, "--unix-data", "--compress="+comp)
				minintApply(t, w, 1, out)
				sameTree(t, "wimlib capture → minint apply", tree.src, out)
			})
		}
	}
}

// TestInteropMinintCaptures: we capture, wimlib applies and verifies, with
// and without an integrity table.
func TestInteropMinintCaptures(t *testing.T) {
	dir := t.TempDir()
	gen := genTree(t, dir, 22)
	for _, comp := range compressions {
		for _, tree := range []struct{ name, src string }{{"generated", gen}, {"real", realTree(t, dir)}} {
			t.Run(comp+"/"+tree.name, func(t *testing.T) {
				d := t.TempDir()
				w, out := filepath.Join(d, "x.wim"), filepath.Join(d, "out")
				integrity := tree.name == "generated"
				minintCapture(t, tree.src, w, comp, integrity, "img")
				wimlib(t, "apply", w, "1", out, "--unix-data")
				sameTree(t, "minint capture → wimlib apply", tree.src, out)
				v := wimlib(t, "verify", w)
				if integrity == strings.Contains(v, "does not contain integrity information") {
					t.Errorf("integrity table written: %v, but wimlib-imagex verify says:\n%s", integrity, v)
				}
				// Our own round trip, for completeness.
				out2 := filepath.Join(d, "out2")
				minintApply(t, w, 1, out2)
				sameTree(t, "minint capture → minint apply", tree.src, out2)
			})
		}
	}
}

// TestInteropHardLinkedSymlinks: our own round trip keeps what wimlib
// cannot, a symlink with two names.
func TestInteropHardLinkedSymlinks(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 23, Small: true})
	w, out := filepath.Join(dir, "x.wim"), filepath.Join(dir, "out")
	minintCapture(t, src, w, "none", false, "img")
	minintApply(t, w, 1, out)
	sameTree(t, "minint → minint", src, out)
}

// TestInteropVerify: our Verify accepts wimlib's WIMs (with and without an
// integrity table) and refuses them after one flipped byte of file data.
func TestInteropVerify(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFiles(t, src, sampleFiles())
	for _, check := range []bool{false, true} {
		for _, comp := range compressions {
			w := filepath.Join(dir, comp+".wim")
			args := []string{"capture", src, w, "--unix-data", "--compress=" + comp}
			if check {
				args = append(args, "--check")
			}
			os.Remove(w)
			wimlib(t, args...)
			r, err := wim.OpenReader(w)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Info().HasIntegrity; got != check {
				t.Errorf("%s --check=%v: HasIntegrity %v", comp, check, got)
			}
			if err := r.Verify(context.Background(), wim.VerifyOptions{}); err != nil {
				t.Errorf("%s --check=%v: Verify: %v", comp, check, err)
			}
			r.Close()

			b, err := os.ReadFile(w)
			if err != nil {
				t.Fatal(err)
			}
			var big rawBlob
			for _, bl := range rawBlobs(t, b) {
				if bl.res.flags&resMetadata == 0 && bl.res.sizeInWIM > big.res.sizeInWIM {
					big = bl
				}
			}
			b[big.res.offset+big.res.sizeInWIM-10] ^= 0x10
			rr, err := wim.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			err = rr.Verify(context.Background(), wim.VerifyOptions{})
			if !errors.Is(err, wim.ErrChecksum) && !(comp != "none" && errors.Is(err, wim.ErrFormat)) {
				t.Errorf("%s --check=%v: Verify of a damaged WIM: %v, want ErrChecksum", comp, check, err)
			}
		}
	}
}

// TestInteropMultiImage: append and export in both directions.
func TestInteropMultiImage(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	treetest.Generate(t, a, treetest.Options{Seed: 31, Small: true, NoLinkedSymlinks: true})
	treetest.Generate(t, b, treetest.Options{Seed: 32, Small: true, NoLinkedSymlinks: true})
	treetest.Generate(t, c, treetest.Options{Seed: 33, Small: true, NoLinkedSymlinks: true})

	// wimlib makes images 1 and 2, we append 3.
	w := filepath.Join(dir, "multi.wim")
	wimlib(t, "capture", a, w, "imgA", "--unix-data", "--compress=lzx")
	wimlib(t, "append", b, w, "imgB", "--unix-data")
	ap, err := wim.OpenAppend(w, wim.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.AddImage(context.Background(), c, wim.ImageOptions{Name: "imgC"}); err != nil {
		t.Fatal(err)
	}
	if err := ap.Close(); err != nil {
		t.Fatal(err)
	}
	info := wimlib(t, "info", w)
	if !regexp.MustCompile(`Image Count:\s+3\n`).MatchString(info) || !strings.Contains(info, "imgC") {
		t.Errorf("wimlib-imagex info after our append:\n%s", info)
	}
	wimlib(t, "verify", w)
	for i, src := range []string{a, b, c} {
		out := filepath.Join(dir, "wl-"+string(rune('1'+i)))
		wimlib(t, "apply", w, string(rune('1'+i)), out, "--unix-data")
		sameTree(t, "wimlib apply of image "+string(rune('1'+i)), src, out)
		out = filepath.Join(dir, "mi-"+string(rune('1'+i)))
		minintApply(t, w, i+1, out)
		sameTree(t, "minint apply of image "+string(rune('1'+i)), src, out)
	}

	// We export image 2 into a new WIM; wimlib applies it.
	r, err := wim.OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img, err := r.FindImage("imgB")
	if err != nil {
		t.Fatal(err)
	}
	ex := filepath.Join(dir, "exported.wim")
	ew, err := wim.Create(ex, wim.WriterOptions{Compression: wim.CompressionXPRESS})
	if err != nil {
		t.Fatal(err)
	}
	if err := ew.ExportImage(context.Background(), img, wim.ImageOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	wimlib(t, "verify", ex)
	wimlib(t, "apply", ex, "1", filepath.Join(dir, "ex-out"), "--unix-data")
	sameTree(t, "our export, wimlib apply", b, filepath.Join(dir, "ex-out"))

	// wimlib exports our image 3 into a new WIM; we apply it.
	ex2 := filepath.Join(dir, "exported2.wim")
	wimlib(t, "export", w, "3", ex2, "--compress=none")
	minintApply(t, ex2, 1, filepath.Join(dir, "ex2-out"))
	sameTree(t, "wimlib export, minint apply", c, filepath.Join(dir, "ex2-out"))
}

// TestInteropSplit: split sets written by either side are read by the other.
func TestInteropSplit(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 41, NoLinkedSymlinks: true})
	w := filepath.Join(dir, "x.wim")
	wimlib(t, "capture", src, w, "--unix-data", "--compress=xpress")

	// Ours: parts of at most 1 MiB (a blob bigger than that gets a part of its own).
	parts, err := wim.Split(context.Background(), w, filepath.Join(dir, "ours.swm"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 3 {
		t.Errorf("split into %d parts, want several", len(parts))
	}
	out := filepath.Join(dir, "ours-wimlib")
	wimlib(t, "apply", parts[0], "1", out, "--unix-data", "--ref="+filepath.Join(dir, "ours*.swm"))
	sameTree(t, "our split, wimlib apply", src, out)
	out = filepath.Join(dir, "ours-minint")
	minintApply(t, parts[0], 1, out)
	sameTree(t, "our split, minint apply", src, out)

	// wimlib's.
	wimlib(t, "split", w, filepath.Join(dir, "theirs.swm"), "1")
	out = filepath.Join(dir, "theirs-minint")
	minintApply(t, filepath.Join(dir, "theirs.swm"), 1, out)
	sameTree(t, "wimlib split, minint apply", src, out)
}

// TestInteropWithoutUnixData: WIMs without UNIX data (what Windows tools and
// wimlib without --unix-data write) still carry contents, directories,
// symlinks, hard links and timestamps; both sides agree on those. Special
// files, owners, modes and xattrs are not expected to survive.
func TestInteropWithoutUnixData(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 81, Small: true, NoLinkedSymlinks: true})
	opts := treetest.DiffOptions{
		MtimePrecision: 100, IgnoreRoot: true, IgnoreOwner: true, IgnoreMode: true, IgnoreXattrs: true,
		// Directory mtimes change when the special files are left out.
		IgnoreDirMtime: true,
		Ignore:         func(p string) bool { return strings.HasPrefix(p, "special/") },
	}
	check := func(what, out string) {
		t.Helper()
		if d := treetest.Diff(snapshot(t, src), snapshot(t, out), opts); len(d) > 0 {
			t.Errorf("%s: trees differ:\n%s", what, strings.Join(d, "\n"))
		}
		for _, p := range []string{"files/one-byte", "dirs/empty"} {
			fi, err := os.Lstat(filepath.Join(out, p))
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]os.FileMode{false: 0o644, true: 0o755}[fi.IsDir()]; fi.Mode().Perm() != want {
				t.Errorf("%s: %s has mode %v without UNIX data, want %v", what, p, fi.Mode().Perm(), want)
			}
		}
	}

	w := filepath.Join(dir, "theirs.wim")
	wimlib(t, "capture", src, w, "--compress=xpress")
	out := filepath.Join(dir, "theirs-minint")
	minintApply(t, w, 1, out)
	check("wimlib capture without --unix-data → minint apply", out)

	w2 := filepath.Join(dir, "ours.wim")
	ww, err := wim.Create(w2, wim.WriterOptions{Compression: wim.CompressionXPRESS})
	if err != nil {
		t.Fatal(err)
	}
	if err := ww.AddImage(context.Background(), src, wim.ImageOptions{Name: "x", NoUnixData: true}); err != nil {
		t.Fatal(err)
	}
	if err := ww.Close(); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "ours-wimlib")
	wimlib(t, "apply", w2, "1", out2)
	check("minint capture with NoUnixData → wimlib apply", out2)
}

// TestInteropUnsupported: what wimlib can write and we do not read (LZMS,
// solid resources, pipable WIMs) is refused with ErrUnsupported, at open or
// at apply, never misread.
func TestInteropUnsupported(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFiles(t, src, sampleFiles())
	for _, c := range []struct {
		name string
		args []string
	}{
		{"lzms", []string{"--compress=lzms"}},
		{"solid", []string{"--solid"}},
		{"pipable", []string{"--pipable"}},
	} {
		w := filepath.Join(dir, c.name+".wim")
		wimlib(t, append([]string{"capture", src, w, "--unix-data"}, c.args...)...)
		r, err := wim.OpenReader(w)
		if err == nil {
			err = r.Apply(context.Background(), 1, filepath.Join(dir, "out-"+c.name), wim.ApplyOptions{})
			r.Close()
		}
		if !errors.Is(err, wim.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", c.name, err)
		}
	}
}

// TestInteropSampleOS round-trips the project's sample OS root filesystem
// (scripts/make-sample-rootfs.sh: Debian kernel and modules, busybox with
// its hundreds of symlinks) through both tools with LZX, as the deployment
// tests use it. It takes tens of seconds, so it runs with MININT_E2E=1.
func TestInteropSampleOS(t *testing.T) {
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("builds the sample OS tree; set MININT_E2E=1 (make test does)")
	}
	script, err := filepath.Abs("../scripts/make-sample-rootfs.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	if out, err := exec.Command("bash", script, root).CombinedOutput(); err != nil {
		t.Skipf("sample OS tree not buildable here: %v\n%s", err, out)
	}

	ours := filepath.Join(dir, "ours.wim")
	minintCapture(t, root, ours, "lzx", true, "sample")
	wimlib(t, "verify", ours)
	wimlib(t, "apply", ours, "1", filepath.Join(dir, "ours-wimlib"), "--unix-data")
	sameTree(t, "sample OS: minint capture → wimlib apply", root, filepath.Join(dir, "ours-wimlib"))

	theirs := filepath.Join(dir, "theirs.wim")
	wimlib(t, "capture", root, theirs, "--unix-data", "--compress=lzx")
	minintApply(t, theirs, 1, filepath.Join(dir, "theirs-minint"))
	sameTree(t, "sample OS: wimlib capture → minint apply", root, filepath.Join(dir, "theirs-minint"))
}
