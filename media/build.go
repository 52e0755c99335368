package media

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/minint/minint/internal/durable"
)

// isoBuild is one BuildISO run: the plan, the host's files and programs,
// and a private work directory next to the output.
type isoBuild struct {
	o       Options
	p       *Plan
	host    HostPaths
	tools   map[string]string
	logf    func(string, ...any)
	work    string // removed at the end
	stage   string // the ISO 9660 tree
	scratch string // intermediate files
	image   string // the ISO being written, renamed to out when complete
	mbrCode []byte // the hybrid MBR's boot code; nil reads the host's isohdpfx.bin

	total, done int64
}

// BuildISO writes a hybrid ISO to out. The image is written inside a
// temporary directory next to out and renamed into place only when
// complete, so a failed build leaves nothing behind.
func BuildISO(ctx context.Context, o Options, out string) (*Result, error) {
	b, err := newISOBuild(o, out)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.work)

	espSize, err := b.writeESP(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.stageTree(ctx); err != nil {
		return nil, err
	}
	b.logf("writing ISO 9660 image")
	size, err := b.writeImage(espSize)
	if err != nil {
		return nil, err
	}
	if err := durable.Rename(b.image, out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	if o.Progress != nil {
		o.Progress(b.total, b.total)
	}
	return &Result{Path: out, Size: size, MediaID: b.p.MediaID, Cmdline: b.p.Cmdline, Label: b.p.Label,
		Chain: b.p.Chain, ESPSize: espSize, Epoch: b.p.Epoch}, nil
}

func newISOBuild(o Options, out string) (*isoBuild, error) {
	b := &isoBuild{o: o, logf: o.Log, host: o.Host.withDefaults()}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	chain := ChainShim
	if o.SecureBootKey != "" || o.SecureBootCert != "" {
		chain = ChainUKI
	}
	var err error
	if b.tools, err = b.host.check(need{iso: true, chain: chain}); err != nil {
		return nil, err
	}
	if b.p, err = NewPlan(o, true); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrOutput, out)
	}
	if b.work, err = os.MkdirTemp(filepath.Dir(out), ".minint-iso-*"); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOutput, out, err)
	}
	b.image = filepath.Join(b.work, "image.iso")
	b.stage = filepath.Join(b.work, "iso")
	b.scratch = filepath.Join(b.work, "scratch")
	for _, d := range []string{b.stage, b.scratch} {
		if err := os.Mkdir(d, 0o755); err != nil {
			os.RemoveAll(b.work)
			return nil, err
		}
	}
	for _, s := range append([]string{b.p.Kernel, b.p.Initramfs}, extraSrcs(b.p.Extra)...) {
		b.total += sizeOf(s)
	}
	if b.p.Chain == ChainUKI {
		b.total += sizeOf(b.p.Kernel) + sizeOf(b.p.Initramfs)
	}
	return b, nil
}

func (b *isoBuild) progress(n int64) {
	b.done += n
	if b.o.Progress != nil {
		b.o.Progress(b.done, b.total)
	}
}

// espFiles returns what goes into the EFI system partition for the plan's
// chain (see layout.go), building and signing the UKI first when needed.
func espFiles(ctx context.Context, p *Plan, host HostPaths, objcopy, scratch string) (map[string]string, error) {
	switch p.Chain {
	case ChainUKI:
		uki := filepath.Join(scratch, "BOOTX64.EFI")
		if err := p.buildUKI(ctx, host.EFIStub, objcopy, scratch, p.Cmdline, uki); err != nil {
			return nil, err
		}
		return map[string]string{espLoader: uki}, nil
	default:
		boot := filepath.Join(scratch, "grub-bootstrap.cfg")
		if err := os.WriteFile(boot, grubBootstrap, 0o644); err != nil {
			return nil, err
		}
		return map[string]string{espLoader: host.Shim, espGrub: host.GrubCD, espMokManager: host.MokManager,
			espGrubConfig: boot}, nil
	}
}

// writeESP builds the EFI system partition image at /boot/efiboot.img.
func (b *isoBuild) writeESP(ctx context.Context) (int64, error) {
	if b.p.Chain == ChainUKI {
		b.logf("building and signing the unified kernel image")
	}
	files, err := espFiles(ctx, b.p, b.host, b.tools["objcopy"], b.scratch)
	if err != nil {
		return 0, err
	}
	b.logf("building EFI system partition image")
	espFile := filepath.Join(b.stage, ESPImagePath)
	if err := os.MkdirAll(filepath.Dir(espFile), 0o755); err != nil {
		return 0, err
	}
	idb, _ := hex.DecodeString(b.p.MediaID)
	size, err := espImage{Label: "MININT_ESP", VolID: binary.BigEndian.Uint32(idb), Epoch: b.p.Epoch,
		Files: files, tools: b.tools, tmpDir: b.scratch}.build(ctx, espFile)
	if err != nil {
		return 0, err
	}
	if b.p.Chain == ChainUKI {
		b.progress(sizeOf(b.p.Kernel) + sizeOf(b.p.Initramfs))
	}
	return size, nil
}

