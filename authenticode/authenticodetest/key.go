// Package authenticodetest makes throwaway Secure Boot signing keys for
// tests: an RSA key and a self-signed certificate, as an organization's
// db key would be, in memory and as PEM files.
package authenticodetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Key is a test signing key and its certificate.
type Key struct {
	Key               *rsa.PrivateKey
	Cert              *x509.Certificate
	KeyFile, CertFile string // PEM (PKCS#1 key), in a test temporary directory
}

var serial int64

// NewKey makes a 2048-bit RSA key with a self-signed certificate for cn.
func NewKey(t testing.TB, cn string) Key {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(1600000000, 0), NotAfter: time.Unix(2600000000, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := Key{Key: key, Cert: cert, KeyFile: filepath.Join(dir, "db.key"), CertFile: filepath.Join(dir, "db.crt")}
	if err := os.WriteFile(k.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}
