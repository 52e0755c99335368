package authenticode

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/authenticode/authenticodetest"
)

// The systemd EFI stub is a real, small, unsigned PE32+ EFI application
// (Debian package systemd-boot-efi, which the media builder needs anyway).
const stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

func readStub(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(stub)
	if err != nil {
		t.Skipf("%s: %v (install systemd-boot-efi: scripts/setup-host.sh)", stub, err)
	}
	return b
}

func newPair(t *testing.T, cn string) pair {
	k := authenticodetest.NewKey(t, cn)
	return pair{key: k.Key, cert: k.Cert, keyFile: k.KeyFile, crtFile: k.CertFile}
}

type pair struct {
	key              *rsa.PrivateKey
	cert             *x509.Certificate
	keyFile, crtFile string
}

func TestSignVerify(t *testing.T) {
	img := readStub(t)
	p := newPair(t, "minint test db")
	signed, err := Sign(img, p.key, p.cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(signed, p.cert); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	sigs, err := Signatures(signed)
	if err != nil || len(sigs) != 1 || sigs[0].Signer == nil || !sigs[0].Signer.Equal(p.cert) {
		t.Fatalf("signatures %+v, %v", sigs, err)
	}
	// The image itself is unchanged apart from padding, checksum and the
	// certificate table entry.
	if !bytes.Equal(signed[:0x80], img[:0x80]) {
		t.Error("DOS header changed")
	}
	// Deterministic: no signing time, RSA PKCS#1 v1.5.
	again, _ := Sign(img, p.key, p.cert)
	if !bytes.Equal(signed, again) {
		t.Error("two signatures of the same image differ")
	}
	// Another key's certificate does not verify it.
	other := newPair(t, "someone else")
	if err := Verify(signed, other.cert); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other cert: %v", err)
	}
	// One changed byte in a section breaks it.
	h, _ := parse(signed)
	bad := append([]byte(nil), signed...)
	bad[h.sections[0].off+100] ^= 1
	if err := Verify(bad, p.cert); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("tampered image: %v", err)
	}
	if _, err := Sign(signed, p.key, p.cert); !errors.Is(err, ErrSigned) {
		t.Errorf("signing twice: %v", err)
	}
	if err := Verify(img, p.cert); !errors.Is(err, ErrNotSigned) {
		t.Errorf("unsigned: %v", err)
	}
	// Checksum is right.
	if got := Checksum(signed, h.checksumOff); got != leUint32(signed[h.checksumOff:]) {
		t.Errorf("checksum %#x, file says %#x", got, leUint32(signed[h.checksumOff:]))
	}

	// Oracle: sbverify (sbsigntool) accepts our signature and refuses it
	// for the other certificate and for the tampered image.
	sbverify, err := exec.LookPath("sbverify")
	if err != nil {
		t.Skip("sbverify not installed (package sbsigntool)")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, b, 0o644)
		return f
	}
	if out, err := exec.Command(sbverify, "--cert", p.crtFile, write("ok.efi", signed)).CombinedOutput(); err != nil {
		t.Errorf("sbverify refuses our signature: %v\n%s", err, out)
	}
	if out, err := exec.Command(sbverify, "--cert", other.crtFile, write("ok2.efi", signed)).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepts the wrong certificate:\n%s", out)
	}
	if out, err := exec.Command(sbverify, "--cert", p.crtFile, write("bad.efi", bad)).CombinedOutput(); err == nil {
		t.Errorf("sbverify accepts a tampered image:\n%s", out)
	}
}

// TestVerifySbsign checks the other direction: what sbsign signs, Verify
// accepts, and Digest is the digest sbsign signed.
func TestVerifySbsign(t *testing.T) {
	img := readStub(t)
	sbsign, err := exec.LookPath("sbsign")
	if err != nil {
		t.Skip("sbsign not installed (package sbsigntool)")
	}
	p := newPair(t, "sbsign test")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.efi"), filepath.Join(dir, "out.efi")
	os.WriteFile(in, img, 0o644)
	if msg, err := exec.Command(sbsign, "--key", p.keyFile, "--cert", p.crtFile, "--output", out, in).CombinedOutput(); err != nil {
		t.Fatalf("sbsign: %v\n%s", err, msg)
	}
	signed, _ := os.ReadFile(out)
	if err := Verify(signed, p.cert); err != nil {
		t.Fatalf("sbsign's signature: %v", err)
	}
	sigs, _ := Signatures(signed)
	d, _ := Digest(signed)
	if !bytes.Equal(sigs[0].raw.imageDigest, d) {
		t.Fatal("Digest differs from the digest sbsign signed")
	}
}