// stageTree lays out the ISO 9660 tree: the shared kernel and initramfs,
// ISOLINUX, the configurations and the extra files, every mode and time
// fixed.
func (b *isoBuild) stageTree(ctx context.Context) error {
	b.logf("staging files")
	copies := [][2]string{
		{b.p.Kernel, KernelPath},
		{b.p.Initramfs, InitrdPath},
		{b.host.IsolinuxBin, IsolinuxPath + "/isolinux.bin"},
		{b.host.LdlinuxC32, IsolinuxPath + "/ldlinux.c32"},
	}
	for _, e := range b.p.Extra {
		copies = append(copies, [2]string{e.Src, MediaDir + "/" + e.Dest})
	}
	for _, c := range copies {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := copyFile(c[0], filepath.Join(b.stage, c[1]))
		if err != nil {
			return err
		}
		if filepath.Dir(c[1]) != IsolinuxPath { // the loaders are not in the total
			b.progress(n)
		}
	}
	generated := map[string][]byte{
		IsolinuxCfgPath: b.p.Isolinux,
		MediaJSONPath:   b.p.MediaJSON,
	}
	if b.p.Chain == ChainShim {
		generated[GrubConfigPath] = b.p.Grub
	}
	for name, data := range generated {
		if err := writeFile(filepath.Join(b.stage, name), data); err != nil {
			return err
		}
	}
	return normalizeTree(b.stage, b.p)
}

// normalizeTree gives every file mode 0644 and every directory 0755, and
// all of them the epoch as their times.
func normalizeTree(root string, p *Plan) error {
	return filepath.Walk(root, func(fn string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if fi.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(fn, mode); err != nil {
			return err
		}
		return os.Chtimes(fn, p.Epoch, p.Epoch)
	})
}

// writeImage writes the staged tree as ISO 9660 with El Torito entries
// for ISOLINUX and the ESP, makes the result reproducible and adds the
// hybrid system area. It returns the image's size.
func (b *isoBuild) writeImage(espSize int64) (int64, error) {
	var estimate int64 = 4 << 20
	filepath.Walk(b.stage, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			estimate += (fi.Size() + 2047) / 2048 * 2048
		}
		return nil
	})
	be, err := file.CreateFromPath(b.image, estimate)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrOutput, b.image, err)
	}
	fs, err := iso9660.Create(be, estimate, 0, 2048, b.stage)
	if err != nil {
		be.Close()
		return 0, fmt.Errorf("iso9660: %w", err)
	}
	err = fs.Finalize(iso9660.FinalizeOptions{
		// Rock Ridge for names beyond 8.3 (go-diskfs v1.9.4 writes broken
		// Joliet file names).
		RockRidge:        true,
		VolumeIdentifier: b.p.Label,
		ElTorito: &iso9660.ElTorito{
			BootCatalog:     "/" + bootCatalogPath,
			HideBootCatalog: true, // a visible catalog would carry go-diskfs's clock time
			Entries: []*iso9660.ElToritoEntry{
				{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: "/" + IsolinuxPath + "/isolinux.bin", BootTable: true, LoadSegment: 0},
				{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: "/" + ESPImagePath},
			},
		},
	})
	be.Close()
	if err != nil {
		return 0, fmt.Errorf("iso9660: %w", err)
	}
	f, err := os.OpenFile(b.image, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := b.finishImage(f, espSize)
	if err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Chmod(0o644); err != nil {
		return 0, err
	}
	return size, f.Close()
}

// finishImage replaces what go-diskfs takes from the clock and the host
// with the epoch, then writes the hybrid MBR and GPT.
func (b *isoBuild) finishImage(f *os.File, espSize int64) (int64, error) {
	isoSize, err := fixVolumeDescriptors(f, b.p.Epoch)
	if err != nil {
		return 0, err
	}
	if err := fixDirectoryRecords(f, b.p.Epoch); err != nil {
		return 0, err
	}
	boots, err := ReadBootCatalog(f)
	if err != nil {
		return 0, fmt.Errorf("reading back the boot catalog: %w", err)
	}
	if len(boots) != 2 || boots[0].Platform != PlatformBIOS || boots[1].Platform != PlatformEFI {
		return 0, fmt.Errorf("reading back the boot catalog: unexpected entries %+v", boots)
	}
	mbrCode := b.mbrCode
	if mbrCode == nil {
		if mbrCode, err = os.ReadFile(b.host.IsohdpfxBin); err != nil {
			return 0, err
		}
	}
	idb, _ := hex.DecodeString(b.p.MediaID)
	var diskID [16]byte
	copy(diskID[:], idb)
	copy(diskID[8:], sha256Bytes(idb)[:8])
	return writeHybrid(f, hybridLayout{IsohdpfxBin: mbrCode, BootLBA: boots[0].LBA, ESPLBA: boots[1].LBA,
		ESPSize: espSize, ISOSize: isoSize, DiskID: diskID})
}

func writeFile(fn string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(fn), 0o755); err != nil {
		return err
	}
	return os.WriteFile(fn, data, 0o644)
}
