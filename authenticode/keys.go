package authenticode

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadKeyPair reads a PEM private key (PKCS#1 or PKCS#8, unencrypted) and
// a PEM (or DER) certificate, and checks that they belong together, so
// that a mismatch is found at build time rather than by the firmware
// refusing the medium.
func LoadKeyPair(keyFile, certFile string) (crypto.Signer, *x509.Certificate, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: certificate: %w", ErrKey, err)
	}
	if p, _ := pem.Decode(cb); p != nil {
		if p.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("%w: %s holds a PEM %q, not a CERTIFICATE", ErrKey, certFile, p.Type)
		}
		cb = p.Bytes
	}
	cert, err := x509.ParseCertificate(cb)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: certificate %s: %w", ErrKey, certFile, err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: key: %w", ErrKey, err)
	}
	p, _ := pem.Decode(kb)
	if p == nil {
		return nil, nil, fmt.Errorf("%w: %s is not a PEM private key", ErrKey, keyFile)
	}
	var key any
	switch p.Type {
	case "ENCRYPTED PRIVATE KEY":
		return nil, nil, fmt.Errorf("%w: %s is encrypted; give a decrypted copy in a protected file (openssl pkey -in %s -out KEY.pem)", ErrKey, keyFile, keyFile)
	case "RSA PRIVATE KEY":
		if _, enc := p.Headers["DEK-Info"]; enc {
			return nil, nil, fmt.Errorf("%w: %s is encrypted; give a decrypted copy in a protected file (openssl pkey -in %s -out KEY.pem)", ErrKey, keyFile, keyFile)
		}
		key, err = x509.ParsePKCS1PrivateKey(p.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(p.Bytes)
	default:
		return nil, nil, fmt.Errorf("%w: %s holds a PEM %q, not a private key", ErrKey, keyFile, p.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrKey, keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s: a %T cannot sign", ErrKey, keyFile, key)
	}
	if err := checkKey(signer, cert); err != nil {
		return nil, nil, fmt.Errorf("%s and %s: %w", keyFile, certFile, err)
	}
	return signer, cert, nil
}
