// Package manifest is the signed list of an image package's files: what
// `minint package create` writes on the build host and what the PE checks
// before it uses a byte of the package.
//
// A package is a directory (on the boot medium or behind an HTTP server)
// holding manifest.json, its detached signature manifest.json.sig
// (package sign), and the files the manifest lists with their sizes and
// SHA-256 sums. Verify checks the signature before the manifest is even
// parsed; VerifyFile then checks a file's size and hash before it is
// handed on.
//
// The signature also binds the package's identity: it is made for the
// purpose "package" with the manifest's name, package_version, created and
// expires in its signed context (SignContext), and Verify refuses a
// signature whose context differs from the manifest it covers. A reader
// can so refuse an expired package, one of another name, or one older
// than a floor it was given (VerifyOptions), instead of any manifest the
// key ever signed.
//
// To let the PE apply a file straight from HTTP and still stay fail-closed,
// an entry may carry a hash per fixed-size chunk (chunk_size, chunks, and
// chunk_hash: BLAKE3, or SHA-256 when it says none), covered by the
// signature like everything else: a reader can verify every chunk before
// it returns a byte of it (package fetch does), where a whole-file hash
// could only be checked after the bytes were used.
//
// The image's entry may also carry the WIM's wim.Checksums (wim_xxh64):
// with the WIM's bytes authenticated by the same signature, the PE checks
// what it decompressed against them instead of against the WIM's SHA-1s,
// which cost a quarter of an apply on a CPU without SHA instructions.
package manifest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/wim"
)

var (
	// ErrFormat: the manifest is malformed, or an entry lacks what the
	// caller needs (e.g. chunk hashes to read it before it is complete).
	ErrFormat = errors.New("bad manifest")
	// ErrChecksum: a file's SHA-256 (or a chunk's) differs from the
	// manifest's.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrSize: a file is shorter or longer than the manifest says.
	ErrSize = errors.New("size mismatch")
)

// FileName and SignatureName name the files of a package.
const (
	FileName      = "manifest.json"
	SignatureName = "manifest.json.sig"
	// ShortSignatureName is the name before SignatureName, still read
	// over HTTP (with a warning) for one release, and the signature's
	// name on an ISO boot medium (see sign.ShortSignatureFor).
	ShortSignatureName = "manifest.sig"
	// DefaultChunkSize is the chunk of per-chunk hashes (see package doc).
	DefaultChunkSize = 4 << 20
	// MaxChunkSize is the largest chunk a manifest may name: a PE holds
	// whole chunks in memory to check them before use (a few at a time),
	// so a larger one could exhaust a small machine's memory before a
	// byte is verified. Build refuses it before hashing anything.
	MaxChunkSize = 64 << 20
	// MaxSize is the largest manifest.json a PE reads, before its
	// signature is checked; Build refuses to write a larger one.
	MaxSize = 4 << 20
)

// ReadDir reads the package in dir as a PE reads it from a medium, before
// anything has checked it: its manifest.json, at most MaxSize bytes, and
// the signature, at most sign.MaxSize, under SignatureName or else under
// ShortSignatureName (the one name an ISO 9660 medium can hold). sigPath
// is the signature's file. A missing or unreadable signature is an error
// that wraps sign.ErrSignature.
func ReadDir(dir string) (data, sig []byte, sigPath string, err error) {
	if data, err = bounded.ReadFile(filepath.Join(dir, FileName), MaxSize); err != nil {
		return nil, nil, "", err
	}
	sigPath = filepath.Join(dir, SignatureName)
	sig, err = bounded.ReadFile(sigPath, sign.MaxSize)
	if errors.Is(err, fs.ErrNotExist) {
		sigPath = filepath.Join(dir, ShortSignatureName)
		sig, err = bounded.ReadFile(sigPath, sign.MaxSize)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: no signature: %w", sign.ErrSignature, err)
	}
	return data, sig, sigPath, nil
}

