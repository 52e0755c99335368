package media

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/netconf"
	"github.com/minint/minint/pe"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
)

// Customizing a released ISO changes what a built medium carries without
// rebuilding the PE, in seconds and with no Go toolchain, the way
// coreos-installer's `iso customize` does. The medium's tree is read
// back, the new files are put where the PE reads them (layout.go), and
// the tree is written again as the same hybrid image:
//
//   - the sequence, image packages and other files go under /minint/, the
//     medium's unsigned part;
//   - a package key is appended to /boot/initrd as one more initramfs
//     archive (initramfs.Append), where the PE looks for it
//     (pe.DefaultPublicKey): the kernel unpacks it last, so it replaces
//     the PE's own key;
//   - the kernel command line is rewritten in isolinux.cfg and grub.cfg;
//   - the EFI system partition image is copied bit for bit: shim, GRUB
//     and the MOK manager keep their signatures, so the Secure Boot chain
//     stays valid (the initramfs and the menus are outside it, see
//     layout.go).
//
// A medium whose UEFI chain is a UKI signed with the organization's key
// carries the initramfs and the command line inside that signature:
// changing either is refused there (build the ISO again with
// --secure-boot-key), files under /minint/ can still be added.
//
// Everything that can be checked is checked before anything is written: a
// sequence as `minint sequence check` does (sequence.LoadFile), a package
// against the key the customized PE will trust (its signature and every
// file's size and SHA-256), the network settings as the PE parses them.

// Customization is what CustomizeISO changes.
type Customization struct {
	// Sequence is a task sequence file, stored as /minint/sequence.yaml
	// (pe.MediumSequence) in place of any there on an ISO; a network-boot
	// tree keeps its name and its signature (see SequenceFiles).
	Sequence string
	// Key is a package signing public key file (minint keygen's .pub)
	// that replaces the PE's.
	Key string
	// Packages are image package directories (manifest.json, its
	// signature and the files it lists; see PackageFiles), each stored under
	// /minint/Dest/.
	Packages []Package
	// Files are stored under /minint/, replacing files of the same name.
	Files []File
	// Cmdline is appended to the kernel command line (before the serial
	// console, which stays last). Static network settings are kernel
	// arguments in dracut's syntax (ip=, vlan=, nameserver=, ifname=; see
	// package netconf) and are checked as the PE will parse them.
	Cmdline string
	// Label replaces the volume label ("" keeps it).
	Label string
	// DriverPacks are driver pack directories (package driverpack) added
	// to the PE's initramfs (initramfs.AppendDriverPacks), checked
	// against its kernel's modules; RequireSigned refuses unsigned
	// modules, which a kernel under Secure Boot lockdown will not load.
	DriverPacks   []string
	RequireSigned bool
	// SecureBootKey and SecureBootCert (PEM) re-sign the unified kernel
	// image of a medium whose UEFI chain is ChainUKI, so that its command
	// line and initramfs can change; without them such changes are
	// refused (ErrBoundary). The firmware's db must hold the certificate.
	SecureBootKey, SecureBootCert string
	// Epoch fixes the timestamps; zero means SOURCE_DATE_EPOCH, else the
	// newest of the medium's creation time and the added files' mtimes.
	Epoch time.Time
	// Log receives one line per step (nil for none).
	Log func(format string, args ...any)
}

// Package is an image package to put on a medium.
type Package struct {
	Dir  string // holds manifest.json and its signature (manifest.json.sig, or the older manifest.sig)
	Dest string // below /minint/; default DefaultPackageDest
}

// DefaultPackageDest is where a package goes on the medium unless told
// otherwise: the task sequences of the examples fetch
// medium:/minint/image/manifest.json.
const DefaultPackageDest = "image"

// ErrBoundary reports a customization the medium's signatures forbid.
var ErrBoundary = errors.New("change not possible without re-signing")

