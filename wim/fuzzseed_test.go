package wim

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds regenerates testdata/fuzz from small WIMs written by
// this package. Run with MININT_WRITE_FUZZ_SEEDS=1 after format changes.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MININT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MININT_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d/f"), []byte("hello hello hello hello hello hello"), 0o644)
	os.WriteFile(filepath.Join(src, "e"), nil, 0o600)
	os.Symlink("d/f", filepath.Join(src, "l"))
	os.Link(filepath.Join(src, "d/f"), filepath.Join(src, "h"))
	for _, c := range []Compression{CompressionNone, CompressionXPRESS, CompressionLZX} {
		w := filepath.Join(tmp, c.String()+".wim")
		capture(t, src, w, WriterOptions{Compression: c, Integrity: c == CompressionNone}, ImageOptions{Name: "seed"})
		b, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := OpenReader(w)
		if err != nil {
			t.Fatal(err)
		}
		img, _ := rc.Image(1)
		meta, err := img.meta.res.readAll(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		bt, err := resource{p: rc.parts[0], rh: rc.hdr.blobTable}.readAll(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		writeSeed(t, "FuzzReader", c.String(), b)
		writeSeed(t, "FuzzHeader", c.String(), b[:headerSize])
		writeSeed(t, "FuzzMetadata", c.String(), meta)
		writeSeed(t, "FuzzBlobTable", c.String(), bt)
	}
}

// WriteFuzzSeed lets the external tests (corrupt_test.go) add the hostile
// WIMs they build to the corpus.
var WriteFuzzSeed = writeSeed

func writeSeed(t *testing.T, target, name string, b []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
