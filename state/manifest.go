package state

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/sign"
)

// Sentinel errors, wrapped with the file and reason.
var (
	// ErrIncomplete: the store lacks its index, manifest or an object.
	ErrIncomplete = errors.New("state store incomplete")
	// ErrChecksum: a manifest or object does not have the SHA-256 recorded for it.
	ErrChecksum = errors.New("state checksum mismatch")
	// ErrFormat: the index or manifest cannot be parsed.
	ErrFormat = errors.New("state store format error")
	// ErrInsecurePath: a manifest path escapes the root.
	ErrInsecurePath = errors.New("insecure path in state manifest")
	// ErrAccountConflict: a captured account clashes with one in the target.
	ErrAccountConflict = errors.New("account conflict")
)

// Names inside a store.
const (
	IndexName    = "index"
	ManifestName = "manifest.json"
	ObjectsDir   = "objects"
	indexMagic   = "minint-state 1"
)

// Entry types in a manifest.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
	TypeFifo    = "fifo"
	TypeChar    = "char"
	TypeBlock   = "block"
	TypeSocket  = "socket"
)

// Entry is one name in the captured state.
type Entry struct {
	// Path is slash-separated and relative to the captured root, e.g.
	// "home/alice/.bashrc".
	Path string `json:"path"`
	Type string `json:"type"`
	// Mode is the permission bits plus setuid, setgid and sticky.
	Mode   uint32            `json:"mode"`
	UID    uint32            `json:"uid"`
	GID    uint32            `json:"gid"`
	Size   int64             `json:"size,omitempty"`
	SHA256 string            `json:"sha256,omitempty"`
	Target string            `json:"target,omitempty"` // symlink target
	Rdev   uint64            `json:"rdev,omitempty"`
	Xattrs map[string][]byte `json:"xattrs,omitempty"`
	Mtime  int64             `json:"mtime"` // Unix nanoseconds
	Atime  int64             `json:"atime"`
	// Link, when set, names an earlier entry with the same inode: this
	// entry is a hard link to it and carries no data or metadata of its own.
	Link string `json:"link,omitempty"`
	// Ancestor marks a directory recorded only because a captured path lies
	// inside it (e.g. "home"). Restore creates it when missing but leaves an
	// existing one alone.
	Ancestor bool `json:"ancestor,omitempty"`
}

// Accounts are the account records of the captured users, as the lines of
// /etc/passwd, /etc/shadow and /etc/group they had.
type Accounts struct {
	Passwd []string `json:"passwd,omitempty"`
	Shadow []string `json:"shadow,omitempty"`
	Group  []string `json:"group,omitempty"`
	// Members maps other groups (e.g. "sudo") to the captured users that
	// belonged to them; Restore adds them to the target's group of the same
	// name when it exists.
	Members map[string][]string `json:"members,omitempty"`
}

// Manifest is the record of one capture.
type Manifest struct {
	Version  int      `json:"version"`
	Created  string   `json:"created"` // RFC 3339
	Host     string   `json:"host,omitempty"`
	Accounts Accounts `json:"accounts"`
	Entries  []Entry  `json:"entries"`
	// Bytes is the total size of the distinct objects.
	Bytes int64 `json:"bytes"`
	// Spec is what was asked for, so that a later capture (the PE's, with
	// nothing else running) can take the same state again.
	Spec SpecRecord `json:"spec"`
}