// CustomizeISO writes a customized copy of the minint ISO in to out (which
// may be in itself: the image is written next to out and renamed into
// place when complete).
func CustomizeISO(ctx context.Context, in, out string, c Customization) (*Result, error) {
	logf := c.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrOutput, out)
	}
	work, err := os.MkdirTemp(filepath.Dir(out), ".minint-iso-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOutput, out, err)
	}
	defer os.RemoveAll(work)
	b := &isoBuild{logf: logf, work: work, stage: filepath.Join(work, "iso"), image: filepath.Join(work, "image.iso")}

	logf("reading %s", in)
	m, err := extractISO(in, b.stage, nil)
	if err != nil {
		return nil, err
	}
	b.mbrCode = m.mbrCode
	if err := c.check(m); err != nil {
		return nil, err
	}
	newest, sum, err := c.place(b.stage, m, logf)
	if err != nil {
		return nil, err
	}

	p := &Plan{Label: m.label, Chain: m.chain, MediaID: m.id, Cmdline: m.cmdline}
	if c.Label != "" {
		p.Label = c.Label
	}
	if p.Epoch, err = epochOf(c.Epoch, newest); err != nil {
		return nil, err
	}
	resign := m.chain == ChainUKI && c.SecureBootKey != ""
	if m.chain == ChainShim || resign {
		// With a UKI that is not signed again the ID stays: it is
		// inside the signed command line.
		p.MediaID = sum
	}
	p.Cmdline = customCmdline(m.cmdline, m.id, p.MediaID, c.Cmdline)
	espSize := m.espSize
	if resign {
		if espSize, err = b.resignUKI(ctx, p, c); err != nil {
			return nil, err
		}
	}
	if err := writeMediumConfig(b.stage, m, p); err != nil {
		return nil, err
	}
	if err := normalizeTree(b.stage, p); err != nil {
		return nil, err
	}
	b.p = p
	logf("writing ISO 9660 image (media id %s)", p.MediaID)
	size, err := b.writeImage(espSize)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.Rename(b.image, out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	return &Result{Path: out, Size: size, MediaID: p.MediaID, Cmdline: p.Cmdline, Label: p.Label,
		Chain: p.Chain, ESPSize: espSize, Epoch: p.Epoch}, nil
}

// place puts the customization's files where the PE reads them in the
// medium's tree at stage, checking each first, and returns the newest
// input's mtime and the new media ID (a hash of the old one and of what
// changed).
func (c Customization) place(stage string, m *medium, logf func(string, ...any)) (time.Time, string, error) {
	newest := m.created
	hash := sha256.New()
	fmt.Fprintf(hash, "minint-customize-v1\x00%s\x00%s\x00%s\x00", m.id, c.Cmdline, c.Label)
	put := func(dest, src string) error {
		mtime, err := hashInput(hash, "/minint/"+dest, src)
		if err != nil {
			return err
		}
		if mtime.After(newest) {
			newest = mtime
		}
		_, err = copyFile(src, filepath.Join(stage, MediaDir, filepath.FromSlash(dest)))
		return err
	}

	// The key first: packages are checked against the key the customized
	// PE will trust.
	initrd := filepath.Join(stage, filepath.FromSlash(InitrdPath))
	pub := m.key
	if c.Key != "" {
		kb, err := os.ReadFile(c.Key)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%w: key: %w", ErrInput, err)
		}
		if pub, err = sign.ParsePublicKey(kb); err != nil {
			return time.Time{}, "", fmt.Errorf("%w: key %s: %w (give the .pub file from minint keygen, not the .key)", ErrInput, c.Key, err)
		}
		logf("package key %s replaces the PE's %s", sign.KeyID(pub), keyText(m.key))
		fmt.Fprintf(hash, "key\x00%x\x00", pub)
		if err := initramfs.Append(initrd, []initramfs.File{{Dest: pe.DefaultPublicKey, Data: kb, Mode: 0o644}}); err != nil {
			return time.Time{}, "", fmt.Errorf("adding the key to the PE's initramfs: %w", err)
		}
	}
	if len(c.DriverPacks) > 0 {
		names, err := initramfs.AppendDriverPacks(initrd, c.DriverPacks, c.RequireSigned)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%w: driver packs: %w", ErrInput, err)
		}
		logf("driver packs %s added to the PE", strings.Join(names, ", "))
		m.info["driver_packs"] = append(anySlice(m.info["driver_packs"]), toAny(names)...)
	}
	if c.Key != "" || len(c.DriverPacks) > 0 {
		if _, err := hashInput(hash, "initramfs", initrd); err != nil {
			return time.Time{}, "", err
		}
	}
	if c.Sequence != "" {
		seq, err := sequence.LoadFile(c.Sequence)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%w: sequence: %w", ErrInput, err)
		}
		logf("sequence %s: valid (%d steps)", c.Sequence, len(seq.Steps))
		if err := put(strings.TrimPrefix(pe.MediumSequence, MediaDir+"/"), c.Sequence); err != nil {
			return time.Time{}, "", err
		}
	}
	for _, p := range c.Packages {
		files, err := PackageFiles(p, pub, false)
		if err != nil {
			return time.Time{}, "", err
		}
		logf("package %s: signature and %d files verified with key %s", p.Dir, len(files)-2, sign.KeyID(pub))
		for _, f := range files {
			if err := put(f.Dest, f.Src); err != nil {
				return time.Time{}, "", err
			}
		}
	}
	for _, f := range c.Files {
		d := path.Clean(strings.TrimPrefix(f.Dest, "/"))
		if d == "." || d == ".." || strings.HasPrefix(d, "../") || d == "media.json" {
			return time.Time{}, "", fmt.Errorf("%w: file destination %q is not a path below /minint (or is reserved)", ErrInput, f.Dest)
		}
		if err := put(d, f.Src); err != nil {
			return time.Time{}, "", err
		}
	}
	if err := checkMediumNames(stage); err != nil {
		return time.Time{}, "", err
	}
	return newest, hex.EncodeToString(hash.Sum(nil))[:16], nil
}

