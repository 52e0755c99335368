// Package initramfs builds minint's preinstallation environment (PE): a
// kernel plus a compressed initramfs holding cmd/peinit as /init, a small
// rescue toolset from u-root (gosh and core commands) and the kernel
// modules the PE needs, with their dependencies resolved from modules.dep.
//
// Building the Go part costs tens of seconds, so Build caches it in a cache
// directory keyed on everything it depends on (Go sources of every package
// it compiles, go.sum, the Go version, the command list), and caches the
// finished initramfs keyed on that plus the kernel, modules, extra files and
// compression. A warm Build is a hash of the inputs and a copy. Concurrent
// Build calls, also from several processes, serialise on a lock file in the
// cache directory; every file is written under a temporary name and renamed.
//
// This package runs on the build host only; code in the PE never imports it.
package initramfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minint/minint/driverpack"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/kmod"
	"golang.org/x/sys/unix"
)

// Config says what goes into the PE. The zero value builds the default PE
// from the newest kernel in /boot.
type Config struct {
	Kernel      string   // path to vmlinuz; "" = newest /boot/vmlinuz-*
	ModulesDir  string   // "" = /lib/modules/<kernel version read from the image or file name>
	Modules     []string // module names or aliases (iso9660, usb-storage …); nil = DefaultModules
	Commands    []string // extra Go command packages to include (besides peinit + RescueCommands)
	Files       []File   // extra files to put into the initramfs
	Compression string   // "zstd" (default), "gzip", "xz", "none"
	CacheDir    string   // "" = $MININT_CACHE, else <source>/out/cache, else $XDG_CACHE_HOME/minint
	// FirmwareDir holds the firmware the modules ask for ("" =
	// DefaultFirmwareDir). Firmware missing there is reported in
	// PE.MissingFirmware; with RequireFirmware it is an error.
	FirmwareDir     string
	RequireFirmware bool
	// DriverPacks are driver pack directories (see package driverpack)
	// whose modules and firmware join the PE's.
	DriverPacks []string
	// RequireSigned refuses driver pack modules without a signature (a
	// kernel under Secure Boot lockdown would not load them).
	RequireSigned bool
	// SourceDir is the root of minint's source tree (the module that
	// contains cmd/peinit). "" = $MININT_SRC, else the module around the
	// working directory, else the tree this binary was built from.
	SourceDir string
	Log       func(format string, a ...any) // progress lines; may be nil
}

// File is one extra file for the initramfs: the contents of Src on the
// host, or Data when Src is "". Dest is the path inside the initramfs.
type File struct {
	Src  string
	Data []byte
	Dest string
	Mode os.FileMode // permission bits; 0 = 0644
}

// DefaultModules are the modules the PE carries unless Config.Modules says
// otherwise: the storage controllers, NICs and USB hosts of common PCs,
// servers and hypervisors, file systems for boot media and targets, MD
// RAID and device-mapper, and the crypto helpers ext4 and the block layer
// ask for at run time. The PE loads them by device modalias (coldplug)
// only when the device is present, plus the file systems unconditionally;
// the firmware they ask for comes along (Config.FirmwareDir).
var DefaultModules = []string{
	// storage: SATA/IDE, NVMe (and Intel VMD in front of it), SAS/RAID
	// HBAs (Broadcom/LSI MegaRAID and SAS3, Microchip SmartPQI, HPE Smart
	// Array, Adaptec, LSI SAS/SPI of older servers and VMware, Intel C600),
	// hypervisors' paravirtual disks, USB and SD/MMC card readers
	"ahci", "ata_piix", "nvme", "vmd",
	"megaraid_sas", "mpt3sas", "smartpqi", "hpsa", "aacraid", "mptsas", "mptspi", "isci", "sym53c8xx",
	"vmw_pvscsi", "hv_storvsc", "virtio_pci", "virtio_blk", "virtio_scsi",
	"usb-storage", "uas", "sdhci_pci", "sdhci_acpi", "rtsx_pci_sdmmc", "mmc_block",
	"sd_mod", "sr_mod",
	// software RAID and device-mapper (arrays and LVM of machines being
	// captured or redeployed)
	"md_mod", "raid0", "raid1", "raid10", "raid456", "dm_mod", "dm_mirror", "dm_raid",
	// USB host controllers and keyboards for the rescue shell
	"xhci_pci", "ehci_pci", "uhci_hcd", "ohci_pci", "usbhid", "hid_generic",
	// file systems and code pages
	"ext4", "vfat", "iso9660", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859-1",
	"efivarfs",
	// root file systems of reference machines to capture (loaded when a
	// disk holds one: pe/capture)
	"xfs", "btrfs",
	// entropy for a fresh VM, and crypto the kernel requests by name at run time
	"virtio_rng",
	"crc32c_generic", "crct10dif_generic", "crc64_rocksoft_generic",
	// network: Intel (1, 10, 25-100 GbE and their virtual functions),
	// Realtek, Broadcom (Tigon3, NetXtreme II, NetXtreme-E), Mellanox
	// ConnectX, Emulex, Aquantia/Marvell, QLogic FastLinQ, and the
	// hypervisors' and clouds' NICs (VMware, Hyper-V, virtio, AWS ENA);
	// pcnet32 and 8139 for QEMU's older models
	"e1000", "e1000e", "e100", "igb", "igc", "ixgbe", "ixgbevf", "i40e", "iavf", "ice",
	"r8169", "8139too", "8139cp", "tg3", "bnx2", "bnx2x", "bnxt_en",
	"mlx4_en", "mlx5_core", "be2net", "atlantic", "qede",
	"vmxnet3", "hv_netvsc", "virtio_net", "ena", "pcnet32",
	// VLANs for static network configuration (vlan=)
	"8021q",
}