// Manifest lists a package's files.
//
//	{
//	  "version": 1,
//	  "name": "debian-12",
//	  "package_version": "12.4",
//	  "created": "2026-11-28T09:00:00Z",
//	  "expires": "2027-05-28T09:00:00Z",
//	  "image": {"file": "debian.wim", "index": 1},
//	  "files": [{"path": "debian.wim", "size": 123, "sha256": "…",
//	             "chunk_size": 4194304, "chunks": ["…", …],
//	             "wim_xxh64": "base64…"}]
//	}
type Manifest struct {
	Version int    `json:"version"` // of the format: 1
	Name    string `json:"name,omitempty"`
	// PackageVersion is the package's own version: dot-separated numbers
	// (sign.CompareVersions), what a reader's floor is compared with.
	PackageVersion string    `json:"package_version,omitempty"`
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires,omitzero"`
	Image          *Image    `json:"image,omitempty"`
	Files          []Entry   `json:"files"`

	// Signature is what Verify learned from the signature (key, context,
	// old format).
	Signature *sign.Signed `json:"-"`
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
	// ChunkHash names the hash of Chunks: ChunkBLAKE3, or ChunkSHA256
	// (also when empty).
	ChunkHash string `json:"chunk_hash,omitempty"`
	// WIMChecksums, on the image's entry only, is the WIM's
	// wim.Checksums (base64 in JSON): the XXH64 of each blob's data,
	// recorded once its SHA-1 matched, which the PE checks in place of
	// the SHA-1s. The signature that covers it also covers the WIM's
	// SHA-256 sums, which is what lets the table stand in for them (see
	// wim.Checksums).
	WIMChecksums wim.Checksums `json:"wim_xxh64,omitempty"`
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

// The PE fetches a package's files into its staging folder next to the
// manifest, its signature and the engine's journal (pe/journal.FileName):
// an entry with one of these names would overwrite them.
var reserved = map[string]bool{FileName: true, SignatureName: true, ShortSignatureName: true, "journal.json": true}

// MaxFileSize bounds an entry's size (1 PiB): far beyond any image, and
// small enough that sizes and chunk counts computed from it cannot
// overflow an int64.
const MaxFileSize = 1 << 50

// lowerHex reports whether s is a SHA-256 in lower-case hex, the only
// spelling a computed hash is ever compared with.
func lowerHex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && hex.EncodeToString(b) == s
}

func (m *Manifest) validate() error {
	if m.Version != 1 {
		return fmt.Errorf("%w: version %d (want 1)", ErrFormat, m.Version)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("%w: no files", ErrFormat)
	}
	seen := map[string]bool{}
	var total int64
	for _, e := range m.Files {
		if e.Path == "" || e.Path == "." || path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || strings.HasPrefix(e.Path, "../") || e.Path == ".." || strings.Contains(e.Path, "\\") {
			return fmt.Errorf("%w: file path %q is not a clean relative path", ErrFormat, e.Path)
		}
		if strings.IndexFunc(e.Path, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return fmt.Errorf("%w: file path %q contains a control character (NUL, newline…)", ErrFormat, e.Path)
		}
		if reserved[e.Path] {
			return fmt.Errorf("%w: file path %q is reserved for the staging folder's own files", ErrFormat, e.Path)
		}
		if seen[e.Path] {
			return fmt.Errorf("%w: %s listed twice", ErrFormat, e.Path)
		}
		seen[e.Path] = true
		if e.Size < 0 {
			return fmt.Errorf("%w: %s: negative size", ErrFormat, e.Path)
		}
		if e.Size > MaxFileSize {
			return fmt.Errorf("%w: %s: size %d is more than %d", ErrFormat, e.Path, e.Size, int64(MaxFileSize))
		}
		if total += e.Size; total > MaxFileSize {
			return fmt.Errorf("%w: the files add up to more than %d bytes", ErrFormat, int64(MaxFileSize))
		}
		if !lowerHex(e.SHA256) {
			return fmt.Errorf("%w: %s: sha256 %q is not 64 lower-case hex digits", ErrFormat, e.Path, e.SHA256)
		}
		if e.ChunkHash != "" && !KnownChunkHash(e.ChunkHash) {
			return fmt.Errorf("%w: %s: chunk_hash %q is not %s or %s", ErrFormat, e.Path, e.ChunkHash, ChunkBLAKE3, ChunkSHA256)
		}
		if e.ChunkHash != "" && e.ChunkSize == 0 {
			return fmt.Errorf("%w: %s: chunk_hash without chunks", ErrFormat, e.Path)
		}
		if e.ChunkSize != 0 || len(e.Chunks) != 0 {
			if e.ChunkSize <= 0 {
				return fmt.Errorf("%w: %s: chunks without a chunk_size", ErrFormat, e.Path)
			}
			if err := checkChunkSize(e.ChunkSize); err != nil {
				return fmt.Errorf("%s: %w", e.Path, err)
			}
			want := e.Size / e.ChunkSize // no e.Size+e.ChunkSize-1: it could overflow
			if e.Size%e.ChunkSize != 0 {
				want++
			}
			if int64(len(e.Chunks)) != want {
				return fmt.Errorf("%w: %s: %d chunk hashes, want %d", ErrFormat, e.Path, len(e.Chunks), want)
			}
			for _, c := range e.Chunks {
				if !lowerHex(c) {
					return fmt.Errorf("%w: %s: chunk hash %q is not 64 lower-case hex digits", ErrFormat, e.Path, c)
				}
			}
		}
		if e.WIMChecksums != nil {
			if m.Image == nil || e.Path != m.Image.File {
				return fmt.Errorf("%w: %s: wim_xxh64 on a file that is not the image", ErrFormat, e.Path)
			}
			// Each blob takes a blob-table entry of 50 bytes in the WIM.
			if n := int64(len(e.WIMChecksums)); n%8 != 0 || n/8 > e.Size/50 {
				return fmt.Errorf("%w: %s: wim_xxh64 has %d bytes, not 8 per blob of a %d-byte WIM", ErrFormat, e.Path, n, e.Size)
			}
		}
	}
	if m.PackageVersion != "" {
		if _, err := sign.CompareVersions(m.PackageVersion, m.PackageVersion); err != nil {
			return fmt.Errorf("%w: package_version: %v", ErrFormat, err)
		}
	}
	if !m.Expires.IsZero() && !m.Expires.After(m.Created) {
		return fmt.Errorf("%w: expires %s is not after created %s", ErrFormat, m.Expires.Format(time.RFC3339), m.Created.Format(time.RFC3339))
	}
	if m.Image != nil {
		if _, ok := m.File(m.Image.File); !ok {
			return fmt.Errorf("%w: image file %q is not among the files", ErrFormat, m.Image.File)
		}
		if m.Image.Index < 1 {
			return fmt.Errorf("%w: image index %d (indexes start at 1)", ErrFormat, m.Image.Index)
		}
	}
	return nil
}

