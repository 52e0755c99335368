package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/media"
	"github.com/minint/minint/sequence"
	"github.com/spf13/cobra"
)

func init() { register(newISOCmd) }

func newISOCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "iso [-o FILE] [flags]",
		Short: "Build the hybrid boot ISO (BIOS + UEFI, CD or USB stick); customize or show a built one",
		Args:  noArgs,
		// minint iso builds; minint iso customize|show work on a built ISO.
		Annotations: map[string]string{"runs": "1"},
	}
	fs := c.Flags()
	out := fs.StringP("output", "o", "out/minint.iso", "ISO `FILE` to write")
	label := fs.String("label", "MININT", "ISO volume `LABEL` (A-Z, 0-9, _; at most 32)")
	cmdline := fs.String("cmdline", "", "extra kernel `ARGS`, appended to minint's own")
	done := choiceFlag(c, "done", "poweroff", "`ACTION` when the PE is finished: poweroff, reboot or shell", "poweroff", "reboot", "shell")
	verbose := fs.Bool("verbose-kernel", false, "show the kernel's messages on the console (no 'quiet')")
	src := addPEFlags(c)
	seqFile := fs.String("sequence", "", "task sequence `FILE`, stored as /minint/sequence.yaml")
	captureURL := fs.String("capture", "", "make a capture PE: its sequence captures the installed system (generalized) and uploads it to `URL` (WebDAV PUT, e.g. http://10.0.2.2:8080/images/ref.wim)")
	captureComp := choiceFlag(c, "capture-compress", "lzx", "`COMPRESSION` of the captured WIM: none, xpress or lzx", "none", "xpress", "lzx")
	renamed(c, "capture-compression", "capture-compress")
	adds := fs.StringArray("add", nil, "extra file `SRC:DEST`, stored as /minint/DEST (repeatable)")
	pkgs := fs.StringArray("package", nil, packageUsage)
	sbKey := fs.String("secure-boot-key", "", "sign a unified kernel image with this RSA private key `FILE` (PEM) for firmware whose Secure Boot db holds --secure-boot-cert; default: boot UEFI through Microsoft-signed shim and Debian-signed GRUB")
	sbCert := fs.String("secure-boot-cert", "", "the certificate `FILE` (PEM) of --secure-boot-key")
	outFlags := addOutputFlags(c, "events", "print only errors")
	c.AddCommand(newISOCustomizeCmd(), newISOShowCmd())
	c.RunE = func(*cobra.Command, []string) error {
		if err := src.check(); err != nil {
			return err
		}
		if (*sbKey == "") != (*sbCert == "") {
			return usageErrorf("--secure-boot-key and --secure-boot-cert go together")
		}
		if err := media.CheckLabel(*label); err != nil {
			return usageErrorf("--label: %v", err)
		}
		opts := media.Options{Label: *label, Cmdline: *cmdline, Done: *done, Verbose: *verbose,
			SecureBootKey: *sbKey, SecureBootCert: *sbCert}
		if *captureURL != "" {
			if *seqFile != "" {
				return usageErrorf("--capture brings its own sequence: give --capture or --sequence, not both")
			}
			seq, err := sequence.Capture(*captureURL, *captureComp)
			if err != nil {
				return usageErrorf("--capture: %v", err)
			}
			f, err := os.CreateTemp("", "minint-capture-*.yaml")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			if _, err := f.Write(seq); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			*seqFile = f.Name()
		} else if fs.Changed("capture-compress") {
			return usageErrorf("--capture-compress needs --capture")
		}
		if *seqFile != "" {
			// The PE would refuse it at boot: refuse it now, before
			// anything is built, with what `sequence check` says.
			if _, err := sequence.LoadFile(*seqFile); err != nil {
				return fmt.Errorf("--sequence: %w", err)
			}
			opts.ExtraFiles = append(opts.ExtraFiles, media.File{Src: *seqFile, Dest: "sequence.yaml"})
		}
		files, err := addFiles(*adds)
		if err != nil {
			return err
		}
		opts.ExtraFiles = append(opts.ExtraFiles, files...)
		r, ctx, end, err := outFlags.start()
		if err != nil {
			return err
		}
		defer end()

		pe, err := src.get(ctx, r)
		if err != nil {
			return err
		}
		opts.Kernel, opts.Initramfs = pe.Kernel, pe.Initramfs
		pkgFiles, err := verifiedPackages(r, *pkgs, pe.Initramfs, false)
		if err != nil {
			return err
		}
		opts.ExtraFiles = append(opts.ExtraFiles, pkgFiles...)
		opts.Info = map[string]any{"pe_id": pe.ID, "kernel_version": pe.KernelVersion}
		opts.Log = func(f string, a ...any) { r.Printf(f, a...) }
		t := r.Start("iso", 0, "bytes")
		opts.Progress = t.Callback()
		res, err := media.BuildISO(ctx, opts, *out)
		t.Finish(err)
		if err != nil {
			return err
		}
		r.Printf("kernel     %s (%.1f MiB)", opts.Kernel, float64(isoFileSize(opts.Kernel))/(1<<20))
		r.Printf("initramfs  %s (%.1f MiB)", opts.Initramfs, float64(isoFileSize(opts.Initramfs))/(1<<20))
		r.Printf("ESP image  %.1f MiB (UEFI boot chain: %s)", float64(res.ESPSize)/(1<<20), chainText(res.Chain))
		r.Printf("ISO        %s (%.1f MiB), media id %s, label %s", res.Path, float64(res.Size)/(1<<20), res.MediaID, res.Label)
		r.Printf("cmdline    %s", res.Cmdline)
		r.Emit(progress.Event{Kind: "iso", State: "done", Data: map[string]any{
			"path": res.Path, "size": res.Size, "media_id": res.MediaID, "label": res.Label,
			"cmdline": res.Cmdline, "esp_size": res.ESPSize, "uefi_chain": res.Chain, "pe_id": pe.ID}})
		return nil
	}
	return c
}

func isoFileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func chainText(chain string) string {
	if chain == media.ChainUKI {
		return "unified kernel image signed with --secure-boot-key"
	}
	return "shim (Microsoft-signed) -> GRUB -> kernel (Debian-signed)"
}

// peFlags choose the PE a medium carries: one built before (--pe-dir) or
// one built now (--kernel, --modules, --key, --build-dir).
type peFlags struct {
	c                    *cobra.Command
	peDir, kernel, build *string
	key                  *string
	mods                 *[]string
}

func addPEFlags(c *cobra.Command) *peFlags {
	fs := c.Flags()
	return &peFlags{c: c,
		peDir:  fs.String("pe-dir", "", "use the PE already built in `DIR` (by 'minint build -o DIR') instead of building it"),
		kernel: fs.String("kernel", "", "kernel `FILE` for the PE build (default: newest /boot/vmlinuz-*)"),
		mods:   fs.StringSlice("modules", nil, "kernel `MODULES` for the PE build, comma-separated (default: the built-in list)"),
		build:  fs.String("build-dir", "out/pe", "`DIR` where the PE is built when --pe-dir is not given"),
		key:    fs.String("key", "", "package signing public key `FILE.pub` built into the PE (see minint build --key)"),
	}
}

func (f *peFlags) check() error {
	fs := f.c.Flags()
	if *f.peDir != "" && (fs.Changed("kernel") || fs.Changed("modules") || fs.Changed("key")) {
		return usageErrorf("--pe-dir uses an existing PE: --kernel, --modules and --key only apply when building one")
	}
	return nil
}

// get reads the PE from --pe-dir or builds it.
func (f *peFlags) get(ctx context.Context, r *output) (initramfs.PE, error) {
	var pe initramfs.PE
	if *f.peDir != "" {
		b, err := os.ReadFile(filepath.Join(*f.peDir, "pe.json"))
		if err != nil {
			return pe, fmt.Errorf("--pe-dir %s: %w (build one with 'minint build -o %s')", *f.peDir, err, *f.peDir)
		}
		if err := json.Unmarshal(b, &pe); err != nil {
			return pe, fmt.Errorf("--pe-dir %s: pe.json: %w", *f.peDir, err)
		}
		// pe.json may hold paths relative to where it was built.
		for _, p := range []*string{&pe.Kernel, &pe.Initramfs} {
			if _, err := os.Stat(*p); err != nil {
				*p = filepath.Join(*f.peDir, filepath.Base(*p))
			}
		}
		return pe, nil
	}
	r.Emit(progress.Event{Kind: "step", Op: "build", State: "start"})
	cfg := initramfs.Config{Kernel: *f.kernel, Log: func(format string, a ...any) { r.Printf(format, a...) }}
	if *f.key != "" {
		file, id, err := peKeyFile(*f.key)
		if err != nil {
			return pe, err
		}
		cfg.Files = append(cfg.Files, file)
		r.Printf("package key %s", id)
	}
	if f.c.Flags().Changed("modules") {
		cfg.Modules = append([]string{}, *f.mods...)
	}
	p, err := initramfs.Build(ctx, cfg, *f.build)
	if err != nil {
		r.Emit(progress.Event{Kind: "step", Op: "build", State: "failed", Error: err.Error()})
		return pe, err
	}
	r.Emit(progress.Event{Kind: "step", Op: "build", State: "done", Data: map[string]any{"id": p.ID}})
	return *p, nil
}

// verifiedPackages checks --package directories against the PE's key: a
// package the PE would refuse is refused now.
func verifiedPackages(r *output, pkgs []string, initrd string, served bool) ([]media.File, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	pub, err := media.PEKey(initrd)
	if err != nil {
		return nil, err
	}
	var out []media.File
	for _, p := range packageFlags(pkgs) {
		files, err := media.PackageFiles(p, pub, served)
		if err != nil {
			return nil, err
		}
		r.Printf("package %s: signature and files verified with the PE's key", p.Dir)
		out = append(out, files...)
	}
	return out, nil
}