// RescueCommands are the u-root commands in every PE, for a technician on
// the console when something fails.
var RescueCommands = []string{
	"gosh", "ls", "cat", "cp", "mv", "rm", "mkdir", "ln", "chmod", "find", "grep",
	"more", "hexdump", "echo", "pwd", "uname", "sleep", "wc", "head", "tail",
	"mount", "umount", "df", "dd", "sync", "blkid", "free", "dmesg", "ps", "kill",
	"insmod", "lsmod", "rmmod", "ip", "dhclient", "ping", "wget", "poweroff", "shutdown",
}

const (
	peinitPkg   = "github.com/minint/minint/cmd/peinit"
	urootCore   = "github.com/u-root/u-root/cmds/core/"
	moduleLine  = "module github.com/minint/minint"
	pathInImage = "etc/minint/pe.json" // build info inside the initramfs
)

// PE is a built preinstallation environment.
type PE struct {
	Kernel        string   `json:"kernel"`         // path of the kernel (copied into the output dir)
	KernelVersion string   `json:"kernel_version"` // e.g. 6.1.0-56-amd64
	Initramfs     string   `json:"initramfs"`      // path of the compressed initramfs in the output dir
	InitramfsSize int64    `json:"initramfs_size"`
	KernelSize    int64    `json:"kernel_size"`
	Modules       []string `json:"modules"` // resolved module list, dependency-ordered
	ID            string   `json:"id"`      // hex digest identifying these exact inputs/outputs
	Compression   string   `json:"compression"`
	// Parts is the size budget: what each part of the initramfs costs.
	Parts []Part `json:"parts"`
	// Firmware lists the firmware files in the PE (relative to
	// /lib/firmware); MissingFirmware what modules may ask for that the
	// build host did not have.
	Firmware        []string          `json:"firmware"`
	MissingFirmware []MissingFirmware `json:"missing_firmware"`
	DriverPacks     []string          `json:"driver_packs,omitempty"`
	Cached          bool              `json:"-"` // true when the initramfs came from the cache
}

// Errors Build wraps with the details of what is wrong.
var (
	ErrNoSource  = errors.New("minint source tree not found")
	ErrNoGo      = errors.New("go toolchain not found")
	ErrNoModules = errors.New("kernel modules not found")
	ErrOutput    = errors.New("cannot write output")
)

