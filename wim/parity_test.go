package wim_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/wim"
)

// Behaviour that users of wimlib-imagex rely on, checked against the
// oracle where it can be.

// TestDuplicateImageNames: adding or exporting an image under a name the
// WIM already has is refused, as wimlib refuses it; a WIM that has two
// images of one name anyway (written by another tool) cannot be searched by
// that name.
func TestDuplicateImageNames(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string]string{"f": "data"})
	x := filepath.Join(dir, "x.wim")
	minintCapture(t, src, x, "none", false, "base")

	// wimlib itself refuses the duplicate: this is parity, not taste.
	if out, err := wimlibErr(t, "append", src, x, "base"); err == nil || !strings.Contains(out, "already an image named") {
		t.Fatalf("wimlib-imagex append of a duplicate name: %v\n%s", err, out)
	}
	w, err := wim.OpenAppend(x, wim.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(context.Background(), src, wim.ImageOptions{Name: "base"}); !errors.Is(err, wim.ErrDuplicateName) {
		t.Errorf("AddImage of a name in use: %v, want ErrDuplicateName", err)
	}
	w.Close()
	if err := wim.Append(context.Background(), x, src, wim.WriterOptions{}, wim.ImageOptions{}); err != nil {
		t.Errorf("unnamed images may repeat: %v", err)
	}
	if err := wim.Append(context.Background(), x, src, wim.WriterOptions{}, wim.ImageOptions{}); err != nil {
		t.Errorf("unnamed images may repeat: %v", err)
	}

	rc, err := wim.OpenReader(x)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, err := rc.FindImage("base")
	if err != nil {
		t.Fatal(err)
	}
	// Export into the WIM it came from, under its own name: refused; under
	// a new name: fine.
	if err := wim.Export(context.Background(), img, x, wim.WriterOptions{}, wim.ImageOptions{}); !errors.Is(err, wim.ErrDuplicateName) {
		t.Errorf("export under a name in use: %v, want ErrDuplicateName", err)
	}
	if err := wim.Export(context.Background(), img, x, wim.WriterOptions{}, wim.ImageOptions{Name: "copy"}); err != nil {
		t.Errorf("export under a new name: %v", err)
	}
	if _, err := rc.FindImage(""); !errors.Is(err, wim.ErrNotFound) {
		t.Errorf(`FindImage(""): %v, want ErrNotFound (unnamed images are found by index)`, err)
	}
	wimlib(t, "verify", x)

	// Two images named alike, as another tool may write them: the XML is
	// edited, which nothing checksums.
	y := filepath.Join(dir, "y.wim")
	minintCapture(t, src, y, "none", false, "first")
	if err := wim.Append(context.Background(), y, src, wim.WriterOptions{}, wim.ImageOptions{Name: "firsu"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(y)
	if err != nil {
		t.Fatal(err)
	}
	patchName(t, b, "firsu", "first")
	if err := os.WriteFile(y, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ry, err := wim.OpenReader(y)
	if err != nil {
		t.Fatal(err)
	}
	defer ry.Close()
	if _, err := ry.FindImage("first"); !errors.Is(err, wim.ErrDuplicateName) || !strings.Contains(err.Error(), "1, 2") {
		t.Errorf("FindImage of a name two images carry: %v, want ErrDuplicateName naming images 1, 2", err)
	}
	if img, err := ry.FindImage("2"); err != nil || img.Index != 2 {
		t.Errorf("FindImage by index in a WIM with duplicate names: %v", err)
	}
}

// TestExtractFlatten: Paths with Flatten put each path directly into the
// target under its base name, the tree wimlib-imagex extract --dest-dir
// makes; without Flatten they keep their place (--preserve-dir-structure).
func TestExtractFlatten(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	treetest.Generate(t, src, treetest.Options{Seed: 81, Small: true, NoLinkedSymlinks: true})
	x := filepath.Join(dir, "x.wim")
	minintCapture(t, src, x, "lzx", false, "img")
	rc, err := wim.OpenReader(x)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, c := range []struct {
		name     string
		paths    []string
		preserve bool
	}{
		{"file and directory", []string{"/dirs/a/top.txt", "/modes"}, false},
		{"root", []string{"/"}, false},
		{"nested", []string{"/dirs/a", "/dirs/a/top.txt"}, false},
		{"preserve", []string{"/dirs/a/top.txt", "/modes"}, true},
	} {
		mine, theirs := filepath.Join(dir, "m-"+c.name), filepath.Join(dir, "w-"+c.name)
		if err := rc.Apply(context.Background(), 1, mine, wim.ApplyOptions{Paths: c.paths, Flatten: !c.preserve}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		args := append([]string{"extract", x, "1"}, c.paths...)
		args = append(args, "--dest-dir="+theirs, "--unix-data")
		if c.preserve {
			args = append(args, "--preserve-dir-structure")
		}
		wimlib(t, args...)
		// wimlib sets no metadata on the target or (preserving) on the
		// parents it makes: compare what was asked for.
		a, b := snapshot(t, theirs), snapshot(t, mine)
		for _, tr := range []treetest.Tree{a, b} {
			for p := range tr.Entries {
				if p == "" || p == "." || c.preserve && (p == "dirs" || p == "dirs/a") {
					delete(tr.Entries, p)
				}
			}
		}
		if d := treetest.Diff(a, b, treetest.WIMOptions()); len(d) > 0 {
			t.Errorf("%s: differs from wimlib-imagex extract:\n%s", c.name, strings.Join(d, "\n"))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "m-file and directory", "top.txt")); err != nil {
		t.Errorf("flattened /dirs/a/top.txt is not at the top: %v", err)
	}

	// Two paths with one base name would overwrite each other: refused
	// before anything is written (wimlib fails half-way).
	clash := filepath.Join(dir, "clash")
	err = rc.Apply(context.Background(), 1, clash, wim.ApplyOptions{Paths: []string{"/dirs/empty", "/dirs/nested/empty"}, Flatten: true})
	if !errors.Is(err, wim.ErrInsecurePath) {
		t.Errorf("two paths with one base name: %v, want ErrInsecurePath", err)
	}
	if _, err := os.Lstat(clash); !os.IsNotExist(err) {
		t.Errorf("refused extraction created %s: %v", clash, err)
	}
}