// SpecRecord is the part of a Spec that says what to capture.
type SpecRecord struct {
	NoHomes  bool     `json:"noHomes,omitempty"`
	RootHome bool     `json:"rootHome,omitempty"`
	Paths    []string `json:"paths,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
}

// Record returns what s selects, for a manifest.
func (s Spec) Record() SpecRecord {
	return SpecRecord{NoHomes: s.NoHomes, RootHome: s.RootHome, Paths: s.Paths, Exclude: s.Exclude}
}

// Spec turns a record back into a Spec (hard links, no progress).
func (r SpecRecord) Spec() Spec {
	return Spec{NoHomes: r.NoHomes, RootHome: r.RootHome, Paths: r.Paths, Exclude: r.Exclude}
}

// Objects returns the distinct object hashes the manifest refers to, with
// their sizes.
func (m *Manifest) Objects() map[string]int64 {
	o := map[string]int64{}
	for _, e := range m.Entries {
		if e.Type == TypeFile && e.Link == "" {
			o[e.SHA256] = e.Size
		}
	}
	return o
}

// ObjectPath is where the object with this SHA-256 (lower-case hex) lives,
// relative to the store.
func ObjectPath(sum string) string { return ObjectsDir + "/" + sum[:2] + "/" + sum }

func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// validate checks what Restore and the network store rely on: safe
// relative paths, known types, well-formed hashes, links to earlier entries.
func (m *Manifest) validate() error {
	if m.Version != 1 {
		return fmt.Errorf("%w: manifest version %d, want 1", ErrFormat, m.Version)
	}
	seen := map[string]*Entry{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := checkRel(e.Path); err != nil {
			return err
		}
		if seen[e.Path] != nil {
			return fmt.Errorf("%w: %q listed twice", ErrFormat, e.Path)
		}
		if dir := parentOf(e.Path); dir != "" {
			if p := seen[dir]; p == nil || p.Type != TypeDir {
				return fmt.Errorf("%w: %q comes before its directory %q", ErrFormat, e.Path, dir)
			}
		}
		seen[e.Path] = e
		if e.Link != "" {
			t := seen[e.Link]
			if t == nil || t.Link != "" || t.Type == TypeDir {
				return fmt.Errorf("%w: %q is a hard link to %q, which is not an earlier non-directory entry", ErrFormat, e.Path, e.Link)
			}
			continue
		}
		switch e.Type {
		case TypeFile:
			if !validSum(e.SHA256) || e.Size < 0 {
				return fmt.Errorf("%w: %q has a bad sha256 %q or size", ErrFormat, e.Path, e.SHA256)
			}
		case TypeSymlink:
			if e.Target == "" {
				return fmt.Errorf("%w: symlink %q has no target", ErrFormat, e.Path)
			}
		case TypeDir, TypeFifo, TypeChar, TypeBlock, TypeSocket:
		default:
			return fmt.Errorf("%w: %q has unknown type %q", ErrFormat, e.Path, e.Type)
		}
		if e.Mode&^0o7777 != 0 {
			return fmt.Errorf("%w: %q has mode %o beyond permission bits", ErrFormat, e.Path, e.Mode)
		}
	}
	return nil
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func checkRel(p string) error {
	if p == "" || p == "." || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
		return fmt.Errorf("%w: %q", ErrInsecurePath, p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%w: %q", ErrInsecurePath, p)
		}
	}
	return nil
}

// encodeIndex returns the index file's contents for a manifest's bytes.
func encodeIndex(manifest []byte) []byte {
	sum := sha256.Sum256(manifest)
	return fmt.Appendf(nil, "%s\nmanifest sha256:%x %d\n", indexMagic, sum, len(manifest))
}

// parseIndex returns the manifest hash and size an index records.
func parseIndex(b []byte) (string, int64, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 2 || lines[0] != indexMagic {
		return "", 0, fmt.Errorf("%w: index does not start with %q", ErrFormat, indexMagic)
	}
	f := strings.Fields(lines[1])
	if len(f) != 3 || f[0] != "manifest" || !strings.HasPrefix(f[1], "sha256:") || !validSum(f[1][7:]) {
		return "", 0, fmt.Errorf("%w: index line %q", ErrFormat, lines[1])
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || n < 0 {
		return "", 0, fmt.Errorf("%w: index size %q", ErrFormat, f[2])
	}
	return f[1][7:], n, nil
}

// decodeManifest checks manifest bytes against an index and parses them.
func DecodeManifest(index, manifest []byte) (*Manifest, error) {
	sum, size, err := parseIndex(index)
	if err != nil {
		return nil, err
	}
	if int64(len(manifest)) != size {
		return nil, fmt.Errorf("%w: manifest is %d bytes, index says %d", ErrChecksum, len(manifest), size)
	}
	if got := sha256.Sum256(manifest); hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%w: manifest sha256 %x, index says %s", ErrChecksum, got, sum)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Bounds on what a reader of a store reads before it can check anything
// (a store on a disk or a server may come from anyone who could write
// there): the index and its signature are a few lines; the manifest of a
// large home (a million files) is a few hundred megabytes, not gigabytes.
const (
	MaxIndex    = 64 << 10
	MaxManifest = 512 << 20
)

// ReadManifest reads and checks the index and manifest of a store
// directory. It does not look at the objects (Verify does).
func ReadManifest(storeDir string) (*Manifest, error) {
	m, _, err := readStore(storeDir, nil, false)
	return m, err
}

// readStore reads a store's index, checks its signature against keys
// first when signed (see ReadSigned), then reads and checks the manifest,
// each file within its bound.
func readStore(storeDir string, keys []ed25519.PublicKey, signed bool) (*Manifest, string, error) {
	idx, err := bounded.ReadFile(filepath.Join(storeDir, IndexName), MaxIndex)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: %s has no index (capture or upload did not finish)", ErrIncomplete, storeDir)
	}
	if err != nil {
		return nil, "", err
	}
	id := ""
	if signed {
		sig, err := bounded.ReadFile(filepath.Join(storeDir, SignatureName), MaxIndex)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, "", err
		}
		if id, err = CheckSignature(idx, sig, keys); err != nil {
			return nil, "", fmt.Errorf("%s: %w", storeDir, err)
		}
	}
	man, err := bounded.ReadFile(filepath.Join(storeDir, ManifestName), MaxManifest)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: %s has an index but no manifest", ErrIncomplete, storeDir)
	}
	if err != nil {
		return nil, "", err
	}
	m, err := DecodeManifest(idx, man)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", storeDir, err)
	}
	return m, id, nil
}

// writeManifest writes manifest, the index's signature (key nil: none)
// and last the index, each atomically and synced.
func writeManifest(storeDir string, m *Manifest, key ed25519.PrivateKey) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(storeDir, ManifestName), b, 0o600); err != nil {
		return err
	}
	idx := encodeIndex(b)
	if key != nil {
		sig, err := sign.Sign(idx, key, sign.Context{Purpose: sign.PurposeState})
		if err != nil {
			return err
		}
		if err := durable.WriteFile(filepath.Join(storeDir, SignatureName), sig, 0o600); err != nil {
			return err
		}
	}
	return durable.WriteFile(filepath.Join(storeDir, IndexName), idx, 0o600)
}