// resignUKI builds the medium's unified kernel image again from its own
// kernel and (customized) initramfs with the plan's command line, signs it
// and writes a new EFI system partition image holding it.
func (b *isoBuild) resignUKI(ctx context.Context, p *Plan, c Customization) (int64, error) {
	var err error
	b.host = HostPaths{}.withDefaults()
	if b.tools, err = b.host.check(need{iso: true, chain: ChainUKI}); err != nil {
		return 0, err
	}
	if p.signer, p.cert, err = authenticode.LoadKeyPair(c.SecureBootKey, c.SecureBootCert); err != nil {
		return 0, fmt.Errorf("%w: Secure Boot key: %w", ErrInput, err)
	}
	b.scratch = filepath.Join(b.work, "scratch")
	if err := os.MkdirAll(b.scratch, 0o755); err != nil {
		return 0, err
	}
	p.Kernel = filepath.Join(b.stage, filepath.FromSlash(KernelPath))
	p.Initramfs = filepath.Join(b.stage, filepath.FromSlash(InitrdPath))
	b.logf("building and signing the unified kernel image again")
	files, err := espFiles(ctx, p, b.host, b.tools["objcopy"], b.scratch)
	if err != nil {
		return 0, err
	}
	idb, _ := hex.DecodeString(p.MediaID)
	return espImage{Label: "MININT_ESP", VolID: binary.BigEndian.Uint32(idb), Epoch: p.Epoch,
		Files: files, tools: b.tools, tmpDir: b.scratch}.build(ctx, filepath.Join(b.stage, filepath.FromSlash(ESPImagePath)))
}

func anySlice(v any) []any { s, _ := v.([]any); return s }

func toAny(ss []string) []any {
	var out []any
	for _, s := range ss {
		out = append(out, s)
	}
	return out
}

func keyText(pub ed25519.PublicKey) string {
	if pub == nil {
		return "(none)"
	}
	return sign.KeyID(pub)
}

