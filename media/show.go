package media

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/pe"
	"github.com/minint/minint/pe/boot"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
)

// MediumInfo is what a minint ISO carries, as ReadMedium finds it: what
// `minint iso show` prints.
type MediumInfo struct {
	MediaID        string         `json:"media_id"`
	Label          string         `json:"label"`
	Cmdline        string         `json:"cmdline"`
	Chain          string         `json:"uefi_chain"`
	Created        time.Time      `json:"created"`
	CustomizedFrom string         `json:"customized_from,omitempty"`
	PE             map[string]any `json:"pe,omitempty"` // the initramfs's build info: id, kernel_version, driver_packs
	// Key is the ID (sign.KeyID) of the package key the PE trusts, ""
	// when it has none (it then refuses every package).
	Key      string         `json:"package_key"`
	Sequence *SequenceInfo  `json:"sequence,omitempty"`
	Packages []PackageInfo  `json:"packages,omitempty"`
	Files    []MediumFile   `json:"files"`
	Boot     []BootEntry    `json:"boot_catalog"`
	Info     map[string]any `json:"-"` // /minint/media.json as it is
}

// SequenceInfo describes a medium's /minint/sequence.yaml, or the sequence
// a network-boot tree's command line names; Error is what `minint
// sequence check` says about an invalid one (and, for a tree's, why the
// PE would refuse its signature).
type SequenceInfo struct {
	// URL is where a network-booted PE fetches it (minint.sequence=);
	// the other fields are empty when it is not in the tree.
	URL    string `json:"url,omitempty"`
	Name   string `json:"name,omitempty"`
	Steps  int    `json:"steps"`
	Digest string `json:"sha256"`
	Error  string `json:"error,omitempty"`
}

// PackageInfo describes an image package on the medium. Signed says
// whether its manifest's signature verifies with the PE's key (the files'
// hashes are checked when the PE uses them).
type PackageInfo struct {
	Dir    string `json:"dir"` // e.g. /minint/image
	Name   string `json:"name,omitempty"`
	Image  string `json:"image,omitempty"`
	Files  int    `json:"files"`
	Signed bool   `json:"signed_by_pe_key"`
	Error  string `json:"error,omitempty"`
}

// MediumFile is a file under /minint/.
type MediumFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// ReadMedium reads what a minint ISO, or a network-boot tree (the
// directory BuildNetboot writes), carries without changing it: its
// media.json, the PE's build info and package key from the initramfs, the
// sequence (checked as `minint sequence check` does; a tree's, which the
// PE fetches, also for its signature by the PE's key) and the packages
// (their signatures checked with the PE's key).
func ReadMedium(p string) (*MediumInfo, error) {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return readNetbootTree(p)
	}
	dir, err := os.MkdirTemp("", "minint-iso-show-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := extractISO(p, dir, func(p string) bool {
		return p == "/"+InitrdPath || p == "/"+pe.MediumSequence ||
			strings.HasPrefix(p, "/"+MediaDir+"/") && isManifestOrSignature(path.Base(p))
	})
	if err != nil {
		return nil, err
	}
	info := &MediumInfo{MediaID: m.id, Label: m.label, Cmdline: m.cmdline, Chain: m.chain, Created: m.created,
		PE: m.peInfo, Files: m.files, Boot: m.boot, Info: m.info}
	info.CustomizedFrom, _ = m.info["customized_from"].(string)
	if m.key != nil {
		info.Key = sign.KeyID(m.key)
	}
	local := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	if b, err := bounded.ReadFile(local(pe.MediumSequence), sequence.MaxSize); !errors.Is(err, fs.ErrNotExist) {
		si := &SequenceInfo{}
		if err != nil {
			si.Error = onMedium(err, local, "/"+pe.MediumSequence)
		} else if seq, err := sequence.Parse("/"+pe.MediumSequence, b); err != nil {
			si.Error = err.Error()
		} else {
			si.Name, si.Steps, si.Digest = seq.Name, len(seq.Steps), seq.Digest
		}
		info.Sequence = si
	}
	info.Packages = packages(m.files, local, m.key)
	return info, nil
}

// onMedium is err's message with the file at p on the medium (under a
// directory d: p is d) named as on the medium, not where local put it.
func onMedium(err error, local func(string) string, p string) string {
	return strings.ReplaceAll(err.Error(), local(p), p)
}

func isManifestOrSignature(name string) bool {
	return name == manifest.FileName || name == manifest.SignatureName || name == manifest.ShortSignatureName
}

