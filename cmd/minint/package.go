package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
	"github.com/spf13/cobra"
)

func init() {
	register(newKeygenCmd)
	register(func() *cobra.Command {
		return group(&cobra.Command{
			Use:   "package",
			Short: "Create, sign and verify image packages (manifest.json + signature)",
		},
			newPackageCreateCmd(),
			newPackageVerifyCmd(),
			newPackageSignCmd(),
		)
	})
}

func newKeygenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "keygen [--force] PREFIX",
		Args:  argCount(1, 1),
		Short: "Make an ed25519 key pair for signing image packages and sequences",
		Long:  "Make an ed25519 key pair for signing image packages and sequences: writes PREFIX.pub and PREFIX.key.",
	}
	fs := c.Flags()
	force := fs.Bool("force", false, "overwrite existing key files")
	c.RunE = func(_ *cobra.Command, args []string) error {
		pubF, privF, err := sign.GenerateKey()
		if err != nil {
			return err
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if *force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		for _, f := range []struct {
			name string
			data []byte
			mode os.FileMode
		}{{fs.Arg(0) + ".key", privF, 0o600}, {fs.Arg(0) + ".pub", pubF, 0o644}} {
			fh, err := os.OpenFile(f.name, flags, f.mode)
			if err != nil {
				return err
			}
			_, err = fh.Write(f.data)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		pub, _ := sign.ParsePublicKey(pubF)
		fmt.Fprintf(c.OutOrStdout(), "wrote %s.key (secret) and %s.pub, key id %s\n", fs.Arg(0), fs.Arg(0), sign.KeyID(pub))
		return nil
	}
	return c
}

func readPrivate(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, usageErrorf("--key KEY is required (make one with minint keygen)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := sign.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func newPackageCreateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "create --key KEY [--image FILE --index N] [--name N] [--chunk-size SIZE] DIR [FILE…]",
		Args:  argCount(1, -1),
		Short: "Hash a package's files into manifest.json and sign it",
	}
	fs := c.Flags()
	key := fs.String("key", "", "private key `FILE` (from minint keygen)")
	image := fs.String("image", "", "the WIM `FILE` (relative to DIR) the PE applies; default the only .wim")
	index := fs.Int("index", 1, "image `INDEX` within it")
	name := fs.String("name", "", "package `NAME`")
	chunk := 4 * bytesize.MiB
	fs.Var(&chunk, "chunk-size", "per-chunk hash `SIZE` for applying straight from HTTP (0: none)")
	outFlags := addOutputFlags(c, "progress", "show no progress")
	c.RunE = func(_ *cobra.Command, args []string) error {
		priv, err := readPrivate(*key)
		if err != nil {
			return err
		}
		dir := fs.Arg(0)
		files := fs.Args()[1:]
		if len(files) == 0 {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			for _, e := range ents {
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), manifest.FileName) && !strings.HasSuffix(e.Name(), ".part") {
					files = append(files, e.Name())
				}
			}
			sort.Strings(files)
		}
		if len(files) == 0 {
			return fmt.Errorf("%s: no files to package", dir)
		}
		for i, f := range files {
			files[i] = filepath.ToSlash(filepath.Clean(f))
		}
		if *image == "" {
			for _, f := range files {
				if strings.HasSuffix(strings.ToLower(f), ".wim") {
					if *image != "" {
						return usageErrorf("several .wim files: say which one with --image")
					}
					*image = f
				}
			}
			if *image == "" {
				return usageErrorf("no .wim among the files: name the image with --image")
			}
		}
		cs := int64(-1)
		if chunk != 0 {
			if chunk < 4*bytesize.KiB {
				return usageErrorf("--chunk-size %s is too small: at least %s, or 0 for none", chunk.Explain(), (4 * bytesize.KiB).Explain())
			}
			cs = int64(chunk)
		}
		rep, err := outFlags.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		task := rep.Start("hash", 0, "bytes")
		m, mb, err := manifest.Build(dir, files, manifest.BuildOptions{Name: *name, Image: &manifest.Image{File: *image, Index: *index}, ChunkSize: cs, Progress: task.Callback()})
		task.Finish(err)
		if err != nil {
			return err
		}
		mp := filepath.Join(dir, manifest.FileName)
		if err := os.WriteFile(mp, mb, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(sign.SignatureFor(mp), sign.Sign(mb, priv), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(rep.Out, "wrote %s and %s: %s, image %s index %d, signed by key %s\n", mp, sign.SignatureFor(mp), plural.Count(len(m.Files), "file"), *image, *index, sign.KeyID(priv.Public().(ed25519.PublicKey)))
		return nil
	}
	return c
}

// verifyChunks checks every chunk of the file at p against e's chunk hashes.
func verifyChunks(p string, e *manifest.Entry) error {
	c, err := manifest.OpenChunks(p, e, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Complete(context.Background(), nil)
}

func newPackageVerifyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify --key FILE.pub DIR",
		Args:  argCount(1, 1),
		Short: "Check a package's signature and every file's size, SHA-256 and chunk hashes",
	}
	fs := c.Flags()
	pubPath := fs.String("key", "", "public key `FILE.pub` (from minint keygen)")
	renamed(c, "pub", "key")
	outFlags := addOutputFlags(c, "progress", "show no progress")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *pubPath == "" {
			return usageErrorf("--key FILE.pub is required")
		}
		b, err := os.ReadFile(*pubPath)
		if err != nil {
			return err
		}
		pub, err := sign.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", *pubPath, err)
		}
		dir := fs.Arg(0)
		mb, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
		if err != nil {
			return err
		}
		sig, err := os.ReadFile(filepath.Join(dir, manifest.SignatureName))
		if err != nil {
			return err
		}
		m, err := manifest.Verify(mb, sig, pub)
		if err != nil {
			return err
		}
		rep, err := outFlags.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		var errs []error
		for i := range m.Files {
			e := &m.Files[i]
			p := filepath.Join(dir, filepath.FromSlash(e.Path))
			task := rep.Start("verify "+e.Path, e.Size, "bytes")
			err := manifest.VerifyFile(p, e, task.Callback())
			if err == nil && len(e.Chunks) > 0 {
				// The PE checks a file with chunk hashes by its chunks
				// alone (manifest.ChunkReader): they must agree with the
				// whole-file hash checked here.
				err = verifyChunks(p, e)
			}
			task.Finish(err)
			if err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		fmt.Fprintf(rep.Out, "%s: signature by key %s good, %s verified\n", dir, sign.KeyID(pub), plural.Count(len(m.Files), "file"))
		return nil
	}
	return c
}

func newPackageSignCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sign --key KEY FILE…",
		Args:  argCount(1, -1),
		Short: "Write a detached signature (seq.yaml -> seq.sig), e.g. for a sequence served over HTTP",
	}
	fs := c.Flags()
	key := fs.String("key", "", "private key `FILE` (from minint keygen)")
	c.RunE = func(_ *cobra.Command, args []string) error {
		priv, err := readPrivate(*key)
		if err != nil {
			return err
		}
		for _, f := range fs.Args() {
			if strings.HasSuffix(f, ".sig") {
				return usageErrorf("%s is a signature already", f)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if strings.HasSuffix(f, ".yaml") || strings.HasSuffix(f, ".yml") {
				// Sign only what the PE will accept.
				if _, err := sequence.Parse(f, b); err != nil {
					return err
				}
			}
			if err := os.WriteFile(sign.SignatureFor(f), sign.Sign(b, priv), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s\n", sign.SignatureFor(f))
		}
		return nil
	}
	return c
}
