package wim_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/wim"
)

// TestInterruptedWrite: a WIM being written is not under its name until it
// is complete, and what an interrupted writer leaves behind (its temporary
// file with the write-in-progress header, or a truncated WIM) is refused
// with ErrIncomplete by the reader, as wimlib refuses it, never read as a
// valid (empty) WIM.
func TestInterruptedWrite(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	// More than the writer's 1 MiB buffer, so that the file has content.
	writeFiles(t, src, map[string]string{"a": string(randomBytes(3<<20, 1)), "b": "small"})
	x := filepath.Join(dir, "x.wim")
	w, err := wim.Create(x, wim.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(t.Context(), src, wim.ImageOptions{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	// The writer is "killed" here: no Close.
	if _, err := os.Stat(x); !os.IsNotExist(err) {
		t.Fatalf("%s exists before the WIM is complete: %v", x, err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".x.wim.*.tmp"))
	if len(tmps) != 1 {
		t.Fatalf("temporary files %v, want one", tmps)
	}
	_, err = wim.OpenReader(tmps[0])
	if !errors.Is(err, wim.ErrIncomplete) || !errors.Is(err, wim.ErrFormat) {
		t.Errorf("reading an interrupted WIM: %v, want ErrIncomplete (an ErrFormat)", err)
	}
	if out, err := wimlibErr(t, "info", tmps[0]); err == nil || !strings.Contains(out, "incomplete") {
		t.Errorf("wimlib-imagex info of the interrupted WIM: %v\n%s", err, out)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".x.wim.*")); len(left) != 0 {
		t.Errorf("Close left %v", left)
	}
	good, err := os.ReadFile(x)
	if err != nil {
		t.Fatal(err)
	}
	wimlib(t, "verify", x)

	// Truncated: the tables at the end are missing.
	for _, n := range []int{len(good) - 1, len(good) - 200, len(good) / 2} {
		_, err := wim.NewReader(bytesReaderAt(good[:n]), int64(n))
		if !errors.Is(err, wim.ErrIncomplete) {
			t.Errorf("WIM truncated to %d of %d bytes: %v, want ErrIncomplete", n, len(good), err)
		}
	}

	// A failed or cancelled Create leaves nothing, and an existing file
	// under the name is left as it was.
	if err := os.WriteFile(filepath.Join(dir, "y.wim"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w, err = wim.Create(filepath.Join(dir, "y.wim"), wim.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(ctx, src, wim.ImageOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddImage with a cancelled context: %v", err)
	}
	w.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "y.wim")); string(b) != "keep me" {
		t.Errorf("a cancelled capture replaced y.wim: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".y.wim.*")); len(left) != 0 {
		t.Errorf("a cancelled capture left %v", left)
	}

	// A cancelled split leaves no part and no temporary file.
	if _, err := wim.Split(ctx, x, filepath.Join(dir, "p.swm"), 1<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Split: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*p*.swm*")); len(left) != 0 {
		t.Errorf("a cancelled split left %v", left)
	}
	parts, err := wim.Split(t.Context(), x, filepath.Join(dir, "p.swm"), 1<<20)
	if err != nil || len(parts) < 2 {
		t.Fatalf("split: %v %v", parts, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".p*")); len(left) != 0 {
		t.Errorf("split left %v", left)
	}
	wimlib(t, "verify", parts[0], "--ref="+filepath.Join(dir, "p*.swm"))
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, errors.New("EOF")
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, errors.New("EOF")
	}
	return n, nil
}
