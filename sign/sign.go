// Package sign makes and checks minint's detached signatures: the
// signature files beside image-package manifests and network sequences,
// and the key files they are made with.
//
// Keys and signatures are minisign's (https://jedisct1.github.io/minisign/):
// ed25519 keys with an 8-byte key ID, signatures over the BLAKE2b-512 of
// the data, and a trusted comment that is signed together with them. The
// real minisign tool can verify what minint signs, sign what the PE
// accepts (with a trusted comment in the form below), and use keys made
// by `minint keygen`.
//
// A signature covers the exact bytes of a file and what they are for: the
// trusted comment carries a Context (purpose, name, version, creation and
// expiry time), so a package manifest's signature does not pass as a
// sequence's, an expired one is refused, and a reader given a floor
// refuses older versions (see Policy). A reader checks all of it before it
// parses the bytes, so nothing reaches a parser that the key holder did
// not sign for that use. The PE carries the public key; the private key
// stays on the machine that runs `minint package create` or
// `minint package sign`.
//
// The format of minint before minisign (one line of base64, no context;
// keys "minint-ed25519-public/private BASE64") is still read for one
// release: Verify reports such a signature as Legacy so that callers warn,
// and a Policy with a version floor refuses it.
package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/blake2b"
)

var (
	// ErrSignature: the data is not signed by the expected key, or not for
	// this use. Every verification failure wraps it.
	ErrSignature = errors.New("bad signature")
	// ErrKey: a key file is malformed.
	ErrKey = errors.New("bad key")
	// ErrPurpose: the signature was made for another kind of file (a
	// package manifest's signature offered for a sequence, or the reverse).
	ErrPurpose = errors.New("signed for another purpose")
	// ErrExpired: the signature's expiry time has passed.
	ErrExpired = errors.New("signature expired")
	// ErrVersion: the signed version is below the reader's floor, or the
	// signature carries no version while a floor is set.
	ErrVersion = errors.New("version below the minimum")
)

// Purposes of the signed files minint knows. A purpose is a lowercase word;
// other packages may add their own.
const (
	PurposePackage  = "package"
	PurposeSequence = "sequence"
	PurposeState    = "state" // a user-state store's index (package state)
)

const (
	algEd        = "Ed" // key algorithm; also the legacy (not prehashed) signature
	algEdHashed  = "ED" // signature over BLAKE2b-512 of the data
	commentStart = "untrusted comment: "
	trustedStart = "trusted comment: "
	contextStart = "minint "
	// The format before minisign.
	legacyPublic  = "minint-ed25519-public "
	legacyPrivate = "minint-ed25519-private "
)

// keyNum is the key ID minint gives a key: the first 8 bytes of the
// SHA-256 of the public key. Deriving it (minisign draws it at random)
// lets an ed25519.PublicKey alone name itself; minisign shows it as 16 hex
// digits of a little-endian number, and so does KeyID.
func keyNum(pub ed25519.PublicKey) [8]byte {
	s := sha256.Sum256(pub)
	return [8]byte(s[:8])
}

func formatKeyNum(n [8]byte) string {
	return fmt.Sprintf("%016X", binary.LittleEndian.Uint64(n[:]))
}

// KeyID is the key's ID as minisign prints it (e.g. in
// "untrusted comment: minisign public key 5DEEDF2AA2358150").
func KeyID(pub ed25519.PublicKey) string {
	return formatKeyNum(keyNum(pub))
}

// GenerateKey makes a key pair and returns both files' contents in
// minisign's format; the secret key is not encrypted with a password
// (as `minisign -G -W` writes it), so that CI can sign unattended: keep
// the file private (keygen writes it mode 0600).
func GenerateKey() (pubFile, privFile []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	n := keyNum(pub)
	id := formatKeyNum(n)
	pk := append(append([]byte(algEd), n[:]...), pub...)
	// Ed, no KDF, B2 checksum, zero salt and limits, then key ID, secret
	// key and checksum: 158 bytes.
	sk := append([]byte(algEd), 0, 0, 'B', '2')
	sk = append(sk, make([]byte, 32+8+8)...)
	sk = append(sk, n[:]...)
	sk = append(sk, priv...)
	chk := blake2b.Sum256(append(append([]byte(algEd), n[:]...), priv...))
	sk = append(sk, chk[:]...)
	return []byte(commentStart + "minisign public key " + id + "\n" + base64.StdEncoding.EncodeToString(pk) + "\n"),
		[]byte(commentStart + "minisign secret key " + id + " (not encrypted)\n" + base64.StdEncoding.EncodeToString(sk) + "\n"), nil
}

