// Package media builds minint's boot media on the host: a hybrid ISO 9660
// image that boots the PE under BIOS (ISOLINUX) and UEFI (a unified kernel
// image in an EFI system partition), from a CD or written raw to a disk.
//
// A build is planned first (Plan: every file's place on the medium, the
// boot configurations, the media ID) and then written by a sink. The ISO is
// one sink; a network-boot bundle is another one over the same plan.
//
// Builds are deterministic: all timestamps come from the epoch
// (SOURCE_DATE_EPOCH, else the newest input's mtime), and all ids derive
// from the media ID, which is a hash of the inputs.
//
// Code that runs inside the PE never imports this package.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
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

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
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
	Kernel    string // bzImage
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
	Epoch     time.Time
	Kernel    string
	Initramfs string
	Extra     []File
	MediaJSON []byte
	Isolinux  []byte // isolinux.cfg
}

const (
	defaultLabel = "MININT"
	mediaDir     = "minint"
)

// NewPlan validates the inputs and fixes the media ID and command line. It
// reads (hashes) every input once.
func NewPlan(o Options) (*Plan, error) {
	if o.Kernel == "" {
		return nil, fmt.Errorf("%w: no kernel given", ErrInput)
	}
	if o.Initramfs == "" {
		return nil, fmt.Errorf("%w: no initramfs given", ErrInput)
	}
	label := o.Label
	if label == "" {
		label = defaultLabel
	}
	if len(label) > 32 || strings.TrimLeft(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return nil, fmt.Errorf("%w: volume label %q: use at most 32 characters of A-Z, 0-9 and _", ErrInput, label)
	}
	done := o.Done
	if done == "" {
		done = "poweroff"
	}
	switch done {
	case "poweroff", "reboot", "shell":
	default:
		return nil, fmt.Errorf("%w: done action %q: want poweroff, reboot or shell", ErrInput, done)
	}
	if strings.ContainsAny(o.Cmdline, "\n\r\"") {
		return nil, fmt.Errorf("%w: kernel command line contains a newline or double quote", ErrInput)
	}

	h := sha256.New()
	fmt.Fprintf(h, "minint-media-v1\x00%s\x00%s\x00%s\x00%t\x00", label, o.Cmdline, done, o.Verbose)
	newest := time.Time{}
	hashFile := func(what, p string) error {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInput, what, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s %s is not a regular file", ErrInput, what, p)
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		fmt.Fprintf(h, "%s\x00%d\x00", what, fi.Size())
		_, err = io.Copy(h, f)
		return err
	}
	if err := hashFile("kernel", o.Kernel); err != nil {
		return nil, err
	}
	if err := hashFile("initramfs", o.Initramfs); err != nil {
		return nil, err
	}
	extra := append([]File(nil), o.ExtraFiles...)
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
		// go-diskfs derives 8.3 names from the Rock Ridge names; two that
		// map to one 8.3 name would give a directory with a duplicate.
		key := path.Dir(d) + "/" + shortName(path.Base(d))
		if prev, dup := short[key]; dup {
			return nil, fmt.Errorf("%w: extra files /minint/%s and /minint/%s have the same ISO 9660 8.3 name; rename one (change its first 8 characters or its extension)", ErrInput, prev, d)
		}
		short[key] = d
		if fi, err := os.Stat(e.Src); err == nil && fi.Size() >= 4<<30 {
			return nil, fmt.Errorf("%w: extra file %s is %d bytes; files on the ISO must be under 4 GiB (split it)", ErrInput, e.Src, fi.Size())
		}
		extra[i].Dest = d
		if err := hashFile("extra file /minint/"+d, e.Src); err != nil {
			return nil, err
		}
	}
	id := hex.EncodeToString(h.Sum(nil))[:16]

	epoch := o.Epoch
	if epoch.IsZero() {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: SOURCE_DATE_EPOCH=%q is not a number of seconds", ErrInput, s)
			}
			epoch = time.Unix(n, 0)
		} else {
			epoch = newest.Truncate(time.Second)
		}
	}
	// FAT cannot store dates before 1980.
	if min := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); epoch.Before(min) {
		epoch = min
	}
	epoch = epoch.UTC()

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
	cmdline := strings.Join(args, " ")

	info := map[string]any{}
	for k, v := range o.Info {
		info[k] = v
	}
	info["id"] = id
	info["label"] = label
	info["cmdline"] = cmdline
	info["created"] = epoch.Format(time.RFC3339)
	var files []map[string]any
	for _, e := range extra {
		fi, _ := os.Stat(e.Src)
		files = append(files, map[string]any{"path": "/" + mediaDir + "/" + e.Dest, "size": fi.Size()})
	}
	if files != nil {
		info["files"] = files
	}
	mj, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: media info: %w", ErrInput, err)
	}

	isolinux := fmt.Sprintf(`SERIAL 0 115200
DEFAULT minint
PROMPT 0
TIMEOUT 0
LABEL minint
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd
  APPEND %s
`, cmdline)

	return &Plan{MediaID: id, Label: label, Cmdline: cmdline, Epoch: epoch, Kernel: o.Kernel,
		Initramfs: o.Initramfs, Extra: extra, MediaJSON: append(mj, '\n'), Isolinux: []byte(isolinux)}, nil
}