// SignContext is what the manifest's signature binds (see package doc).
func (m *Manifest) SignContext() sign.Context {
	return sign.Context{Purpose: sign.PurposePackage, Name: m.Name, Version: m.PackageVersion, Created: m.Created, Expires: m.Expires}
}

// VerifyOptions is what a reader requires of a package beyond a good
// signature by its key.
type VerifyOptions struct {
	// Name, when set, is the package name the manifest must carry.
	Name string
	// MinVersion, when set, refuses a package_version below it, and a
	// package without one (see sign.Policy).
	MinVersion string
	// Now judges expiry (zero: the current time).
	Now time.Time
}

// Verify checks sig over the exact bytes of data with pub, for the
// purpose "package" and o's floor and expiry (sign.Verify: failures wrap
// sign.ErrSignature), and only then parses the manifest, which must then
// say what the signature's context says. m.Signature tells what was
// verified; a Legacy signature (no context) is accepted for one release
// and the caller warns.
func Verify(data, sig []byte, pub ed25519.PublicKey, o VerifyOptions) (*Manifest, error) {
	s, err := sign.Verify(data, sig, pub, sign.Policy{Purpose: sign.PurposePackage, MinVersion: o.MinVersion, Now: o.Now})
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	m.Signature = s
	if err := m.validate(); err != nil {
		return nil, err
	}
	if !s.Legacy {
		// Compare in the form the context was signed in (UTC, seconds).
		want := m.SignContext()
		want.Created, want.Expires = want.Created.UTC().Truncate(time.Second), want.Expires.UTC().Truncate(time.Second)
		if s.Context != want {
			return nil, fmt.Errorf("%w: the signature is for package %q version %q created %s, the manifest says %q version %q created %s", sign.ErrSignature,
				s.Name, s.Version, s.Created.Format(time.RFC3339), m.Name, m.PackageVersion, want.Created.Format(time.RFC3339))
		}
	}
	if o.Name != "" && m.Name != o.Name {
		return nil, fmt.Errorf("%w: the package is %q, not the %q asked for", sign.ErrSignature, m.Name, o.Name)
	}
	return &m, nil
}

// VerifyFile checks the size and SHA-256 of the file at p against e.
// Errors name the file and, for a hash mismatch, both hashes.
func VerifyFile(p string, e *Entry, progress func(done, total int64)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != e.Size {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrSize, e.Path, fi.Size(), e.Size)
	}
	h := sha256.New()
	var r io.Reader = f
	if progress != nil {
		r = &progressReader{r: f, total: e.Size, f: progress}
	}
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrChecksum, e.Path, got, e.SHA256)
	}
	return nil
}

type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	f     func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.f(p.done, p.total)
	return n, err
}