// Build builds (or takes from the cache) the PE described by cfg and puts
// the kernel and the initramfs into outDir. Nothing is left half-written in
// outDir when it fails.
func Build(ctx context.Context, cfg Config, outDir string) (*PE, error) {
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	comp, err := compressor(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if err := checkOutDir(outDir); err != nil {
		return nil, err
	}
	src, err := findSource(cfg.SourceDir)
	if err != nil {
		return nil, err
	}
	cache, err := cacheDir(cfg.CacheDir, src)
	if err != nil {
		return nil, err
	}

	k, err := kernelSide(cfg)
	if err != nil {
		return nil, err
	}
	extra, err := loadFiles(cfg.Files)
	if err != nil {
		return nil, err
	}
	if _, err := checkGo(); err != nil {
		return nil, err
	}

	// Serialise with other builders (other test processes) from here on:
	// they would otherwise build the same thing at the same time.
	unlock, err := lock(ctx, filepath.Join(cache, "initramfs.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	goKey, goCPIO, err := goPart(ctx, src, cache, commandPackages(cfg.Commands), logf)
	if err != nil {
		return nil, err
	}
	setup, err := setupBinary(ctx, src, cache, logf)
	if err != nil {
		return nil, err
	}
	extra = append(extra, loaderFiles(ctx, cache, logf)...)
	if len(k.packs.load) > 0 {
		extra = append(extra, File{Dest: ModulesLoadPath, Data: []byte(strings.Join(k.packs.load, "\n") + "\n"), Mode: 0o644})
	}

	// The final key covers everything that ends up in the output.
	h := sha256.New()
	fmt.Fprintf(h, "minint-pe v2\ngo %s\ncompression %s\nkernel %x\nversion %s\n", goKey, comp.name, sha256.Sum256(k.image), k.version)
	for _, part := range [][]File{{setup}, k.moduleFiles, k.firmware, extra} {
		for _, f := range part {
			fmt.Fprintf(h, "file %s %o %x\n", f.Dest, f.Mode, sha256.Sum256(f.Data))
		}
	}
	id := hex.EncodeToString(h.Sum(nil))[:24]

	pe := &PE{KernelVersion: k.version, Modules: k.modules, ID: id, Compression: comp.name, MissingFirmware: k.missing, DriverPacks: k.packs.names}
	for _, f := range k.firmware {
		pe.Firmware = append(pe.Firmware, strings.TrimPrefix(f.Dest, "lib/firmware/"))
	}
	cached := filepath.Join(cache, "initramfs-"+id+comp.ext)
	sidecar := cached + ".json"
	if b, err := os.ReadFile(sidecar); err == nil && json.Unmarshal(b, &pe.Parts) == nil && fileExists(cached) {
		pe.Cached = true
		logf("initramfs: cached %s", filepath.Base(cached))
	} else {
		info, _ := json.MarshalIndent(struct {
			ID            string   `json:"id"`
			KernelVersion string   `json:"kernel_version"`
			Modules       []string `json:"modules"`
			Firmware      []string `json:"firmware"`
			DriverPacks   []string `json:"driver_packs,omitempty"`
		}{id, k.version, k.modules, pe.Firmware, k.packs.names}, "", "  ")
		extra = append(extra, File{Dest: pathInImage, Data: append(info, '\n'), Mode: 0o644})
		a := assembly{src: src, cache: cache, goKey: goKey, goCPIO: goCPIO, comp: comp,
			setup: setup, modules: k.moduleFiles, firmware: k.firmware, other: extra, logf: logf}
		if pe.Parts, err = a.write(ctx, cached, sidecar); err != nil {
			return nil, err
		}
	}

	touch(goCPIO, cached, sidecar)
	prune(cache, "go-*.cpio", 3)
	prune(cache, "go-*"+comp.ext, 3)
	prune(cache, "initramfs-*", 12)

	if err := pe.install(outDir, k.image, cached, comp.ext); err != nil {
		return nil, err
	}
	return pe, nil
}

// goPart returns the key of the Go part (peinit and the commands pkgs,
// built by u-root) and its cpio archive in the cache, built on a miss.
// It runs under the cache lock.
func goPart(ctx context.Context, src, cache string, pkgs []string, logf func(string, ...any)) (key, archive string, err error) {
	start := time.Now()
	key, err = goInputsKey(ctx, src, pkgs)
	if err != nil {
		return "", "", err
	}
	logf("initramfs: Go inputs hashed in %s (key %s)", time.Since(start).Round(time.Millisecond), key[:12])
	archive = filepath.Join(cache, "go-"+key+".cpio")
	if _, err := os.Stat(archive); err != nil {
		logf("initramfs: building peinit and %d rescue commands with u-root (takes a while)…", len(pkgs)-1)
		t := time.Now()
		if err := buildGo(ctx, src, cache, pkgs, archive); err != nil {
			return "", "", err
		}
		logf("initramfs: Go part built in %s", time.Since(t).Round(100*time.Millisecond))
	}
	return key, archive, nil
}

// kernel is the distribution's side of a PE: the kernel, the modules it
// needs for cfg (drivers and driver packs) and their firmware.
type kernel struct {
	image       []byte
	version     string
	modules     []string
	packs       *packed
	moduleFiles []File
	firmware    []File
	missing     []MissingFirmware // firmware that no package or driver pack provides
}

// kernelSide finds the kernel and gathers its side of the PE, before the
// slow Go build, so that a missing module or firmware fails at once.
func kernelSide(cfg Config) (*kernel, error) {
	kpath, err := findKernel("/", cfg.Kernel)
	if err != nil {
		return nil, err
	}
	k := &kernel{}
	if k.image, err = os.ReadFile(kpath); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoKernel, err)
	}
	if k.version, err = kernelVersionOf(kpath, k.image); err != nil {
		return nil, err
	}
	mdir := cfg.ModulesDir
	if mdir == "" {
		mdir = filepath.Join("/lib/modules", k.version)
	}
	db, err := kmod.Open(mdir)
	if err != nil {
		return nil, fmt.Errorf("%w for kernel %s in %s: install the matching package (apt-get install linux-image-%s) or pass --modules-dir: %v",
			ErrNoModules, k.version, mdir, k.version, errors.Unwrap(err))
	}
	if k.modules, k.packs, err = resolveModules(db, cfg, k.version, mdir); err != nil {
		return nil, err
	}
	modFiles, infos, err := moduleFiles(db, k.modules, k.packs.modules)
	if err != nil {
		return nil, err
	}
	k.moduleFiles = modFiles
	fwDir := cfg.FirmwareDir
	if fwDir == "" {
		fwDir = DefaultFirmwareDir
	}
	fwFiles, missing, err := firmwareFor(infos, k.modules, fwDir)
	if err != nil {
		return nil, err
	}
	k.firmware = overlay(fwFiles, k.packs.firmware)
	k.missing = dropProvided(missing, k.firmware)
	if len(k.missing) > 0 && cfg.RequireFirmware {
		return nil, missingError(k.missing, fwDir)
	}
	return k, nil
}

// assembly is what a PE's initramfs is made of: the Go part u-root built
// (goCPIO) and the files beside it, one segment each.
type assembly struct {
	src, cache, goKey, goCPIO string
	comp                      comp
	setup                     File
	modules, firmware, other  []File
	logf                      func(string, ...any)
}

// write compresses the segments into the cache, puts them together at
// cached and their size budget in sidecar (which marks the entry
// complete), and returns that budget.
func (a assembly) write(ctx context.Context, cached, sidecar string) ([]Part, error) {
	sort.SliceStable(a.other, func(i, j int) bool { return a.other[i].Dest < a.other[j].Dest })
	t := time.Now()
	goRecs, err := readGoPart(a.goCPIO)
	if err != nil {
		return nil, err
	}
	segs := []*segment{
		{name: PartTools, recs: goRecs},
		{name: PartSetup, files: []File{a.setup}},
		{name: PartModules, files: a.modules},
		{name: PartFirmware, files: a.firmware},
		{name: PartOther, files: a.other},
	}
	if err := writeSegments(a.cache, segs, a.comp, a.goKey); err != nil {
		return nil, err
	}
	if err := concat(segs, cached); err != nil {
		return nil, err
	}
	initRaw, err := peinitSize(ctx, a.src, a.cache, a.logf)
	if err != nil {
		a.logf("initramfs: warning: %v (the size budget does not split init from tools)", err)
	}
	parts := budget(segs, initRaw)
	b, _ := json.Marshal(parts)
	if err := writeFileAtomic(sidecar, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return nil, err
	}
	a.logf("initramfs: assembled and compressed (%s) in %s", a.comp.name, time.Since(t).Round(10*time.Millisecond))
	return parts, nil
}

// install writes the PE into outDir: the kernel, the initramfs from the
// cache (compressed, its name ending in ext) and pe.json, which describes
// them.
func (pe *PE) install(outDir string, kimage []byte, cached, ext string) error {
	pe.Kernel = filepath.Join(outDir, "vmlinuz")
	pe.Initramfs = filepath.Join(outDir, "initramfs.cpio"+ext)
	if err := writeFileAtomic(pe.Kernel, func(w io.Writer) error { _, err := w.Write(kimage); return err }); err != nil {
		return err
	}
	if err := copyFileAtomic(cached, pe.Initramfs); err != nil {
		return err
	}
	pe.KernelSize = int64(len(kimage))
	if st, err := os.Stat(pe.Initramfs); err == nil {
		pe.InitramfsSize = st.Size()
	}
	b, _ := json.MarshalIndent(pe, "", "  ")
	return writeFileAtomic(filepath.Join(outDir, "pe.json"), func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err })
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ModulesLoadPath lists, one per line, modules the PE loads on every boot
// whatever the hardware (driver packs' load:).
const ModulesLoadPath = "etc/minint/modules.load"

// packed is what the driver packs add.
type packed struct {
	names    []string
	modules  map[string]string // image path below lib/modules/<version>/ -> host path
	firmware []File
	load     []string
}

// resolveModules adds the driver packs to db and resolves the module list
// (cfg.Modules or DefaultModules, plus every pack module) with dependencies.
func resolveModules(db *kmod.DB, cfg Config, kver, mdir string) ([]string, *packed, error) {
	names := cfg.Modules
	if names == nil {
		names = DefaultModules
	}
	names = append([]string{}, names...)
	pk := &packed{modules: map[string]string{}}
	for _, dir := range cfg.DriverPacks {
		p, err := driverpack.Open(dir)
		if err != nil {
			return nil, nil, err
		}
		files, err := p.Install(db, driverpack.Options{RequireSigned: cfg.RequireSigned})
		if err != nil {
			return nil, nil, err
		}
		prefix := "lib/modules/" + kver + "/"
		for _, f := range files {
			if rel, ok := strings.CutPrefix(f.Dest, prefix); ok {
				pk.modules[rel] = f.Src
				continue
			}
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return nil, nil, fmt.Errorf("driver pack %s: %w", p.Name, err)
			}
			pk.firmware = append(pk.firmware, File{Dest: f.Dest, Data: b, Mode: 0o644})
		}
		pk.names = append(pk.names, p.Name)
		pk.load = append(pk.load, p.Load...)
		names = append(names, p.ModuleNames()...)
	}
	mods, err := db.Resolve(names...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (kernel %s, %s); check the name with modinfo or drop it from the module list", err, kver, mdir)
	}
	return mods, pk, nil
}

