package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestSignVerify(t *testing.T) {
	pubF, privF, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ParsePublicKey(pubF)
	priv, _ := ParsePrivateKey(privF)
	data := []byte(`{"version":1,"size": 1000}`)
	sig := Sign(data, priv)
	if err := Verify(data, sig, pub); err != nil {
		t.Fatal(err)
	}
	// One changed byte, another key, a mangled signature, no key: each
	// ErrSignature.
	bad := bytes.Replace(data, []byte(`1000`), []byte(`1001`), 1)
	otherPub, _, _ := GenerateKey()
	op, _ := ParsePublicKey(otherPub)
	for name, c := range map[string]struct {
		data, sig []byte
		pub       ed25519.PublicKey
	}{
		"changed data": {bad, sig, pub},
		"other key":    {data, sig, op},
		"garbage sig":  {data, []byte("AAAA\n"), pub},
		"no key":       {data, sig, nil},
	} {
		if err := Verify(c.data, c.sig, c.pub); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: err = %v, want ErrSignature", name, err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	pubF, privF, _ := GenerateKey()
	pub, err := ParsePublicKey(pubF)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := ParsePrivateKey(privF)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Error("private key file does not match public key file")
	}
	if _, err := ParsePublicKey(privF); !errors.Is(err, ErrKey) {
		t.Errorf("private key accepted as public: %v", err)
	}
	if _, err := ParsePrivateKey(pubF); !errors.Is(err, ErrKey) {
		t.Errorf("public key accepted as private: %v", err)
	}
}

func TestSignatureFor(t *testing.T) {
	for in, want := range map[string]string{
		"manifest.json":            "manifest.sig",
		"http://h/p/manifest.json": "http://h/p/manifest.sig",
		"/minint/sequence.yaml":    "/minint/sequence.sig",
		"noext":                    "noext.sig",
		"dir.d/file":               "dir.d/file.sig",
	} {
		if got := SignatureFor(in); got != want {
			t.Errorf("SignatureFor(%q) = %q, want %q", in, got, want)
		}
	}
}