func TestLoadKeyPair(t *testing.T) {
	p := newPair(t, "files")
	other := newPair(t, "other")
	if _, c, err := LoadKeyPair(p.keyFile, p.crtFile); err != nil || !c.Equal(p.cert) {
		t.Fatalf("%v", err)
	}
	dir := t.TempDir()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(p.key)
	k8 := filepath.Join(dir, "k8.pem")
	os.WriteFile(k8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600)
	if _, _, err := LoadKeyPair(k8, p.crtFile); err != nil {
		t.Fatalf("PKCS#8: %v", err)
	}
	enc := filepath.Join(dir, "enc.pem")
	os.WriteFile(enc, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), 0o600)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecb, _ := x509.MarshalPKCS8PrivateKey(ec)
	eck := filepath.Join(dir, "ec.pem")
	os.WriteFile(eck, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecb}), 0o600)
	for _, c := range []struct{ name, key, cert, want string }{
		{"mismatch", other.keyFile, p.crtFile, "not the certificate's"},
		{"encrypted", enc, p.crtFile, "encrypted"},
		{"ecdsa", eck, p.crtFile, "RSA"},
		{"cert as key", p.crtFile, p.crtFile, "not a private key"},
		{"missing key", filepath.Join(dir, "nope"), p.crtFile, "no such file"},
		{"missing cert", p.keyFile, filepath.Join(dir, "nope"), "no such file"},
		{"key as cert", p.keyFile, p.keyFile, "not a CERTIFICATE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := LoadKeyPair(c.key, c.cert)
			if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrKey mentioning %q", err, c.want)
			}
		})
	}
}

func TestBadImages(t *testing.T) {
	img := readStub(t)
	p := newPair(t, "bad")
	signed, err := Sign(img, p.key, p.cert)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := parse(img)
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not MZ", []byte(strings.Repeat("x", 512))},
		{"truncated headers", img[:0x100]},
		{"truncated sections", img[:h.sections[len(h.sections)-1].off+10]},
	} {
		if _, err := Sign(c.b, p.key, p.cert); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Sign gave %v", c.name, err)
		}
		if _, err := Signatures(c.b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Signatures gave %v", c.name, err)
		}
	}
	// A certificate table that points past the end.
	b := append([]byte(nil), signed...)
	sh, _ := parse(b)
	putUint32(b[sh.certDirOff+4:], uint32(sh.certSize+8))
	if _, err := Signatures(b); !errors.Is(err, ErrFormat) {
		t.Errorf("cert table past the end: %v", err)
	}
	// Garbage in the PKCS#7.
	b = append([]byte(nil), signed...)
	for i := sh.certOff + 8; i < sh.certOff+40; i++ {
		b[i] = 0xff
	}
	if _, err := Signatures(b); !errors.Is(err, ErrFormat) {
		t.Errorf("garbage PKCS#7: %v", err)
	}
}

func FuzzSignatures(f *testing.F) {
	if img, err := os.ReadFile(stub); err == nil {
		k := authenticodetest.NewKey(f, "fuzz")
		if s, err := Sign(img, k.Key, k.Cert); err == nil {
			// Headers and the signature only: keep the seed small.
			h, _ := parse(s)
			f.Add(append(append([]byte(nil), s[:h.sizeOfHeaders]...), s[h.certOff:]...))
		}
		f.Add(img[:4096])
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sigs, err := Signatures(b)
		if err == nil && len(sigs) == 0 {
			t.Fatal("no error and no signature")
		}
		Digest(b)
	})
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