// overlay returns base with the files of top added, top winning where both
// have a path (a driver pack's firmware over the distribution's).
func overlay(base, top []File) []File {
	if len(top) == 0 {
		return base
	}
	in := map[string]bool{}
	for _, f := range top {
		in[f.Dest] = true
	}
	out := append([]File{}, top...)
	for _, f := range base {
		if !in[f.Dest] {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dest < out[j].Dest })
	return out
}

// dropProvided removes from missing what files (a driver pack) provide.
func dropProvided(missing []MissingFirmware, files []File) []MissingFirmware {
	have := map[string]bool{}
	for _, f := range files {
		have[strings.TrimPrefix(f.Dest, "lib/firmware/")] = true
	}
	var out []MissingFirmware
	for _, m := range missing {
		if !have[m.File] && !have[m.File+".xz"] {
			out = append(out, m)
		}
	}
	return out
}

// commandPackages lists the Go packages in the initramfs, peinit first.
func commandPackages(extra []string) []string {
	pkgs := []string{peinitPkg}
	for _, c := range RescueCommands {
		pkgs = append(pkgs, urootCore+c)
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p] = true
	}
	for _, p := range extra {
		if !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// moduleFiles returns the .ko files of mods and a module index restricted
// to them, at lib/modules/<version>/… as the PE's kmod.Open expects, and
// what each module says about itself (for its firmware). Modules of driver
// packs are read from the host paths in fromPacks.
func moduleFiles(db *kmod.DB, mods []string, fromPacks map[string]string) ([]File, map[string]*kmod.Info, error) {
	base := "lib/modules/" + filepath.Base(db.Dir)
	var fs []File
	infos := map[string]*kmod.Info{}
	for _, m := range mods {
		rel := db.Path(m)
		src := filepath.Join(db.Dir, rel)
		if p, ok := fromPacks[rel]; ok {
			src = p
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: module %s: %v", ErrNoModules, m, err)
		}
		info, err := kmod.ReadInfo(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: module %s (%s): %v", ErrNoModules, m, src, err)
		}
		infos[m] = info
		fs = append(fs, File{Dest: base + "/" + rel, Data: b, Mode: 0o644})
	}
	dep, alias, soft, builtin := db.Subset(mods)
	for _, f := range []struct{ name, data string }{
		{kmod.DepFile, dep}, {kmod.AliasFile, alias}, {kmod.SoftdepFile, soft}, {kmod.BuiltinFile, builtin},
	} {
		fs = append(fs, File{Dest: base + "/" + f.name, Data: []byte(f.data), Mode: 0o644})
	}
	return fs, infos, nil
}

func loadFiles(in []File) ([]File, error) {
	var out []File
	for _, f := range in {
		dest := strings.TrimLeft(filepath.Clean("/"+f.Dest), "/")
		if f.Dest == "" || dest == "" {
			return nil, fmt.Errorf("extra file %q: empty destination path", f.Src)
		}
		data := f.Data
		if f.Src != "" {
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return nil, fmt.Errorf("extra file for %s: %w", f.Dest, err)
			}
			data = b
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		out = append(out, File{Dest: dest, Data: data, Mode: mode})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Dest < out[j].Dest })
	return out, nil
}

