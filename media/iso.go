// Package media builds minint's boot media on the host: a hybrid ISO 9660
// image that boots the PE under BIOS (ISOLINUX) and UEFI — with Secure Boot
// on, through the distribution's signed chain (shim → GRUB → kernel) or a
// unified kernel image signed with the organization's own key — from a CD
// or written raw to a disk, and a network-boot bundle with the same chain.
//
// The kernel and the initramfs are on the medium once, shared by ISOLINUX
// and GRUB; the EFI system partition holds only the small signed loaders.
// The layout (layout.go) is fixed and documented so that other tools can
// find and replace the PE's files in a built medium.
//
// A build is planned first (Plan: every file's place on the medium, the
// boot configurations, the media ID) and then written by a sink. The ISO is
// one sink; a network-boot bundle is another one over the same plan.
//
// Builds are deterministic: all timestamps come from the epoch
// (SOURCE_DATE_EPOCH, else the newest input's mtime), all ids derive from
// the media ID, which is a hash of the inputs, and UKI signatures carry no
// signing time.
//
// Code that runs inside the PE never imports this package.
package media

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minint/minint/authenticode"
	"github.com/minint/minint/sign"
)

// File is an extra file placed under /minint/ on the medium.
type File struct {
	// Dest is the path below /minint/, e.g. "sequence.yaml" or
	// "images/base.wim".
	Dest string
	// Src is a host file to copy. Large files are streamed, never held in
	// memory.
	Src string
}

// Options configure a build.
type Options struct {
	Kernel    string // bzImage (Debian's signed kernel for Secure Boot)
	Initramfs string // the PE's initramfs (any compression the kernel reads)
	// Label is the ISO volume label (default "MININT"): at most 32
	// characters of A-Z, 0-9 and _.
	Label string
	// Cmdline is appended to minint's own kernel arguments.
	Cmdline string
	// Done is what the PE does when it finishes: poweroff (default),
	// reboot or shell. It becomes minint.done= on the kernel command line.
	Done string
	// Verbose leaves "quiet" off the kernel command line, so that the
	// kernel's own messages reach the console. They cost seconds on a
	// 115200-baud serial line, hence the default.
	Verbose bool
	// SecureBootKey and SecureBootCert (PEM files, an RSA key and its
	// certificate) select the UKI chain: UEFI boots a unified kernel image
	// signed with them, for firmware whose db holds that certificate.
	// Without them UEFI boots through shim and GRUB (ChainShim).
	SecureBootKey, SecureBootCert string
	// ExtraFiles go under /minint/.
	ExtraFiles []File
	// Info adds build facts (PE id, kernel version, ...) to
	// /minint/media.json.
	Info map[string]any
	// Epoch fixes every timestamp. Zero means SOURCE_DATE_EPOCH, else the
	// newest mtime of the inputs.
	Epoch time.Time
	Host  HostPaths
	// Log receives one line per step (nil for none).
	Log func(format string, args ...any)
	// Progress receives bytes written so far and the expected total.
	Progress func(done, total int64)
}

// Result describes a built medium.
type Result struct {
	Path    string
	Size    int64
	MediaID string
	Cmdline string
	Label   string
	Chain   string // ChainShim or ChainUKI
	ESPSize int64
	Epoch   time.Time
}

// Sentinel errors; they are wrapped with which input and why.
var (
	ErrInput  = errors.New("invalid media input")
	ErrOutput = errors.New("cannot write output")
)

// Plan is everything decided about a medium before any of it is written.
type Plan struct {
	MediaID   string
	Label     string
	Cmdline   string // the full kernel command line
	Chain     string // ChainShim or ChainUKI
	Epoch     time.Time
	Kernel    string
	Initramfs string
	Extra     []File
	MediaJSON []byte
	Isolinux  []byte // isolinux.cfg
	Grub      []byte // grub.cfg

	// The organization's key, for ChainUKI.
	signer crypto.Signer
	cert   *x509.Certificate
}

const defaultLabel = "MININT"

