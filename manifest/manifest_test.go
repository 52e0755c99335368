package manifest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/wim"
	"github.com/minint/minint/wim/wimtest"
)

var day0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// pkg writes a package into a new directory: one pseudo-random file, its
// manifest (version 12.4, created day0, expiring 30 days later) and
// signature. It returns the dir, manifest, its bytes and the public key.
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
	m, mb, err := Build(dir, []string{"image.wim"}, BuildOptions{Name: "test", Version: "12.4", Created: day0, ExpiresIn: 30 * 24 * time.Hour, Image: &Image{File: "image.wim", Index: 1}, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign.Sign(mb, priv, m.SignContext())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, FileName), mb, 0o644)
	os.WriteFile(filepath.Join(dir, SignatureName), sig, 0o644)
	return dir, m, mb, pub
}

// legacySign signs as minint did before minisign: no context.
func legacySign(data []byte, priv ed25519.PrivateKey) []byte {
	return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, data)) + "\n")
}

var soon = VerifyOptions{Now: day0.Add(time.Hour)}

func TestSignVerify(t *testing.T) {
	dir, m, mb, pub := pkg(t, 1000)
	sig, _ := os.ReadFile(filepath.Join(dir, SignatureName))
	got, err := Verify(mb, sig, pub, VerifyOptions{Name: "test", MinVersion: "12.4", Now: day0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got.PackageVersion != "12.4" || got.Signature.Version != "12.4" || got.Signature.Legacy || !got.Expires.Equal(day0.AddDate(0, 0, 30)) {
		t.Errorf("verified manifest: version %q, signature %+v, expires %s", got.PackageVersion, got.Signature, got.Expires)
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
		if got, err := Verify(c.data, c.sig, c.pub, soon); !errors.Is(err, sign.ErrSignature) || got != nil {
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
		"pkg version":        `{"version":1,"package_version":"12.x","files":[{"path":"x","size":1,"sha256":"` + h + `"}]}`,
		"new signature":      `{"version":1,"files":[{"path":"manifest.json.sig","size":1,"sha256":"` + h + `"}]}`,
		// A WIM checksum table where no WIM is applied, or not 8 bytes a
		// blob, or more blobs than the WIM has room for.
		"xxh64 without image": `{"version":1,"files":[{"path":"x","size":100,"sha256":"` + h + `","wim_xxh64":"AAAAAAAAAAA="}]}`,
		"xxh64 not the image": `{"version":1,"image":{"file":"y","index":1},"files":[{"path":"x","size":100,"sha256":"` + h + `","wim_xxh64":"AAAAAAAAAAA="},{"path":"y","size":100,"sha256":"` + h + `"}]}`,
		"xxh64 length":        `{"version":1,"image":{"file":"x","index":1},"files":[{"path":"x","size":100,"sha256":"` + h + `","wim_xxh64":"AAAAAAAAAA=="}]}`,
		"xxh64 too many":      `{"version":1,"image":{"file":"x","index":1},"files":[{"path":"x","size":99,"sha256":"` + h + `","wim_xxh64":"AAAAAAAAAAAAAAAAAAAAAA=="}]}`,
		"xxh64 not base64":    `{"version":1,"image":{"file":"x","index":1},"files":[{"path":"x","size":100,"sha256":"` + h + `","wim_xxh64":"AAAA!AAAAAA="}]}`,
		// A chunk hash the PE does not know, or one with no chunks.
		"chunk hash unknown":   `{"version":1,"files":[{"path":"x","size":4,"sha256":"` + h + `","chunk_size":4,"chunks":["` + h + `"],"chunk_hash":"md5"}]}`,
		"chunk hash upper":     `{"version":1,"files":[{"path":"x","size":4,"sha256":"` + h + `","chunk_size":4,"chunks":["` + h + `"],"chunk_hash":"BLAKE3"}]}`,
		"chunk hash no chunks": `{"version":1,"files":[{"path":"x","size":4,"sha256":"` + h + `","chunk_hash":"blake3"}]}`,
		// A chunk larger than a PE holds in memory to check it.
		"chunk too large": `{"version":1,"files":[{"path":"x","size":134217728,"sha256":"` + h + `","chunk_size":134217728,"chunks":["` + h + `"]}]}`,
	} {
		if _, err := Verify([]byte(js), legacySign([]byte(js), priv), pub, VerifyOptions{}); !errors.Is(err, ErrFormat) {
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

// TestVerifyContext: what a manifest's signature binds. A replayed older
// package, another package, an expired one, a sequence's signature and a
// signature whose context disagrees with the manifest are refused; the old
// format is still read (callers warn) unless a floor needs a version.
func TestVerifyContext(t *testing.T) {
	dir, m, mb, pub := pkg(t, 1000)
	sig, _ := os.ReadFile(filepath.Join(dir, SignatureName))
	// pkg keeps its key; the cases that sign anew use a second one.
	pubF2, privF2, _ := sign.GenerateKey()
	pub2, _ := sign.ParsePublicKey(pubF2)
	priv2, _ := sign.ParsePrivateKey(privF2)
	seqSig, _ := sign.Sign(mb, priv2, sign.Context{Purpose: sign.PurposeSequence, Created: day0})
	// A context that says another version than the manifest.
	lie := m.SignContext()
	lie.Version = "99"
	lieSig, _ := sign.Sign(mb, priv2, lie)
	for name, c := range map[string]struct {
		sig  []byte
		pub  ed25519.PublicKey
		o    VerifyOptions
		want error
		msg  string
	}{
		"older than floor": {sig, pub, VerifyOptions{MinVersion: "12.5", Now: soon.Now}, sign.ErrVersion, "older than the minimum 12.5"},
		"another package":  {sig, pub, VerifyOptions{Name: "windows-2020", Now: soon.Now}, sign.ErrSignature, `the package is "test", not the "windows-2020"`},
		"expired":          {sig, pub, VerifyOptions{Now: day0.AddDate(0, 0, 31)}, sign.ErrExpired, "expired"},
		"sequence sig":     {seqSig, pub2, soon, sign.ErrPurpose, "signed as a sequence, used as a package"},
		"context mismatch": {lieSig, pub2, soon, sign.ErrSignature, `version "99"`},
		"legacy and floor": {legacySign(mb, priv2), pub2, VerifyOptions{MinVersion: "1", Now: soon.Now}, sign.ErrVersion, "old format"},
	} {
		got, err := Verify(mb, c.sig, c.pub, c.o)
		if !errors.Is(err, c.want) || !errors.Is(err, sign.ErrSignature) || got != nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v saying %q", name, err, c.want, c.msg)
		}
	}
	got, err := Verify(mb, legacySign(mb, priv2), pub2, soon)
	if err != nil || !got.Signature.Legacy {
		t.Errorf("old-format signature: %+v, %v; want accepted as Legacy", got, err)
	}
}

// TestBuildWIMChecksums: the image's entry carries the WIM's table,
// which survives signing and Verify; a WIM whose data fails its SHA-1s
// gets no manifest.
func TestBuildWIMChecksums(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	data := bytes.Repeat([]byte("a file of the image "), 500)
	os.WriteFile(filepath.Join(src, "etc", "f"), data, 0o644)
	os.WriteFile(filepath.Join(src, "g"), []byte("another"), 0o644)
	p := filepath.Join(dir, "image.wim")
	wimtest.Capture(t, src, p, wim.WriterOptions{Compression: wim.CompressionNone}, wim.ImageOptions{Name: "x"})
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	r, err := wim.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := r.Checksums(context.Background(), wim.VerifyOptions{})
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 16 {
		t.Fatalf("the WIM's table has %d bytes, want 16 (two blobs)", len(want))
	}

	_, privF, _ := sign.GenerateKey()
	priv, _ := sign.ParsePrivateKey(privF)
	o := BuildOptions{Image: &Image{File: "image.wim", Index: 1}, WIMChecksums: true, Created: day0}
	m, mb, err := Build(dir, []string{"image.wim", "notes.txt"}, o)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := sign.Sign(mb, priv, m.SignContext())
	got, err := Verify(mb, sig, priv.Public().(ed25519.PublicKey), VerifyOptions{Now: day0})
	if err != nil {
		t.Fatal(err)
	}
	if img, _ := got.File("image.wim"); !bytes.Equal(img.WIMChecksums, want) {
		t.Errorf("verified table %x, want %x", img.WIMChecksums, want)
	}
	if notes, _ := got.File("notes.txt"); notes.WIMChecksums != nil {
		t.Errorf("a file that is not the image got a table: %x", notes.WIMChecksums)
	}
	if m, _, err := Build(dir, []string{"image.wim"}, BuildOptions{Image: o.Image, Created: day0}); err != nil || m.Files[0].WIMChecksums != nil {
		t.Errorf("without WIMChecksums: table %x, %v", m.Files[0].WIMChecksums, err)
	}

	img, _ := m.File("image.wim")
	if err := VerifyWIMChecksums(p, img, nil); err != nil {
		t.Errorf("VerifyWIMChecksums of the table Build made: %v", err)
	}
	for name, table := range map[string]wim.Checksums{
		"one checksum changed": append(wim.Checksums{want[0] ^ 1}, want[1:]...),
		"one checksum short":   want[:8],
	} {
		e := *img
		e.WIMChecksums = table
		if err := VerifyWIMChecksums(p, &e, nil); !errors.Is(err, ErrChecksum) {
			t.Errorf("VerifyWIMChecksums, %s: %v, want ErrChecksum", name, err)
		}
	}

	b, _ := os.ReadFile(p)
	i := bytes.Index(b, data)
	if i < 0 {
		t.Fatal("the file's data is not stored uncompressed in the test WIM")
	}
	b[i+7] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, _, err := Build(dir, []string{"image.wim"}, o); !errors.Is(err, wim.ErrChecksum) {
		t.Errorf("Build of a damaged WIM: %v, want wim.ErrChecksum", err)
	}
}

// TestBuildTooLarge: a manifest a PE would refuse to read is not written.
func TestBuildTooLarge(t *testing.T) {
	dir := t.TempDir()
	// 32-byte chunks: some 80,000 chunk hashes, over 5 MiB of JSON.
	os.WriteFile(filepath.Join(dir, "image.wim"), make([]byte, 80000*32), 0o644)
	_, _, err := Build(dir, []string{"image.wim"}, BuildOptions{Image: &Image{File: "image.wim", Index: 1}, ChunkSize: 32, Created: day0})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "more than the 4194304 a PE reads") {
		t.Errorf("err = %v, want ErrFormat naming the PE's bound", err)
	}
	// A chunk larger than a PE checks is refused before anything is
	// hashed.
	hashed := false
	_, _, err = Build(dir, []string{"image.wim"}, BuildOptions{ChunkSize: MaxChunkSize + 1, Created: day0, Progress: func(int64, int64) { hashed = true }})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "the most a PE holds in memory") || hashed {
		t.Errorf("chunk size %d: err = %v (hashed first: %v), want ErrFormat naming the PE's bound", MaxChunkSize+1, err, hashed)
	}
}

// TestReadDir: a package read from a directory, as a PE reads it from a
// medium: the signature under either name, and nothing read past the
// bounds a PE sets, whatever the files' sizes.
func TestReadDir(t *testing.T) {
	dir, _, mb, pub := pkg(t, 100<<10)
	data, sig, sigPath, err := ReadDir(dir)
	if err != nil || !bytes.Equal(data, mb) || sigPath != filepath.Join(dir, SignatureName) {
		t.Fatalf("ReadDir: %q, %v", sigPath, err)
	}
	if _, err := Verify(data, sig, pub, soon); err != nil {
		t.Fatal(err)
	}
	// A medium's short name.
	os.Rename(filepath.Join(dir, SignatureName), filepath.Join(dir, ShortSignatureName))
	if _, sig2, p, err := ReadDir(dir); err != nil || !bytes.Equal(sig2, sig) || p != filepath.Join(dir, ShortSignatureName) {
		t.Fatalf("short name: %q, %v", p, err)
	}
	grow := func(name string, size int64) {
		t.Helper()
		if err := os.Truncate(filepath.Join(dir, name), size); err != nil {
			t.Fatal(err)
		}
	}
	grow(ShortSignatureName, sign.MaxSize+1)
	if _, _, _, err := ReadDir(dir); !errors.Is(err, bounded.ErrTooLarge) || !errors.Is(err, sign.ErrSignature) {
		t.Errorf("a signature past sign.MaxSize: %v", err)
	}
	os.Remove(filepath.Join(dir, ShortSignatureName))
	if _, _, _, err := ReadDir(dir); !errors.Is(err, sign.ErrSignature) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no signature: %v", err)
	}
	grow(FileName, MaxSize+1)
	if _, _, _, err := ReadDir(dir); !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), FileName) {
		t.Errorf("a manifest past MaxSize: %v", err)
	}
}