// findSource locates the root of minint's module, which holds cmd/peinit.
func findSource(dir string) (string, error) {
	var tried []string
	try := func(d string) (string, bool) {
		if d == "" {
			return "", false
		}
		for d = filepath.Clean(d); ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil {
				tried = append(tried, d)
				if isMinintMod(b) {
					if _, err := os.Stat(filepath.Join(d, "cmd", "peinit")); err == nil {
						return d, true
					}
				}
				return "", false
			}
			if filepath.Dir(d) == d {
				return "", false
			}
		}
	}
	if dir != "" {
		if d, ok := try(dir); ok {
			return d, nil
		}
		return "", fmt.Errorf("%w: %s is not inside minint's source tree (no go.mod of %s with cmd/peinit)", ErrNoSource, dir, moduleLine[7:])
	}
	wd, _ := os.Getwd()
	for _, d := range []string{os.Getenv("MININT_SRC"), wd, buildTimeSource()} {
		if d, ok := try(d); ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked in $MININT_SRC, the working directory and the build-time tree %v): run minint from its checkout or set MININT_SRC", ErrNoSource, tried)
}

func isMinintMod(gomod []byte) bool {
	for _, l := range strings.Split(string(gomod), "\n") {
		if strings.TrimSpace(l) == moduleLine {
			return true
		}
	}
	return false
}