// NewPlan validates the inputs and fixes the media ID and command line. It
// reads (hashes) every input once. forISO applies the limits of ISO 9660
// (8.3 names, files under 4 GiB) to the extra files; a network-boot tree
// served over HTTP has none.
func NewPlan(o Options, forISO bool) (*Plan, error) {
	label, done, err := o.checkScalars()
	if err != nil {
		return nil, err
	}
	p := &Plan{Label: label, Chain: ChainShim, Kernel: o.Kernel, Initramfs: o.Initramfs}
	if o.SecureBootKey != "" || o.SecureBootCert != "" {
		if o.SecureBootKey == "" || o.SecureBootCert == "" {
			return nil, fmt.Errorf("%w: Secure Boot signing needs both a key and a certificate", ErrInput)
		}
		if p.signer, p.cert, err = authenticode.LoadKeyPair(o.SecureBootKey, o.SecureBootCert); err != nil {
			return nil, fmt.Errorf("%w: Secure Boot key: %w", ErrInput, err)
		}
		p.Chain = ChainUKI
	}

	h := sha256.New()
	fmt.Fprintf(h, "minint-media-v2\x00%s\x00%s\x00%s\x00%t\x00%s\x00", label, o.Cmdline, done, o.Verbose, p.Chain)
	if p.cert != nil {
		h.Write(p.cert.Raw)
	}
	newest := time.Time{}
	hashFile := func(what, fn string) error {
		mtime, err := hashInput(h, what, fn)
		if mtime.After(newest) {
			newest = mtime
		}
		return err
	}
	if err := hashFile("kernel", o.Kernel); err != nil {
		return nil, err
	}
	if err := hashFile("initramfs", o.Initramfs); err != nil {
		return nil, err
	}
	if p.Extra, err = checkExtra(o.ExtraFiles, forISO); err != nil {
		return nil, err
	}
	for _, e := range p.Extra {
		if err := hashFile("extra file /minint/"+e.Dest, e.Src); err != nil {
			return nil, err
		}
	}
	p.MediaID = hex.EncodeToString(h.Sum(nil))[:16]
	if p.Epoch, err = epochOf(o.Epoch, newest); err != nil {
		return nil, err
	}
	p.Cmdline = kernelCmdline(o, done, p.MediaID)
	if p.MediaJSON, err = mediaJSON(p, o.Info); err != nil {
		return nil, err
	}
	p.Isolinux = IsolinuxConfig("/"+KernelPath, "/"+InitrdPath, p.Cmdline)
	p.Grub = GrubConfig("/"+KernelPath, "/"+InitrdPath, p.Cmdline)
	return p, nil
}

// CheckLabel says whether label can be an ISO volume label, so that a
// command can refuse a bad one before spending minutes building the PE.
func CheckLabel(label string) error {
	if label == "" || len(label) > 32 || strings.TrimLeft(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return fmt.Errorf("%w: volume label %q: use 1 to 32 characters of A-Z, 0-9 and _", ErrInput, label)
	}
	return nil
}

func (o Options) checkScalars() (label, done string, err error) {
	if o.Kernel == "" {
		return "", "", fmt.Errorf("%w: no kernel given", ErrInput)
	}
	if o.Initramfs == "" {
		return "", "", fmt.Errorf("%w: no initramfs given", ErrInput)
	}
	label = o.Label
	if label == "" {
		label = defaultLabel
	}
	if err := CheckLabel(label); err != nil {
		return "", "", err
	}
	done = o.Done
	if done == "" {
		done = "poweroff"
	}
	switch done {
	case "poweroff", "reboot", "shell":
	default:
		return "", "", fmt.Errorf("%w: done action %q: want poweroff, reboot or shell", ErrInput, done)
	}
	if strings.ContainsAny(o.Cmdline, "\n\r\"") {
		return "", "", fmt.Errorf("%w: kernel command line contains a newline or double quote", ErrInput)
	}
	return label, done, nil
}

// hashInput adds a regular file's name, size and content to h.
func hashInput(h io.Writer, what, fn string) (time.Time, error) {
	f, err := os.Open(fn)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %w", ErrInput, what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return time.Time{}, fmt.Errorf("%w: %s %s is not a regular file", ErrInput, what, fn)
	}
	fmt.Fprintf(h, "%s\x00%d\x00", what, fi.Size())
	_, err = io.Copy(h, f)
	return fi.ModTime(), err
}

