package manifest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/sign"
)

// pkg writes a package into a new directory: one pseudo-random file, its
// manifest and signature. It returns the dir, manifest, its bytes and the
// public key.
func pkg(t *testing.T, size int) (string, *Manifest, []byte, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "image.wim"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	pubF, privF, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sign.ParsePublicKey(pubF)
	priv, _ := sign.ParsePrivateKey(privF)
	m, mb, err := Build(dir, []string{"image.wim"}, BuildOptions{Name: "test", Image: &Image{File: "image.wim", Index: 1}, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, FileName), mb, 0o644)
	os.WriteFile(filepath.Join(dir, SignatureName), sign.Sign(mb, priv), 0o644)
	return dir, m, mb, pub
}

func TestSignVerify(t *testing.T) {
	dir, m, mb, pub := pkg(t, 1000)
	sig, _ := os.ReadFile(filepath.Join(dir, SignatureName))
	got, err := Verify(mb, sig, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files[0].SHA256 != m.Files[0].SHA256 || got.Image.File != "image.wim" {
		t.Errorf("verified manifest differs: %+v", got)
	}
	if len(got.Files[0].Chunks) != 1 || got.Files[0].ChunkSize != 64<<10 {
		t.Errorf("chunk hashes: %+v", got.Files[0])
	}
	// One changed byte of the manifest, another key, a mangled signature:
	// each sign.ErrSignature, and nothing parsed.
	bad := bytes.Replace(mb, []byte(`"size": 1000`), []byte(`"size": 1001`), 1)
	if bytes.Equal(bad, mb) {
		t.Fatal("test did not change the manifest")
	}
	otherPub, _, _ := sign.GenerateKey()
	op, _ := sign.ParsePublicKey(otherPub)
	for name, c := range map[string]struct {
		data, sig []byte
		pub       ed25519.PublicKey
	}{
		"changed manifest": {bad, sig, pub},
		"other key":        {mb, sig, op},
		"garbage sig":      {mb, []byte("AAAA\n"), pub},
		"no key":           {mb, sig, nil},
	} {
		if got, err := Verify(c.data, c.sig, c.pub); !errors.Is(err, sign.ErrSignature) || got != nil {
			t.Errorf("%s: err = %v, want sign.ErrSignature", name, err)
		}
	}
}

func TestVerifyRejectsBadManifest(t *testing.T) {
	_, privF, _ := sign.GenerateKey()
	priv, _ := sign.ParsePrivateKey(privF)
	pub := priv.Public().(ed25519.PublicKey)
	h := strings.Repeat("ab", 32)
	for name, js := range map[string]string{
		"escaping path": `{"version":1,"files":[{"path":"../etc/passwd","size":1,"sha256":"` + h + `"}]}`,
		"absolute path": `{"version":1,"files":[{"path":"/x","size":1,"sha256":"` + h + `"}]}`,
		"short hash":    `{"version":1,"files":[{"path":"x","size":1,"sha256":"abcd"}]}`,
		"unknown field": `{"version":1,"bogus":1,"files":[{"path":"x","size":1,"sha256":"` + h + `"}]}`,
		"no image file": `{"version":1,"image":{"file":"y","index":1},"files":[{"path":"x","size":1,"sha256":"` + h + `"}]}`,
		"chunk count":   `{"version":1,"files":[{"path":"x","size":10,"sha256":"` + h + `","chunk_size":4,"chunks":["` + h + `"]}]}`,
		"version":       `{"version":2,"files":[{"path":"x","size":1,"sha256":"` + h + `"}]}`,
		// Names that are no file, or the staging folder's own files.
		"dot":       `{"version":1,"files":[{"path":".","size":1,"sha256":"` + h + `"}]}`,
		"journal":   `{"version":1,"files":[{"path":"journal.json","size":1,"sha256":"` + h + `"}]}`,
		"manifest":  `{"version":1,"files":[{"path":"manifest.json","size":1,"sha256":"` + h + `"}]}`,
		"signature": `{"version":1,"files":[{"path":"manifest.sig","size":1,"sha256":"` + h + `"}]}`,
		"NUL":       `{"version":1,"files":[{"path":"a\u0000b","size":1,"sha256":"` + h + `"}]}`,
		"newline":   `{"version":1,"files":[{"path":"a\nb","size":1,"sha256":"` + h + `"}]}`,
		// Hashes that can never match a computed (lower-case) one.
		"upper-case hash":  `{"version":1,"files":[{"path":"x","size":1,"sha256":"` + strings.ToUpper(h) + `"}]}`,
		"upper-case chunk": `{"version":1,"files":[{"path":"x","size":4,"sha256":"` + h + `","chunk_size":4,"chunks":["` + strings.ToUpper(h) + `"]}]}`,
		// Sizes whose arithmetic overflows: size+chunk_size-1 wrapped to
		// zero chunks expected, and zero given.
		"size near MaxInt64": `{"version":1,"files":[{"path":"x","size":9223372036854775807,"sha256":"` + h + `","chunk_size":9223372036854775807}]}`,
		"sizes adding up":    `{"version":1,"files":[{"path":"x","size":1000000000000000,"sha256":"` + h + `"},{"path":"y","size":1000000000000000,"sha256":"` + h + `"}]}`,
	} {
		if _, err := Verify([]byte(js), sign.Sign([]byte(js), priv), pub); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func TestVerifyFile(t *testing.T) {
	dir, m, _, _ := pkg(t, 5000)
	p := filepath.Join(dir, "image.wim")
	var last int64
	if err := VerifyFile(p, &m.Files[0], func(done, total int64) { last = done }); err != nil || last != 5000 {
		t.Fatalf("VerifyFile = %v (progress %d)", err, last)
	}
	b, _ := os.ReadFile(p)
	b[4000] ^= 1
	os.WriteFile(p, b, 0o644)
	if err := VerifyFile(p, &m.Files[0], nil); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), m.Files[0].SHA256) {
		t.Errorf("changed byte: %v, want ErrChecksum naming the expected hash", err)
	}
	os.WriteFile(p, b[:4999], 0o644)
	if err := VerifyFile(p, &m.Files[0], nil); !errors.Is(err, ErrSize) {
		t.Errorf("short file: %v, want ErrSize", err)
	}
}