// check refuses what cannot be done before anything is written.
func (c Customization) check(m *medium) error {
	if (c.SecureBootKey == "") != (c.SecureBootCert == "") {
		return fmt.Errorf("%w: Secure Boot signing needs both a key and a certificate", ErrInput)
	}
	if c.SecureBootKey != "" && m.chain != ChainUKI {
		return fmt.Errorf("%w: this ISO boots UEFI through shim and Debian's signed GRUB, whose signatures do not cover what customize changes: give no Secure Boot key", ErrInput)
	}
	if m.chain == ChainUKI && (c.Cmdline != "" || c.Key != "" || len(c.DriverPacks) > 0) && c.SecureBootKey == "" {
		return fmt.Errorf("%w: this ISO boots UEFI through a unified kernel image signed with your own key, and its kernel command line and initramfs (with the package key) are inside that signature: give the key and certificate to sign it again (--secure-boot-key, --secure-boot-cert; files under /minint/ can be added without them)", ErrBoundary)
	}
	if c.Label != "" {
		if _, _, err := (Options{Kernel: "-", Initramfs: "-", Label: c.Label}).checkScalars(); err != nil {
			return err
		}
	}
	if strings.ContainsAny(c.Cmdline, "\n\r\"") {
		return fmt.Errorf("%w: kernel command line contains a newline or double quote", ErrInput)
	}
	args := strings.Fields(c.Cmdline)
	params := map[string][]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "minint.media", "console":
			return fmt.Errorf("%w: kernel argument %q: the medium sets %s itself", ErrInput, a, k)
		case "ip", "vlan", "nameserver", "ifname":
			params[k] = append(params[k], v)
		}
	}
	if len(params) > 0 {
		if _, err := netconf.ParseCmdline(params); err != nil {
			return fmt.Errorf("%w: network settings: %w", ErrInput, err)
		}
	}
	for _, p := range c.Packages {
		if p.Dir == "" {
			return fmt.Errorf("%w: package with no directory", ErrInput)
		}
	}
	return nil
}

// customCmdline replaces the media ID and adds extra before the serial
// console, which must stay last (kernelCmdline).
func customCmdline(old, oldID, newID, extra string) string {
	s := strings.Replace(old, "minint.media="+oldID, "minint.media="+newID, 1)
	extra = strings.Join(strings.Fields(extra), " ")
	if extra == "" {
		return s
	}
	const serial = " console=ttyS0,115200"
	if strings.HasSuffix(s, serial) {
		return strings.TrimSuffix(s, serial) + " " + extra + serial
	}
	return s + " " + extra
}

// PackageFiles checks an image package against the key that will verify it
// in the PE — the signature over manifest.json, then every listed file's
// size and SHA-256 — and returns its files with destinations below
// /minint/. A package the PE would refuse is refused here. The signature
// is stored as manifest.sig on an ISO (its 8.3 names cannot hold both
// manifest.json and manifest.json.sig; the PE reads that name on a medium)
// and as manifest.json.sig in a network-boot tree (HTTP), as served says.
func PackageFiles(p Package, pub ed25519.PublicKey, served bool) ([]File, error) {
	dest := p.Dest
	if dest == "" {
		dest = DefaultPackageDest
	}
	dest = path.Clean(strings.Trim(dest, "/"))
	if dest == "." || dest == ".." || strings.HasPrefix(dest, "../") {
		return nil, fmt.Errorf("%w: package destination %q is not a path below /minint", ErrInput, p.Dest)
	}
	if pub == nil {
		return nil, fmt.Errorf("%w: package %s: the PE has no package key, so it would refuse every package: give the key (--key)", ErrInput, p.Dir)
	}
	data, sig, sigSrc, err := manifest.ReadDir(p.Dir)
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, sign.ErrSignature) {
		err = fmt.Errorf("%w (make one with minint package create)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: package %s: %w", ErrInput, p.Dir, err)
	}
	m, err := manifest.Verify(data, sig, pub, manifest.VerifyOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: package %s: %w (the PE trusts key %s)", ErrInput, p.Dir, err, sign.KeyID(pub))
	}
	sigDest := manifest.ShortSignatureName
	if served {
		sigDest = manifest.SignatureName
	}
	files := []File{
		{Src: filepath.Join(p.Dir, manifest.FileName), Dest: dest + "/" + manifest.FileName},
		{Src: sigSrc, Dest: dest + "/" + sigDest},
	}
	for i := range m.Files {
		e := &m.Files[i]
		src := filepath.Join(p.Dir, filepath.FromSlash(e.Path))
		if err := manifest.VerifyFile(src, e, nil); err != nil {
			return nil, fmt.Errorf("%w: package %s: %w", ErrInput, p.Dir, err)
		}
		files = append(files, File{Src: src, Dest: dest + "/" + e.Path})
	}
	return files, nil
}

