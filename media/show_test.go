package media

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sequence"
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

// TestSequenceBounded: a tree's sequence and its signature are read
// within the PE's bounds, once each; what parses is shown even when its
// signature is refused.
func TestSequenceBounded(t *testing.T) {
	dir := t.TempDir()
	seqFile := filepath.Join(dir, "seq.yaml")
	os.WriteFile(seqFile, []byte("version: 1\nname: big-sig\nsteps:\n  - type: reboot\n"), 0o644)
	sig := sign.SignatureFor(seqFile)
	os.WriteFile(sig, nil, 0o644)
	if err := os.Truncate(sig, sign.MaxSize+1); err != nil {
		t.Fatal(err)
	}
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	seq, err := readSequence(seqFile, key)
	if seq == nil || seq.Name != "big-sig" || !errors.Is(err, bounded.ErrTooLarge) || !errors.Is(err, ErrInput) {
		t.Fatalf("oversized signature: %+v, %v", seq, err)
	}
	if _, _, err := SequenceFiles(seqFile, key); !errors.Is(err, bounded.ErrTooLarge) {
		t.Fatalf("SequenceFiles took an oversized signature: %v", err)
	}
	if err := os.Truncate(seqFile, sequence.MaxSize+1); err != nil {
		t.Fatal(err)
	}
	if seq, err := readSequence(seqFile, key); seq != nil || !errors.Is(err, bounded.ErrTooLarge) {
		t.Fatalf("oversized sequence: %+v, %v", seq, err)
	}
}