// keyLine returns the base64 line of a minisign file: the one after an
// "untrusted comment:" line, or the only line (minisign -P takes a public
// key as one bare line).
func keyLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 2 && strings.HasPrefix(lines[0], commentStart) {
		return strings.TrimSpace(lines[1])
	}
	if len(lines) == 1 {
		return strings.TrimSpace(lines[0])
	}
	return ""
}

// ParsePublicKey reads a public key file: minisign's (minint keygen,
// minisign -G), or minint's format before it.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), legacyPublic); ok {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err == nil && len(raw) == ed25519.PublicKeySize {
			return ed25519.PublicKey(raw), nil
		}
	}
	raw, err := base64.StdEncoding.DecodeString(keyLine(b))
	if err != nil || len(raw) != 2+8+ed25519.PublicKeySize || string(raw[:2]) != algEd {
		return nil, fmt.Errorf("%w: want a minisign public key (\"untrusted comment: …\" then one base64 line starting RW), as minint keygen writes it", ErrKey)
	}
	return ed25519.PublicKey(raw[10:]), nil
}

// ParsePrivateKey reads a secret key file: minisign's without a password
// (minint keygen, minisign -G -W), or minint's format before it. A key
// must carry the ID minint derives from it (see KeyID), so that what
// minint signs names the key as the public key file does.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	if s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), legacyPrivate); ok {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err == nil && len(raw) == ed25519.SeedSize {
			return ed25519.NewKeyFromSeed(raw), nil
		}
	}
	raw, err := base64.StdEncoding.DecodeString(keyLine(b))
	if err != nil || len(raw) != 158 || string(raw[:2]) != algEd || string(raw[4:6]) != "B2" {
		return nil, fmt.Errorf("%w: want a minisign secret key (\"untrusted comment: …\" then one base64 line starting RW), as minint keygen writes it", ErrKey)
	}
	if kdf := raw[2:4]; kdf[0] != 0 || kdf[1] != 0 {
		return nil, fmt.Errorf("%w: the secret key is encrypted with a password (kdf %q); minint signs unattended with keys made by minint keygen or minisign -G -W", ErrKey, kdf)
	}
	n, sk := [8]byte(raw[54:62]), raw[62:126]
	priv := ed25519.NewKeyFromSeed(sk[:32])
	if !bytes.Equal(priv, sk) {
		return nil, fmt.Errorf("%w: the secret key's halves do not match (damaged file)", ErrKey)
	}
	if want := keyNum(priv.Public().(ed25519.PublicKey)); n != want {
		return nil, fmt.Errorf("%w: key ID %s is not the one minint derives from this key (%s): make signing keys with minint keygen", ErrKey, formatKeyNum(n), formatKeyNum(want))
	}
	return priv, nil
}

// Context is what a signature says about the signed bytes; it travels in
// minisign's trusted comment, e.g.
//
//	trusted comment: minint purpose=package name=debian-12 version=12.4 created=2026-11-28T09:00:00Z expires=2027-05-28T09:00:00Z
//
// Fields are key=value without spaces; unknown keys are refused (a reader
// must not ignore a restriction it does not understand).
type Context struct {
	Purpose string    // PurposePackage, PurposeSequence, …: required
	Name    string    // optional: the package's or file's name
	Version string    // optional: dot-separated numbers, compared numerically
	Created time.Time // Sign fills in the current time when zero
	Expires time.Time // optional: refused from then on
}

func (c Context) String() string {
	s := contextStart + "purpose=" + c.Purpose
	if c.Name != "" {
		s += " name=" + c.Name
	}
	if c.Version != "" {
		s += " version=" + c.Version
	}
	s += " created=" + c.Created.UTC().Format(time.RFC3339)
	if !c.Expires.IsZero() {
		s += " expires=" + c.Expires.UTC().Format(time.RFC3339)
	}
	return s
}

func (c Context) check() error {
	if c.Purpose == "" || strings.Trim(c.Purpose, "abcdefghijklmnopqrstuvwxyz-") != "" {
		return fmt.Errorf("purpose %q: want a lowercase word", c.Purpose)
	}
	if len(c.Name) > 200 || strings.ContainsFunc(c.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("name %q: want at most 200 characters without spaces", c.Name)
	}
	if c.Version != "" {
		if _, err := parseVersion(c.Version); err != nil {
			return err
		}
	}
	if !c.Expires.IsZero() && !c.Expires.After(c.Created) {
		return fmt.Errorf("expires %s is not after created %s", c.Expires.UTC().Format(time.RFC3339), c.Created.UTC().Format(time.RFC3339))
	}
	return nil
}