// BuildOptions tunes Build.
type BuildOptions struct {
	Name      string
	Version   string        // package_version (optional)
	ExpiresIn time.Duration // >0: the package expires this long after Created
	Image     *Image
	ChunkSize int64 // 0: DefaultChunkSize; <0: no chunk hashes
	// ChunkHash is the hash of the chunks: ChunkBLAKE3 (also when
	// empty) or ChunkSHA256, which PEs from before chunk_hash read too.
	ChunkHash string
	// WIMChecksums records Image's wim.Checksums, which takes decoding
	// the whole WIM and checking its SHA-1s: a damaged WIM is refused.
	WIMChecksums bool
	Progress     func(done, total int64)
	Created      time.Time
}

// Build hashes files (relative to dir) into a manifest and returns it with
// its JSON encoding, which is what gets signed.
func Build(dir string, files []string, o BuildOptions) (*Manifest, []byte, error) {
	m := &Manifest{Version: 1, Name: o.Name, PackageVersion: o.Version, Image: o.Image, Created: o.Created.UTC().Truncate(time.Second)}
	if o.Created.IsZero() {
		m.Created = time.Now().UTC().Truncate(time.Second)
	}
	if o.ExpiresIn > 0 {
		m.Expires = m.Created.Add(o.ExpiresIn).Truncate(time.Second)
	}
	cs := o.ChunkSize
	if cs == 0 {
		cs = DefaultChunkSize
	}
	if err := checkChunkSize(cs); err != nil {
		return nil, nil, err
	}
	ch := o.ChunkHash
	switch {
	case ch == "":
		ch = ChunkBLAKE3
	case !KnownChunkHash(ch):
		return nil, nil, fmt.Errorf("chunk hash %q: want %s or %s", o.ChunkHash, ChunkBLAKE3, ChunkSHA256)
	case ch == ChunkSHA256:
		ch = "" // the spelling older PEs read
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
			e.ChunkHash = ch
		}
		for {
			n, err := io.ReadFull(fh, buf)
			if n > 0 {
				whole.Write(buf[:n])
				e.Size += int64(n)
				done += int64(n)
				if cs > 0 {
					s := e.SumChunk(buf[:n])
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
	if o.WIMChecksums && m.Image != nil {
		if e, ok := m.File(m.Image.File); ok {
			var err error
			if e.WIMChecksums, err = wimChecksums(filepath.Join(dir, filepath.FromSlash(e.Path)), done, total, o.Progress); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := m.validate(); err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if len(b)+1 > MaxSize {
		return nil, nil, fmt.Errorf("%w: the manifest would be %d bytes, more than the %d a PE reads: use larger chunks, or leave out the image's checksum table", ErrFormat, len(b)+1, MaxSize)
	}
	return m, append(b, '\n'), nil
}

// VerifyWIMChecksums decodes the WIM at p, checks its SHA-1s and compares
// its wim.Checksums with e's (ErrChecksum if they differ), so that a
// table the PE would trust is known to be right before a machine relies
// on it. An entry without a table passes.
func VerifyWIMChecksums(p string, e *Entry, progress func(done, total int64)) error {
	if e.WIMChecksums == nil {
		return nil
	}
	got, err := wimChecksums(p, 0, 0, progress)
	if err != nil {
		return err
	}
	if len(got) != len(e.WIMChecksums) {
		return fmt.Errorf("%w: %s: wim_xxh64 has %d checksums, the image has %d blobs (a table made for another WIM?)", ErrChecksum, e.Path, len(e.WIMChecksums)/8, len(got)/8)
	}
	bad := 0
	for i := 0; i < len(got); i += 8 {
		if !bytes.Equal(got[i:i+8], e.WIMChecksums[i:i+8]) {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %s: %d of the %d checksums in wim_xxh64 differ from the image's data", ErrChecksum, e.Path, bad, len(got)/8)
	}
	return nil
}

// wimChecksums makes the wim.Checksums of the WIM at p, reporting its
// progress after the done of total bytes already hashed.
func wimChecksums(p string, done, total int64, progress func(done, total int64)) (wim.Checksums, error) {
	r, err := wim.OpenReader(p) // its errors name p
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var vo wim.VerifyOptions
	if progress != nil {
		vo.Progress = func(d, t int64) { progress(done+d, total+t) }
	}
	c, err := r.Checksums(context.Background(), vo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

// checkChunkSize refuses a chunk larger than MaxChunkSize, for Build and
// for a manifest read alike.
func checkChunkSize(n int64) error {
	if n > MaxChunkSize {
		return fmt.Errorf("%w: chunk size %d is more than %d, the most a PE holds in memory to check a chunk", ErrFormat, n, int64(MaxChunkSize))
	}
	return nil
}