// checkMediumNames refuses files under /minint whose ISO 9660 8.3 names
// would clash once written (see checkExtra).
func checkMediumNames(stage string) error {
	var all []File
	root := filepath.Join(stage, MediaDir)
	err := filepath.Walk(root, func(fn string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, fn)
		if rel != "media.json" {
			all = append(all, File{Src: fn, Dest: filepath.ToSlash(rel)})
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	_, err = checkExtra(all, true)
	return err
}

// writeMediumConfig writes the boot menus and media.json for the
// customized plan.
func writeMediumConfig(stage string, m *medium, p *Plan) error {
	info := m.info
	info["id"] = p.MediaID
	info["label"] = p.Label
	info["cmdline"] = p.Cmdline
	if p.MediaID != m.id || p.Cmdline != m.cmdline {
		info["customized_from"] = m.id
	}
	info["created"] = p.Epoch.Format(time.RFC3339)
	var files []map[string]any
	root := filepath.Join(stage, MediaDir)
	filepath.Walk(root, func(fn string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(root, fn)
			if rel != "media.json" {
				files = append(files, map[string]any{"path": "/" + MediaDir + "/" + filepath.ToSlash(rel), "size": fi.Size()})
			}
		}
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i]["path"].(string) < files[j]["path"].(string) })
	if files != nil {
		info["files"] = files
	} else {
		delete(info, "files")
	}
	mj, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	generated := map[string][]byte{
		MediaJSONPath:   append(mj, '\n'),
		IsolinuxCfgPath: IsolinuxConfig("/"+KernelPath, "/"+InitrdPath, p.Cmdline),
	}
	if m.chain == ChainShim {
		generated[GrubConfigPath] = GrubConfig("/"+KernelPath, "/"+InitrdPath, p.Cmdline)
	}
	for name, data := range generated {
		if err := writeFile(filepath.Join(stage, filepath.FromSlash(name)), data); err != nil {
			return err
		}
	}
	return nil
}

// medium is what a built minint ISO says about itself.
type medium struct {
	id, label, cmdline, chain string
	created                   time.Time
	info                      map[string]any // media.json
	espSize                   int64
	mbrCode                   []byte            // the hybrid MBR's boot code (isohdpfx.bin)
	key                       ed25519.PublicKey // the PE's package key, nil if none
	peInfo                    map[string]any    // the initramfs's etc/minint/pe.json
	boot                      []BootEntry
	files                     []MediumFile // under /minint, media.json aside
}

// maxMediaJSON bounds what is read of /minint/media.json.
const maxMediaJSON = 1 << 20

