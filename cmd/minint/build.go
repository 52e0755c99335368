package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/progress"
	"github.com/spf13/cobra"
)

func init() { register(newBuildCmd) }

func newBuildCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build the PE: kernel + initramfs with peinit, rescue tools and modules",
		Args:  noArgs,
	}
	fs := c.Flags()
	out := fs.StringP("output", "o", "out/pe", "output `DIR` for vmlinuz, initramfs.cpio.* and pe.json")
	kernel := fs.String("kernel", "", "kernel `FILE` (default: newest /boot/vmlinuz-*)")
	modDir := fs.String("modules-dir", "", "kernel modules `DIR` (default: /lib/modules/<kernel version>)")
	mods := fs.StringSlice("modules", nil, "kernel `MODULES` to include, comma-separated (default: the built-in list; see --list-modules)")
	addMods := fs.StringSlice("add-modules", nil, "kernel `MODULES` to include in addition to the default list")
	cmds := fs.StringSlice("commands", nil, "extra Go command `PACKAGES` to include")
	files := fs.StringArray("file", nil, "extra file `SRC:DEST` to put into the initramfs (repeatable)")
	key := fs.String("key", "", "package signing public key `FILE.pub` (minint keygen) the PE accepts packages and network sequences from")
	comp := choiceFlag(c, "compress", "zstd", "initramfs `COMPRESSION`: zstd, gzip, xz or none", "zstd", "gzip", "xz", "none")
	renamed(c, "compression", "compress")
	cache := fs.String("cache", "", "cache `DIR` (default: $MININT_CACHE, else out/cache in the source tree)")
	listMods := fs.Bool("list-modules", false, "print the default module list and exit")
	packs := fs.StringArray("driver-pack", nil, "driver pack `DIR` (modules/*.ko, firmware/, pack.yaml) to add (repeatable)")
	fwDir := fs.String("firmware-dir", "", "firmware `DIR` the modules' firmware is taken from (default /lib/firmware)")
	reqFW := fs.Bool("require-firmware", false, "fail when firmware a module may request is missing (default: report it)")
	reqSigned := fs.Bool("require-signed-modules", false, "refuse driver pack modules without a signature (Secure Boot lockdown loads only signed ones)")
	outFlags := addOutputFlags(c, "events", "print only errors")
	c.RunE = func(*cobra.Command, []string) error {
		r, err := outFlags.open()
		if err != nil {
			return err
		}
		defer r.Close()
		if *listMods {
			fmt.Fprintln(r.Out, strings.Join(initramfs.DefaultModules, "\n"))
			return nil
		}
		if fs.Changed("modules") && len(*addMods) > 0 {
			return usageErrorf("--modules and --add-modules exclude each other")
		}
		cfg := initramfs.Config{
			Kernel: *kernel, ModulesDir: *modDir, Commands: *cmds,
			Compression: *comp, CacheDir: *cache,
			DriverPacks: *packs, FirmwareDir: *fwDir, RequireFirmware: *reqFW, RequireSigned: *reqSigned,
		}
		if fs.Changed("modules") {
			cfg.Modules = *mods
			if cfg.Modules == nil {
				cfg.Modules = []string{}
			}
		} else if len(*addMods) > 0 {
			cfg.Modules = append(append([]string{}, initramfs.DefaultModules...), *addMods...)
		}
		for _, f := range *files {
			src, dest, ok := strings.Cut(f, ":")
			if !ok || src == "" || dest == "" {
				return usageErrorf("--file %q: want SRC:DEST", f)
			}
			cfg.Files = append(cfg.Files, initramfs.File{Src: src, Dest: dest})
		}
		keyID := ""
		if *key != "" {
			f, id, err := peKeyFile(*key)
			if err != nil {
				return err
			}
			cfg.Files, keyID = append(cfg.Files, f), id
		}
		cfg.Log = func(format string, a ...any) { r.Printf(format, a...) }

		ctx, stop := signalContext()
		defer stop()
		start := time.Now()
		r.Emit(progress.Event{Kind: "step", Op: "build", State: "start"})
		pe, err := initramfs.Build(ctx, cfg, *out)
		if err != nil {
			r.Emit(progress.Event{Kind: "step", Op: "build", State: "failed", Error: err.Error()})
			return err
		}
		secs := time.Since(start).Seconds()
		r.Printf("kernel     %s (%s, %.1f MiB)", pe.Kernel, pe.KernelVersion, float64(pe.KernelSize)/(1<<20))
		r.Printf("initramfs  %s (%s, %.1f MiB, %s, %s)", pe.Initramfs, pe.Compression, float64(pe.InitramfsSize)/(1<<20),
			plural.Count(len(pe.Modules), "module"), plural.Count(len(pe.Firmware), "firmware file"))
		r.Printf("%s", initramfs.FormatBudget(pe.Parts, pe.Compression))
		if n := len(pe.MissingFirmware); n > 0 {
			r.Printf("firmware   %s the modules may request not on this host (chip revisions the PE then cannot drive): %s",
				plural.Count(n, "file"), missingSummary(pe.MissingFirmware))
		}
		for _, p := range pe.DriverPacks {
			r.Printf("driver pack %s", p)
		}
		if keyID != "" {
			r.Printf("package key %s", keyID)
		} else {
			r.Printf("no package key (--key): this PE will refuse every package")
		}
		r.Printf("PE %s built in %.1f s", pe.ID, secs)
		r.Emit(progress.Event{Kind: "step", Op: "build", State: "done", Data: map[string]any{
			"id": pe.ID, "kernel": pe.Kernel, "kernel_version": pe.KernelVersion, "kernel_size": pe.KernelSize,
			"initramfs": pe.Initramfs, "initramfs_size": pe.InitramfsSize, "modules": pe.Modules,
			"parts": pe.Parts, "firmware": pe.Firmware, "missing_firmware": pe.MissingFirmware, "driver_packs": pe.DriverPacks,
			"cached": pe.Cached, "seconds": secs,
		}})
		return nil
	}
	return c
}

// missingSummary names missing firmware by module, briefly.
func missingSummary(ms []initramfs.MissingFirmware) string {
	var mods []string
	n := map[string]int{}
	for _, m := range ms {
		if n[m.Module] == 0 {
			mods = append(mods, m.Module)
		}
		n[m.Module]++
	}
	var parts []string
	for _, m := range mods {
		parts = append(parts, fmt.Sprintf("%s (%d)", m, n[m]))
	}
	return strings.Join(parts, ", ") + "; pe.json lists them"
}
