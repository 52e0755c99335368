package media

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sign"
)

// TestPackagesBounded: `iso show` reads a medium's or a tree's packages
// within the bounds the PE sets (a tree may come from anyone), and names
// what it refused as on the medium, not as extracted.
func TestPackagesBounded(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "minint", "image")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, manifest.FileName), []byte(`{"version":1}`), 0o644)
	sig := filepath.Join(pkg, manifest.ShortSignatureName)
	os.WriteFile(sig, nil, 0o644)
	if err := os.Truncate(sig, sign.MaxSize+1); err != nil {
		t.Fatal(err)
	}
	local := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	files := []MediumFile{{Path: "/minint/image/" + manifest.FileName}, {Path: "/minint/image/" + manifest.ShortSignatureName}}
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	ps := packages(files, local, key)
	if len(ps) != 1 || !strings.Contains(ps[0].Error, "/minint/image/manifest.sig: too large") || strings.Contains(ps[0].Error, dir) || ps[0].Signed {
		t.Fatalf("got %+v", ps)
	}
	os.Remove(sig)
	if ps := packages(files, local, key); len(ps) != 1 || ps[0].Error != "no "+manifest.SignatureName {
		t.Fatalf("no signature: %+v", ps)
	}
}
