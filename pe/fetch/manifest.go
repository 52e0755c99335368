// Package fetch gets image packages to the PE and proves they are the ones
// that were signed before anything uses them.
//
// A package is a directory (on the boot medium or behind an HTTP server)
// holding a manifest.json, its detached ed25519 signature manifest.sig,
// and the files the manifest lists with their sizes and SHA-256 sums. The
// public key is built into the PE; the manifest is parsed only after its
// signature verifies, and a file is handed on only after its size and hash
// match. One verified reader chain: bytes -> size limit -> SHA-256 -> file.
//
// Downloads resume: a partial file (NAME.part in the staging folder) is
// continued with an HTTP Range request after a network error or a reboot,
// with retries and backoff, inside a bounded total time.
//
// Applying straight from HTTP (no room to stage) uses File, an io.ReaderAt
// over Range requests. To stay fail-closed there, the manifest may carry a
// SHA-256 per fixed-size chunk of the file (chunk_size, chunks), covered by
// the signature like everything else: every chunk is verified before a
// single byte of it is returned, so a tampered server can make an apply
// fail but never feed it unverified data. A whole-file hash alone could only
// be checked after the apply had already used the bytes.
package fetch

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

var (
	// ErrSignature: the manifest is not signed by the expected key.
	ErrSignature = errors.New("bad manifest signature")
	// ErrChecksum: a file's SHA-256 differs from the manifest's.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrSize: a file is shorter or longer than the manifest says.
	ErrSize = errors.New("size mismatch")
	// ErrManifest: the manifest is malformed.
	ErrManifest = errors.New("bad manifest")
	// ErrHTTP: the server answered with a status that retrying won't fix.
	ErrHTTP = errors.New("http error")
	// ErrKey: a key file is malformed.
	ErrKey = errors.New("bad key")
)

// ManifestName and SignatureName name the files of a package.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
	// DefaultChunkSize is the chunk of per-chunk hashes (see package doc).
	DefaultChunkSize = 4 << 20
)

// Manifest lists a package's files.
//
//	{
//	  "version": 1,
//	  "name": "debian-12",
//	  "created": "2026-11-28T09:00:00Z",
//	  "image": {"file": "debian.wim", "index": 1},
//	  "files": [{"path": "debian.wim", "size": 123, "sha256": "…",
//	             "chunk_size": 4194304, "chunks": ["…", …]}]
//	}
type Manifest struct {
	Version int       `json:"version"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Image   *Image    `json:"image,omitempty"`
	Files   []Entry   `json:"files"`
}

// Image says which file and image index to apply.
type Image struct {
	File  string `json:"file"`
	Index int    `json:"index"`
}

// Entry is one file of a package.
type Entry struct {
	Path      string   `json:"path"` // slash-separated, relative, clean
	Size      int64    `json:"size"`
	SHA256    string   `json:"sha256"`
	ChunkSize int64    `json:"chunk_size,omitempty"`
	Chunks    []string `json:"chunks,omitempty"`
}

// File returns the entry for path.
func (m *Manifest) File(p string) (*Entry, bool) {
	for i := range m.Files {
		if m.Files[i].Path == p {
			return &m.Files[i], true
		}
	}
	return nil, false
}

func (m *Manifest) validate() error {
	if m.Version != 1 {
		return fmt.Errorf("%w: version %d (want 1)", ErrManifest, m.Version)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("%w: no files", ErrManifest)
	}
	seen := map[string]bool{}
	for _, e := range m.Files {
		if e.Path == "" || path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || strings.HasPrefix(e.Path, "../") || e.Path == ".." || strings.Contains(e.Path, "\\") {
			return fmt.Errorf("%w: file path %q is not a clean relative path", ErrManifest, e.Path)
		}
		if seen[e.Path] {
			return fmt.Errorf("%w: %s listed twice", ErrManifest, e.Path)
		}
		seen[e.Path] = true
		if e.Size < 0 {
			return fmt.Errorf("%w: %s: negative size", ErrManifest, e.Path)
		}
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: %s: sha256 %q is not 64 hex digits", ErrManifest, e.Path, e.SHA256)
		}
		if e.ChunkSize != 0 || len(e.Chunks) != 0 {
			if e.ChunkSize <= 0 {
				return fmt.Errorf("%w: %s: chunks without a chunk_size", ErrManifest, e.Path)
			}
			if want := (e.Size + e.ChunkSize - 1) / e.ChunkSize; int64(len(e.Chunks)) != want {
				return fmt.Errorf("%w: %s: %d chunk hashes, want %d", ErrManifest, e.Path, len(e.Chunks), want)
			}
			for _, c := range e.Chunks {
				if b, err := hex.DecodeString(c); err != nil || len(b) != sha256.Size {
					return fmt.Errorf("%w: %s: chunk hash %q is not 64 hex digits", ErrManifest, e.Path, c)
				}
			}
		}
	}
	if m.Image != nil {
		if _, ok := m.File(m.Image.File); !ok {
			return fmt.Errorf("%w: image file %q is not among the files", ErrManifest, m.Image.File)
		}
		if m.Image.Index < 1 {
			return fmt.Errorf("%w: image index %d (indexes start at 1)", ErrManifest, m.Image.Index)
		}
	}
	return nil
}

// VerifySignature checks a detached signature file (see Sign) over the
// exact bytes of data.
func VerifySignature(data, sig []byte, pub ed25519.PublicKey) error {
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

// Verify checks sig over the exact bytes of data with pub, and only then
// parses the manifest.
func Verify(data, sig []byte, pub ed25519.PublicKey) (*Manifest, error) {
	if err := VerifySignature(data, sig, pub); err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	return &m, m.validate()
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

// Sign returns the signature file content for data.
func Sign(data []byte, priv ed25519.PrivateKey) []byte {
	return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, data)) + "\n")
}

// BuildOptions tunes Build.
type BuildOptions struct {
	Name      string
	Image     *Image
	ChunkSize int64 // 0: DefaultChunkSize; <0: no chunk hashes
	Progress  func(done, total int64)
	Created   time.Time
}

// Build hashes files (relative to dir) into a manifest and returns it with
// its JSON encoding, which is what gets signed.
func Build(dir string, files []string, o BuildOptions) (*Manifest, []byte, error) {
	m := &Manifest{Version: 1, Name: o.Name, Image: o.Image, Created: o.Created}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC().Truncate(time.Second)
	}
	cs := o.ChunkSize
	if cs == 0 {
		cs = DefaultChunkSize
	}
	var total, done int64
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, nil, err
		}
		total += fi.Size()
	}
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, nil, err
		}
		e := Entry{Path: f}
		whole := sha256.New()
		buf := make([]byte, 1<<20)
		if cs > 0 {
			buf = make([]byte, cs)
			e.ChunkSize = cs
			e.Chunks = []string{}
		}
		for {
			n, err := io.ReadFull(fh, buf)
			if n > 0 {
				whole.Write(buf[:n])
				e.Size += int64(n)
				done += int64(n)
				if cs > 0 {
					s := sha256.Sum256(buf[:n])
					e.Chunks = append(e.Chunks, hex.EncodeToString(s[:]))
				}
				if o.Progress != nil {
					o.Progress(done, total)
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				fh.Close()
				return nil, nil, err
			}
		}
		fh.Close()
		e.SHA256 = hex.EncodeToString(whole.Sum(nil))
		m.Files = append(m.Files, e)
	}
	if err := m.validate(); err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return m, append(b, '\n'), nil
}

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
