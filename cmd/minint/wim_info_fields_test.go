package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/wim"
)

// TestWimInfoFields: what a capture records in an image's XML (source OS,
// kernels, generalize report) shows in `wim info`, as JSON and as text.
func TestWimInfoFields(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	p := filepath.Join(dir, "ref.wim")
	w, err := wim.Create(p, wim.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{"MININT/OS_NAME": "Debian GNU/Linux", "MININT/GENERALIZE/REPORT": "delete /a: x\nempty /b: y"}
	if err := w.AddImage(context.Background(), src, wim.ImageOptions{Name: "ref", Fields: fields}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := wimRun(t, "info", p, "--json")
	if code != 0 {
		t.Fatalf("info --json: exit %d\n%s", code, stderr)
	}
	var info wimInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Images) != 1 {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	for k, v := range fields {
		if got := info.Images[0].Fields[k]; got != v {
			t.Errorf("field %s = %q, want %q", k, got, v)
		}
	}
	code, out, _ = wimRun(t, "info", p)
	if code != 0 || !strings.Contains(out, "MININT/OS_NAME: Debian GNU/Linux") || !strings.Contains(out, "delete /a: x\n") ||
		!strings.Contains(out, "  empty /b: y\n") {
		t.Errorf("info text:\n%s", out)
	}
}