// packages describes the packages among files (paths under /minint),
// whose contents local finds, signed or not with key.
func packages(files []MediumFile, local func(string) string, key ed25519.PublicKey) []PackageInfo {
	var out []PackageInfo
	for _, f := range files {
		if path.Base(f.Path) != manifest.FileName {
			continue
		}
		d := path.Dir(f.Path)
		pi := PackageInfo{Dir: d}
		// A medium has the signature under the short name (ISO 9660
		// names), a served tree under the long one.
		data, sig, _, err := manifest.ReadDir(local(d))
		switch {
		case errors.Is(err, sign.ErrSignature) && errors.Is(err, fs.ErrNotExist):
			pi.Error = "no " + manifest.SignatureName
		case err != nil:
			pi.Error = onMedium(err, local, d)
		case key == nil:
			pi.Error = "the PE has no package key"
		default:
			if mf, err := manifest.Verify(data, sig, key, manifest.VerifyOptions{}); err != nil {
				pi.Error = err.Error()
			} else {
				pi.Signed, pi.Name, pi.Files = true, mf.Name, len(mf.Files)
				if mf.Image != nil {
					pi.Image = mf.Image.File
				}
			}
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out
}

// readNetbootTree is ReadMedium for a network-boot tree: the command line
// is the boot menus' (which CustomizeNetboot rewrites), and the sequence
// the one it names (minint.sequence=), when that URL is in the tree
// (under minint.url=).
func readNetbootTree(dir string) (*MediumInfo, error) {
	mi, cmdline, err := readTree(dir)
	if err != nil {
		return nil, err
	}
	key, peInfo, err := readPE(filepath.Join(dir, "initrd"))
	if err != nil {
		return nil, notTree(dir, "the PE's initramfs: %v", err)
	}
	str := func(k string) string { s, _ := mi[k].(string); return s }
	info := &MediumInfo{MediaID: str("id"), Label: str("label"), Cmdline: cmdline, Chain: str("uefi_chain"),
		CustomizedFrom: str("customized_from"), PE: peInfo, Info: mi}
	info.Created, _ = time.Parse(time.RFC3339, str("created"))
	if key != nil {
		info.Key = sign.KeyID(key)
	}
	root := filepath.Join(dir, MediaDir)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel = filepath.ToSlash(rel); rel == MediaJSONPath {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		info.Files = append(info.Files, MediumFile{Path: "/" + rel, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, notTree(dir, "%v", err)
	}
	local := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	info.Packages = packages(info.Files, local, key)
	// Read as the PE reads it; the problems it would warn about do not
	// change what the tree serves.
	opts, _ := boot.ParseCmdline(cmdline)
	if seqURL := opts.Sequence; seqURL != "" {
		si := &SequenceInfo{URL: seqURL}
		base := strings.TrimSuffix(opts.URL, "/") + "/"
		if rel, ok := strings.CutPrefix(seqURL, base); ok && opts.URL != "" && filepath.IsLocal(rel) {
			f := local(rel)
			seq, err := readSequence(f, key)
			if seq != nil {
				si.Name, si.Steps, si.Digest = seq.Name, len(seq.Steps), seq.Digest
			}
			switch {
			case seq != nil && key == nil:
				si.Error = "the PE has no package key, so it refuses every sequence from the network"
			case err != nil:
				si.Error = err.Error()
			}
		}
		info.Sequence = si
	}
	return info, nil
}

// readTree reads what makes dir a network-boot tree, as show and
// CustomizeNetboot both need it: its media.json and the kernel command
// line, PXELINUX's APPEND line, as every boot menu of the tree has it.
// Errors wrap ErrFormat and say that dir is not such a tree.
func readTree(dir string) (info map[string]any, cmdline string, err error) {
	mj, err := bounded.ReadFile(filepath.Join(dir, filepath.FromSlash(MediaJSONPath)), maxMediaJSON)
	if err != nil {
		return nil, "", notTree(dir, "%v", err)
	}
	if err := json.Unmarshal(mj, &info); err != nil {
		return nil, "", notTree(dir, "%s: %v", MediaJSONPath, err)
	}
	cfg, err := bounded.ReadFile(filepath.Join(dir, netbootPXELinux), maxMediaJSON)
	if err != nil {
		return nil, "", notTree(dir, "%v", err)
	}
	for _, l := range strings.Split(string(cfg), "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(l), "APPEND "); ok {
			cmdline = a
		}
	}
	if cmdline == "" {
		return nil, "", notTree(dir, "%s has no command line (APPEND)", netbootPXELinux)
	}
	return info, cmdline, nil
}

// notTree is the error for dir, which is not a network-boot tree for the
// reason format and a give.
func notTree(dir, format string, a ...any) error {
	return fmt.Errorf("%w: %s is not a minint network-boot tree: %s", ErrFormat, dir, fmt.Sprintf(format, a...))
}