// ParseContext reads a trusted comment written by Context.String (without
// the "trusted comment: " prefix).
func ParseContext(s string) (Context, error) {
	var c Context
	rest, ok := strings.CutPrefix(s, contextStart)
	if !ok {
		return c, fmt.Errorf("the trusted comment %q does not start with %q, so it does not say what was signed", s, contextStart)
	}
	seen := map[string]bool{}
	for _, f := range strings.Split(rest, " ") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" || seen[k] {
			return c, fmt.Errorf("trusted comment: field %q: want key=value, each key once", f)
		}
		seen[k] = true
		var err error
		switch k {
		case "purpose":
			c.Purpose = v
		case "name":
			c.Name = v
		case "version":
			c.Version = v
		case "created":
			c.Created, err = time.Parse(time.RFC3339, v)
		case "expires":
			c.Expires, err = time.Parse(time.RFC3339, v)
		default:
			return c, fmt.Errorf("trusted comment: unknown field %q (a newer minint?)", k)
		}
		if err != nil {
			return c, fmt.Errorf("trusted comment: %s: %v", k, err)
		}
	}
	if !seen["created"] {
		return c, fmt.Errorf("trusted comment: no created= time")
	}
	if err := c.check(); err != nil {
		return c, fmt.Errorf("trusted comment: %v", err)
	}
	return c, nil
}

// parseVersion splits "12.4.1" into numbers.
func parseVersion(v string) ([]uint64, error) {
	var out []uint64
	for _, p := range strings.Split(v, ".") {
		var n uint64
		if p == "" || len(p) > 18 || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("version %q: want dot-separated numbers (12.4, 2026.11.28, 42)", v)
		}
		for _, d := range p {
			n = n*10 + uint64(d-'0')
		}
		out = append(out, n)
	}
	return out, nil
}

// CompareVersions compares two versions number by number (12.10 > 12.9;
// missing numbers count as 0, so 12 == 12.0). It returns -1, 0 or +1, or
// an error when either is not dot-separated numbers.
func CompareVersions(a, b string) (int, error) {
	x, err := parseVersion(a)
	if err != nil {
		return 0, err
	}
	y, err := parseVersion(b)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(x) || i < len(y); i++ {
		var p, q uint64
		if i < len(x) {
			p = x[i]
		}
		if i < len(y) {
			q = y[i]
		}
		if p != q {
			if p < q {
				return -1, nil
			}
			return 1, nil
		}
	}
	return 0, nil
}

// Sign returns the signature file content (minisign's format) for data,
// with c as its trusted comment. c.Created defaults to now.
func Sign(data []byte, priv ed25519.PrivateKey, c Context) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: no valid private key to sign with", ErrKey)
	}
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	c.Created = c.Created.UTC().Truncate(time.Second)
	c.Expires = c.Expires.UTC().Truncate(time.Second)
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("signature context: %v", err)
	}
	n := keyNum(priv.Public().(ed25519.PublicKey))
	h := blake2b.Sum512(data)
	sig := ed25519.Sign(priv, h[:])
	tc := c.String()
	global := ed25519.Sign(priv, append(append([]byte{}, sig...), tc...))
	line := append(append([]byte(algEdHashed), n[:]...), sig...)
	return []byte(commentStart + "signature from minint key " + formatKeyNum(n) + "\n" +
		base64.StdEncoding.EncodeToString(line) + "\n" +
		trustedStart + tc + "\n" +
		base64.StdEncoding.EncodeToString(global) + "\n"), nil
}

// Policy is what a reader accepts besides a good signature.
type Policy struct {
	// Purpose the signature must name (PurposePackage, …): required.
	Purpose string
	// MinVersion, when set, refuses versions below it and signatures that
	// carry no version.
	MinVersion string
	// Now is the time expiry is judged at (zero: time.Now()).
	Now time.Time
}

// Signed is what Verify learned from a good signature.
type Signed struct {
	Context
	KeyID string
	// Legacy: the format before minisign, which carries no context; it is
	// accepted for one release, and callers warn.
	Legacy bool
}