// checkExtra cleans and sorts the extra files' destinations and refuses
// escapes, duplicates and, forISO, 8.3-name clashes and files too large.
func checkExtra(in []File, forISO bool) ([]File, error) {
	extra := append([]File(nil), in...)
	sort.Slice(extra, func(i, j int) bool { return extra[i].Dest < extra[j].Dest })
	seen := map[string]bool{"media.json": true}
	short := map[string]string{"./" + shortName("media.json"): "media.json"}
	for i, e := range extra {
		d := path.Clean(strings.TrimPrefix(e.Dest, "/"))
		if d == "." || d == ".." || strings.HasPrefix(d, "../") || e.Dest == "" {
			return nil, fmt.Errorf("%w: extra file destination %q is not a path below /minint", ErrInput, e.Dest)
		}
		if seen[d] {
			return nil, fmt.Errorf("%w: extra file destination /minint/%s given twice (or reserved)", ErrInput, d)
		}
		seen[d] = true
		extra[i].Dest = d
		if !forISO {
			continue
		}
		// go-diskfs derives 8.3 names from the Rock Ridge names; two that
		// map to one 8.3 name would give a directory with a duplicate.
		key := path.Dir(d) + "/" + shortName(path.Base(d))
		if prev, dup := short[key]; dup {
			hint := "rename one (change its first 8 characters or its extension)"
			if strings.HasSuffix(d, ".sig") {
				hint = "add the signature as " + sign.ShortSignatureFor(strings.TrimSuffix(path.Base(d), ".sig")) + ", the name the PE reads on the medium"
			}
			return nil, fmt.Errorf("%w: extra files /minint/%s and /minint/%s have the same ISO 9660 8.3 name; %s", ErrInput, prev, d, hint)
		}
		short[key] = d
		if fi, err := os.Stat(e.Src); err == nil && fi.Size() >= 4<<30 {
			return nil, fmt.Errorf("%w: extra file %s is %d bytes; files on the ISO must be under 4 GiB (split it)", ErrInput, e.Src, fi.Size())
		}
	}
	return extra, nil
}

// epochOf picks the build's timestamp: the one given, SOURCE_DATE_EPOCH,
// else the newest input's mtime; never before 1980 (FAT cannot store it).
func epochOf(given, newest time.Time) (time.Time, error) {
	epoch := given
	if epoch.IsZero() {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q is not a number of seconds", ErrInput, s)
			}
			epoch = time.Unix(n, 0)
		} else {
			epoch = newest.Truncate(time.Second)
		}
	}
	if min := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); epoch.Before(min) {
		epoch = min
	}
	return epoch.UTC(), nil
}

func kernelCmdline(o Options, done, id string) string {
	// no_timer_check: under an emulator on a busy host the kernel's
	// IO-APIC timer self-test can time out and panic ("IO-APIC + timer
	// doesn't work"); the check only matters on long-gone chipsets.
	args := []string{"console=tty0", "no_timer_check"}
	if !o.Verbose {
		args = append(args, "quiet")
	}
	args = append(args, "minint.media="+id, "minint.done="+done)
	if c := strings.TrimSpace(o.Cmdline); c != "" {
		args = append(args, c)
	}
	// Last, so that /dev/console is the serial port.
	args = append(args, "console=ttyS0,115200")
	return strings.Join(args, " ")
}

func mediaJSON(p *Plan, facts map[string]any) ([]byte, error) {
	info := map[string]any{}
	for k, v := range facts {
		info[k] = v
	}
	info["id"] = p.MediaID
	info["label"] = p.Label
	info["cmdline"] = p.Cmdline
	info["created"] = p.Epoch.Format(time.RFC3339)
	info["uefi_chain"] = p.Chain
	var files []map[string]any
	for _, e := range p.Extra {
		fi, _ := os.Stat(e.Src)
		files = append(files, map[string]any{"path": "/" + MediaDir + "/" + e.Dest, "size": fi.Size()})
	}
	if files != nil {
		info["files"] = files
	}
	mj, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: media info: %w", ErrInput, err)
	}
	return append(mj, '\n'), nil
}

func extraSrcs(fs []File) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Src)
	}
	return s
}

func sizeOf(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func sha256Bytes(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// copyFile streams src to dst (copy_file_range where the kernel can).
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copying %s: %w", src, err)
	}
	return n, nil
}

// shortName is the ISO 9660 level-1 name go-diskfs (v1.9.4) gives a file.
func shortName(name string) string {
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	clean := func(s string, n int) string {
		b := []byte(s)
		for i, c := range b {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				b[i] = '_'
			}
		}
		if len(b) > n {
			b = b[:n]
		}
		return string(b)
	}
	return clean(base, 8) + "." + clean(ext, 3)
}