// BuildISO writes a hybrid ISO to out. The image is written to a temporary
// file next to out and renamed into place only when complete.
func BuildISO(ctx context.Context, o Options, out string) (*Result, error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	host := o.Host.withDefaults()
	tools, err := host.check()
	if err != nil {
		return nil, err
	}
	p, err := NewPlan(o)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(out)
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrOutput, out)
	}
	// Everything, the image included, is written inside a private directory
	// next to out, so that the final rename is atomic and a failed build
	// leaves nothing behind.
	work, err := os.MkdirTemp(dir, ".minint-iso-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOutput, out, err)
	}
	defer os.RemoveAll(work)
	tmpName := filepath.Join(work, "image.iso")
	stage := filepath.Join(work, "iso")
	scratch := filepath.Join(work, "scratch")
	for _, d := range []string{stage, scratch} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}

	var total, done int64
	for _, s := range append([]string{p.Kernel, p.Initramfs, p.Kernel, p.Initramfs}, extraSrcs(p.Extra)...) {
		if fi, err := os.Stat(s); err == nil {
			total += fi.Size()
		}
	}
	prog := func(n int64) {
		done += n
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}

	logf("building unified kernel image")
	uki := filepath.Join(scratch, "BOOTX64.EFI")
	if err := (UKI{Stub: host.EFIStub, Kernel: p.Kernel, Initramfs: p.Initramfs, Cmdline: p.Cmdline,
		OSRelease: fmt.Sprintf("ID=minint\nNAME=\"minint PE\"\nVERSION_ID=%s\n", p.MediaID), Epoch: p.Epoch,
	}).Build(ctx, tools["objcopy"], scratch, uki); err != nil {
		return nil, err
	}
	logf("building EFI system partition image")
	idb, _ := hex.DecodeString(p.MediaID)
	espFile := filepath.Join(stage, "boot", "efiboot.img")
	if err := os.MkdirAll(filepath.Dir(espFile), 0o755); err != nil {
		return nil, err
	}
	espSize, err := espImage{Label: "MININT_ESP", VolID: binary.BigEndian.Uint32(idb), Epoch: p.Epoch,
		Files: map[string]string{"/EFI/BOOT/BOOTX64.EFI": uki}, tools: tools, tmpDir: scratch}.build(ctx, espFile)
	if err != nil {
		return nil, err
	}
	prog(sizeOf(p.Kernel) + sizeOf(p.Initramfs))
	os.Remove(uki)

	logf("staging files")
	copies := []struct {
		src, dst string
	}{
		{p.Kernel, "boot/vmlinuz"},
		{p.Initramfs, "boot/initrd"},
		{host.IsolinuxBin, "isolinux/isolinux.bin"},
		{host.LdlinuxC32, "isolinux/ldlinux.c32"},
	}
	for _, e := range p.Extra {
		copies = append(copies, struct{ src, dst string }{e.Src, mediaDir + "/" + e.Dest})
	}
	for _, c := range copies {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := copyFile(c.src, filepath.Join(stage, c.dst))
		if err != nil {
			return nil, err
		}
		prog(n)
	}
	for name, b := range map[string][]byte{
		"isolinux/isolinux.cfg":  p.Isolinux,
		mediaDir + "/media.json": p.MediaJSON,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(stage, name)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(stage, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := filepath.Walk(stage, func(p2 string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if fi.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(p2, mode); err != nil {
			return err
		}
		return os.Chtimes(p2, p.Epoch, p.Epoch)
	}); err != nil {
		return nil, err
	}

	logf("writing ISO 9660 image")
	var isoEstimate int64 = 4 << 20
	filepath.Walk(stage, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			isoEstimate += (fi.Size() + 2047) / 2048 * 2048
		}
		return nil
	})
	be, err := file.CreateFromPath(tmpName, isoEstimate)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOutput, tmpName, err)
	}
	fs, err := iso9660.Create(be, isoEstimate, 0, 2048, stage)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("iso9660: %w", err)
	}
	err = fs.Finalize(iso9660.FinalizeOptions{
		// Rock Ridge for names beyond 8.3 (go-diskfs v1.9.4 writes broken
		// Joliet file names).
		RockRidge:        true,
		VolumeIdentifier: p.Label,
		ElTorito: &iso9660.ElTorito{
			BootCatalog:     "/isolinux/boot.cat",
			HideBootCatalog: true, // a visible catalog would carry go-diskfs's clock time
			Entries: []*iso9660.ElToritoEntry{
				{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: "/isolinux/isolinux.bin", BootTable: true, LoadSegment: 0},
				{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: "/boot/efiboot.img"},
			},
		},
	})
	be.Close()
	if err != nil {
		return nil, fmt.Errorf("iso9660: %w", err)
	}

	f, err := os.OpenFile(tmpName, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	isoSize, err := fixVolumeDescriptors(f, p.Epoch)
	if err != nil {
		return nil, err
	}
	if err := fixDirectoryRecords(f, p.Epoch); err != nil {
		return nil, err
	}
	boots, err := ReadBootCatalog(f)
	if err != nil {
		return nil, fmt.Errorf("reading back the boot catalog: %w", err)
	}
	if len(boots) != 2 || boots[0].Platform != PlatformBIOS || boots[1].Platform != PlatformEFI {
		return nil, fmt.Errorf("reading back the boot catalog: unexpected entries %+v", boots)
	}
	mbrCode, err := os.ReadFile(host.IsohdpfxBin)
	if err != nil {
		return nil, err
	}
	var diskID [16]byte
	copy(diskID[:], idb)
	copy(diskID[8:], sha256Bytes(idb)[:8])
	size, err := writeHybrid(f, hybridLayout{IsohdpfxBin: mbrCode, BootLBA: boots[0].LBA, ESPLBA: boots[1].LBA,
		ESPSize: espSize, ISOSize: isoSize, DiskID: diskID})
	if err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmpName, out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	if o.Progress != nil {
		o.Progress(total, total)
	}
	return &Result{Path: out, Size: size, MediaID: p.MediaID, Cmdline: p.Cmdline, Label: p.Label,
		ESPSize: espSize, Epoch: p.Epoch}, nil
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
