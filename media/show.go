package media

import (
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minint/minint/manifest"
	"github.com/minint/minint/pe"
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

// SequenceInfo describes /minint/sequence.yaml; Error is what
// `minint sequence check` says about an invalid one.
type SequenceInfo struct {
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

// ReadMedium reads what a minint ISO carries without changing it: its
// media.json, the PE's build info and package key from the initramfs, the
// sequence (checked as `minint sequence check` does) and the packages
// (their signatures checked with the PE's key).
func ReadMedium(iso string) (*MediumInfo, error) {
	dir, err := os.MkdirTemp("", "minint-iso-show-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	m, err := extractISO(iso, dir, func(p string) bool {
		return p == "/"+InitrdPath || p == "/"+pe.MediumSequence ||
			strings.HasPrefix(p, "/"+MediaDir+"/") && (path.Base(p) == manifest.FileName || path.Base(p) == manifest.ShortSignatureName)
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
	if b, err := os.ReadFile(local(pe.MediumSequence)); err == nil {
		si := &SequenceInfo{}
		if seq, err := sequence.Parse("/"+pe.MediumSequence, b); err != nil {
			si.Error = err.Error()
		} else {
			si.Name, si.Steps, si.Digest = seq.Name, len(seq.Steps), seq.Digest
		}
		info.Sequence = si
	}
	for _, f := range m.files {
		if path.Base(f.Path) != manifest.FileName {
			continue
		}
		d := path.Dir(f.Path)
		pi := PackageInfo{Dir: d}
		data, _ := os.ReadFile(local(f.Path))
		sig, err := os.ReadFile(local(path.Join(d, manifest.ShortSignatureName)))
		switch {
		case err != nil:
			pi.Error = "no " + manifest.ShortSignatureName
		case m.key == nil:
			pi.Error = "the PE has no package key"
		default:
			if mf, err := manifest.Verify(data, sig, m.key, manifest.VerifyOptions{}); err != nil {
				pi.Error = err.Error()
			} else {
				pi.Signed, pi.Name, pi.Files = true, mf.Name, len(mf.Files)
				if mf.Image != nil {
					pi.Image = mf.Image.File
				}
			}
		}
		info.Packages = append(info.Packages, pi)
	}
	sort.Slice(info.Packages, func(i, j int) bool { return info.Packages[i].Dir < info.Packages[j].Dir })
	return info, nil
}