func cacheDir(dir, src string) (string, error) {
	if dir == "" {
		dir = os.Getenv("MININT_CACHE")
	}
	if dir == "" && src != "" {
		dir = filepath.Join(src, "out", "cache")
	}
	if dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory: %w", err)
		}
		dir = filepath.Join(d, "minint")
	}
	dir = filepath.Join(dir, "initramfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w (set MININT_CACHE to a writable directory)", err)
	}
	return dir, nil
}

// lock takes an exclusive flock on path, waiting for other holders; ctx
// cancels the wait.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cache lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func checkOutDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: no output directory given", ErrOutput)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	f, err := os.CreateTemp(dir, ".minint-probe-*")
	if err != nil {
		return fmt.Errorf("%w: output directory %s is not writable: %v", ErrOutput, dir, errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// writeFileAtomic writes path through internal/durable: a temporary file
// in the same directory, synced and renamed into place only when fill
// succeeds, so that neither a failed build nor a crash leaves a truncated
// output or cache entry under its name.
func writeFileAtomic(path string, fill func(io.Writer) error) error {
	f, err := durable.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	defer f.Close()
	if err := fill(f); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrOutput, path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}

func copyFileAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFileAtomic(dst, func(w io.Writer) error { _, err := io.Copy(w, in); return err })
}

// touch marks cache entries as used, for prune.
func touch(paths ...string) {
	now := time.Now()
	for _, p := range paths {
		os.Chtimes(p, now, now)
	}
}

// prune removes all but the keep most recently used cache files matching
// pattern, so that the cache does not grow with every source change. It
// runs under the cache lock.
func prune(dir, pattern string, keep int) {
	ms, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(ms) <= keep {
		return
	}
	type ent struct {
		path string
		t    time.Time
	}
	var es []ent
	for _, m := range ms {
		if st, err := os.Stat(m); err == nil {
			es = append(es, ent{m, st.ModTime()})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].t.After(es[j].t) })
	for _, e := range es[min(keep, len(es)):] {
		os.Remove(e.path)
	}
}