// extractISO checks that in is a minint hybrid ISO, copies its tree to dir
// (with want, only the files it wants and the initramfs) and returns what
// it says about itself.
func extractISO(in, dir string, want func(path string) bool) (*medium, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrFormat, in, fmt.Sprintf(format, a...))
	}
	m := &medium{}
	if m.boot, err = ReadBootCatalog(f); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if len(m.boot) != 2 || m.boot[0].Platform != PlatformBIOS || m.boot[1].Platform != PlatformEFI {
		return nil, bad("boot catalog has %d entries, want one BIOS and one UEFI", len(m.boot))
	}
	mbr, err := readAt(f, 0, sector)
	if err != nil || mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, bad("no hybrid MBR (not written by minint iso)")
	}
	m.mbrCode = mbr[:432]
	fsys, err := iso9660.Read(file.New(f, true), fi.Size(), 0, isoBlock)
	if err != nil {
		return nil, bad("%v", err)
	}
	open := func(p string) (io.Reader, int64, error) {
		fh, err := fsys.OpenFile("/"+p, os.O_RDONLY)
		if err != nil {
			return nil, 0, bad("/%s: %v", p, err)
		}
		n, _ := fh.Seek(0, io.SeekEnd)
		fh.Seek(0, io.SeekStart)
		return fh, n, nil
	}
	r, _, err := open(MediaJSONPath)
	if err != nil {
		return nil, bad("no /%s: not a minint medium", MediaJSONPath)
	}
	mj, err := io.ReadAll(io.LimitReader(r, maxMediaJSON))
	if err != nil {
		return nil, bad("/%s: %v", MediaJSONPath, err)
	}
	if err := json.Unmarshal(mj, &m.info); err != nil {
		return nil, bad("/%s: %v", MediaJSONPath, err)
	}
	str := func(k string) string { s, _ := m.info[k].(string); return s }
	m.id, m.label, m.cmdline, m.chain = str("id"), str("label"), str("cmdline"), str("uefi_chain")
	m.created, _ = time.Parse(time.RFC3339, str("created"))
	if m.id == "" || m.cmdline == "" || (m.chain != ChainShim && m.chain != ChainUKI) {
		return nil, bad("/%s lacks the media id, command line or UEFI chain", MediaJSONPath)
	}
	if m.label == "" {
		m.label = strings.TrimRight(fsys.Label(), " ")
	}
	if _, m.espSize, err = open(ESPImagePath); err != nil {
		return nil, err
	}

	var copyTree func(p string) error
	copyTree = func(p string) error {
		ents, err := fsys.ReadDir(strings.TrimPrefix(path.Clean("."+p), "./"))
		if err != nil {
			return bad("%s: %v", p, err)
		}
		for _, e := range ents {
			name := e.Name()
			if name == "." || name == ".." || name == "" {
				continue
			}
			rel := path.Join(p, name)
			if e.IsDir() {
				if err := copyTree(rel); err != nil {
					return err
				}
				continue
			}
			if strings.HasPrefix(rel, "/"+MediaDir+"/") && rel != "/"+MediaJSONPath {
				fi, err := e.Info()
				if err != nil {
					return bad("%s: %v", rel, err)
				}
				m.files = append(m.files, MediumFile{Path: rel, Size: fi.Size()})
			}
			if want != nil && rel != "/"+InitrdPath && !want(rel) {
				continue
			}
			if err := copyOut(fsys, rel, filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
				return bad("%s: %v", rel, err)
			}
		}
		return nil
	}
	if err := copyTree("/"); err != nil {
		return nil, err
	}
	if m.key, m.peInfo, err = readPE(filepath.Join(dir, filepath.FromSlash(InitrdPath))); err != nil {
		return nil, bad("the PE's initramfs /%s: %v", InitrdPath, err)
	}
	return m, nil
}

// PEKey returns the package key a PE's initramfs holds (nil if none): the
// key that must have signed every package the PE is given.
func PEKey(initrd string) (ed25519.PublicKey, error) {
	key, _, err := readPE(initrd)
	if err != nil {
		return nil, fmt.Errorf("%w: PE initramfs %s: %w", ErrInput, initrd, err)
	}
	return key, nil
}

// readPE reads the package key and the build info (etc/minint/pe.json)
// from a PE's initramfs, as the kernel would unpack it.
func readPE(initrd string) (ed25519.PublicKey, map[string]any, error) {
	ents, err := initramfs.ReadArchive(initrd)
	if err != nil {
		return nil, nil, err
	}
	var key ed25519.PublicKey
	var info map[string]any
	for _, e := range ents {
		switch e.Name {
		case strings.TrimPrefix(pe.DefaultPublicKey, "/"):
			if key, err = sign.ParsePublicKey(e.Data); err != nil {
				return nil, nil, fmt.Errorf("package key %s: %w", pe.DefaultPublicKey, err)
			}
		case "etc/minint/pe.json":
			json.Unmarshal(e.Data, &info)
		}
	}
	return key, info, nil
}

func copyOut(fsys *iso9660.FileSystem, p, dst string) error {
	in, err := fsys.OpenFile(p, os.O_RDONLY)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
