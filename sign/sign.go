// Package sign makes and checks minint's detached signatures: the
// signature files beside image-package manifests and network sequences,
// and the key files they are made with.
//
// A signature covers the exact bytes of a file, and a reader checks it
// before it parses those bytes, so nothing reaches a parser that the key
// holder did not sign. The PE carries the public key; the private key
// stays on the machine that runs `minint package create` or
// `minint package sign`.
package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
)

var (
	// ErrSignature: the data is not signed by the expected key.
	ErrSignature = errors.New("bad signature")
	// ErrKey: a key file is malformed.
	ErrKey = errors.New("bad key")
)

// Key files are one line each: "minint-ed25519-public BASE64" (32 bytes)
// and "minint-ed25519-private BASE64" (the 32-byte seed).
const (
	publicPrefix  = "minint-ed25519-public "
	privatePrefix = "minint-ed25519-private "
)

// GenerateKey makes a key pair and returns both files' contents.
func GenerateKey() (pubFile, privFile []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return []byte(publicPrefix + base64.StdEncoding.EncodeToString(pub) + "\n"),
		[]byte(privatePrefix + base64.StdEncoding.EncodeToString(priv.Seed()) + "\n"), nil
}

// ParsePublicKey reads a public key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), publicPrefix)
	raw, err := base64.StdEncoding.DecodeString(s)
	if !ok || err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: want one line %q followed by a base64 32-byte key", ErrKey, strings.TrimSpace(publicPrefix))
	}
	return ed25519.PublicKey(raw), nil
}

// ParsePrivateKey reads a private key file.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), privatePrefix)
	raw, err := base64.StdEncoding.DecodeString(s)
	if !ok || err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: want one line %q followed by a base64 32-byte seed", ErrKey, strings.TrimSpace(privatePrefix))
	}
	return ed25519.NewKeyFromSeed(raw), nil
}

// KeyID is a short fingerprint of a public key for messages.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Sign returns the signature file content for data.
func Sign(data []byte, priv ed25519.PrivateKey) []byte {
	return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, data)) + "\n")
}

// Verify checks a signature file (see Sign) over the exact bytes of data.
// Every failure wraps ErrSignature, including a missing key: what cannot be
// verified is refused.
func Verify(data, sig []byte, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: no valid public key to check it with", ErrSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: the signature file is not one base64 ed25519 signature", ErrSignature)
	}
	if !ed25519.Verify(pub, data, raw) {
		return fmt.Errorf("%w: not signed by key %s, or changed after signing", ErrSignature, KeyID(pub))
	}
	return nil
}

// SignatureFor names the detached signature of a file: its extension
// replaced by .sig (manifest.json -> manifest.sig, sequence.yaml ->
// sequence.sig). Replacing rather than appending keeps both names distinct
// in ISO 9660's 8.3 form, so a package can sit on the boot medium.
func SignatureFor(name string) string {
	base := name
	if ext := path.Ext(name); ext != "" && !strings.HasSuffix(base, "/"+ext) {
		base = strings.TrimSuffix(name, ext)
	}
	return base + ".sig"
}