// Verify checks a signature file over the exact bytes of data with pub,
// then the context it signs against p. Every failure wraps ErrSignature
// (and ErrPurpose, ErrExpired or ErrVersion where one applies), including
// a missing key: what cannot be verified is refused.
func Verify(data, sig []byte, pub ed25519.PublicKey, p Policy) (*Signed, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: no valid public key to check it with", ErrSignature)
	}
	if p.Purpose == "" {
		return nil, fmt.Errorf("%w: the reader names no purpose to check the signature against", ErrSignature)
	}
	want := KeyID(pub)
	lines := strings.Split(strings.TrimRight(string(sig), "\n"), "\n")
	if len(lines) == 1 {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[0]))
		if err != nil || len(raw) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: the signature file is neither minisign's format nor minint's older one", ErrSignature)
		}
		if !ed25519.Verify(pub, data, raw) {
			return nil, fmt.Errorf("%w: not signed by key %s, or changed after signing", ErrSignature, want)
		}
		if p.MinVersion != "" {
			return nil, fmt.Errorf("%w: %w: the signature is in minint's old format, which carries no version (minimum %s): sign again", ErrSignature, ErrVersion, p.MinVersion)
		}
		return &Signed{KeyID: want, Legacy: true}, nil
	}
	if len(lines) != 4 || !strings.HasPrefix(lines[0], commentStart) || !strings.HasPrefix(lines[2], trustedStart) {
		return nil, fmt.Errorf("%w: the signature file is not minisign's four lines (untrusted comment, signature, trusted comment, signature)", ErrSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil || len(raw) != 2+8+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: the signature line is not base64 of a minisign signature", ErrSignature)
	}
	global, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[3]))
	if err != nil || len(global) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: the trusted comment's signature is not base64 of an ed25519 signature", ErrSignature)
	}
	alg, n, s := string(raw[:2]), [8]byte(raw[2:10]), raw[10:]
	msg := data
	switch alg {
	case algEdHashed:
		h := blake2b.Sum512(data)
		msg = h[:]
	case algEd: // minisign -l
	default:
		return nil, fmt.Errorf("%w: unknown signature algorithm %q", ErrSignature, alg)
	}
	if !ed25519.Verify(pub, msg, s) {
		// minint derives key IDs, so a different one means another key;
		// keys made by minisign -G have random IDs and say nothing here.
		if got := formatKeyNum(n); got != want {
			return nil, fmt.Errorf("%w: signed by key %s, but the trusted key is %s", ErrSignature, got, want)
		}
		return nil, fmt.Errorf("%w: not signed by key %s, or changed after signing", ErrSignature, want)
	}
	tc := strings.TrimPrefix(lines[2], trustedStart)
	if !ed25519.Verify(pub, append(append([]byte{}, s...), tc...), global) {
		return nil, fmt.Errorf("%w: the trusted comment was changed after signing", ErrSignature)
	}
	c, err := ParseContext(tc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if c.Purpose != p.Purpose {
		return nil, fmt.Errorf("%w: %w: signed as a %s, used as a %s", ErrSignature, ErrPurpose, c.Purpose, p.Purpose)
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !c.Expires.IsZero() && !now.Before(c.Expires) {
		return nil, fmt.Errorf("%w: %w on %s (now %s)", ErrSignature, ErrExpired, c.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if p.MinVersion != "" {
		if c.Version == "" {
			return nil, fmt.Errorf("%w: %w: the signature carries no version (minimum %s)", ErrSignature, ErrVersion, p.MinVersion)
		}
		cmp, err := CompareVersions(c.Version, p.MinVersion)
		if err != nil {
			return nil, fmt.Errorf("%w: minimum %v", ErrSignature, err)
		}
		if cmp < 0 {
			return nil, fmt.Errorf("%w: %w: version %s is older than the minimum %s (a replayed older release?)", ErrSignature, ErrVersion, c.Version, p.MinVersion)
		}
	}
	return &Signed{Context: c, KeyID: formatKeyNum(n)}, nil
}

// MaxSize is the largest detached signature a PE reads: a minisign file
// is some 300 bytes, and the rest is room for a long trusted comment.
const MaxSize = 16 << 10

// SignatureFor names the detached signature of a file: ".sig" appended
// (manifest.json -> manifest.json.sig, seq.yaml -> seq.yaml.sig; URLs the
// same).
func SignatureFor(name string) string {
	return name + ".sig"
}

// ShortSignatureFor is the signature's name with the file's extension
// replaced (manifest.json -> manifest.sig): minint's name before
// SignatureFor, which HTTP readers still accept, with a warning, for one
// release, and the name on an ISO 9660 boot medium, whose 8.3 names
// (cut at the first dot, as go-diskfs makes them) cannot tell FILE.ext
// from FILE.ext.sig.
func ShortSignatureFor(name string) string {
	base := name
	if ext := path.Ext(name); ext != "" && !strings.HasSuffix(base, "/"+ext) {
		base = strings.TrimSuffix(name, ext)
	}
	return base + ".sig"
}
