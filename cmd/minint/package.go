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
	"strconv"
	"strings"
	"time"

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
		Short: "Make an ed25519 key pair for signing image packages, sequences or user state",
		Long: "Make an ed25519 key pair for signing image packages and sequences, or user-state stores (a separate state key): writes PREFIX.pub and PREFIX.key " +
			"(minisign's format, the secret key not encrypted: keep it private), creating PREFIX's folder if needed. " +
			"The real minisign tool can sign and verify with them.",
	}
	fs := c.Flags()
	force := fs.Bool("force", false, "overwrite existing key files")
	c.RunE = func(_ *cobra.Command, args []string) error {
		pubF, privF, err := sign.GenerateKey()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(fs.Arg(0)), 0o755); err != nil {
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
		Use: "create --key KEY [--image FILE --index N] [--name N] [--version V] [--expires WHEN] [--chunk-size SIZE] [--chunk-hash blake3|sha256] DIR [FILE…]",
		Long: "Hash a package's files into DIR/manifest.json and sign it (DIR/manifest.json.sig). The signature binds " +
			"the package's name, version, creation time and expiry: a PE refuses it once expired, and, when its fetch step " +
			"says package: or min-version:, a package of another name or an older version.",
		Args:  argCount(1, -1),
		Short: "Hash a package's files into manifest.json and sign it",
	}
	fs := c.Flags()
	key := fs.String("key", "", "private key `FILE` (from minint keygen)")
	image := fs.String("image", "", "the WIM `FILE` (relative to DIR) the PE applies; default the only .wim")
	index := fs.Int("index", 1, "image `INDEX` within it")
	name := fs.String("name", "", "package `NAME` (no spaces)")
	version := fs.String("version", "", "package `VERSION`, dot-separated numbers (12.4, 2026.11.28); a fetch step's min-version: compares with it")
	expires := fs.String("expires", "", "refuse the package after `WHEN`: a duration from now (90d, 720h) or a time (2027-05-28 or RFC 3339)")
	chunk := 4 * bytesize.MiB
	fs.Var(&chunk, "chunk-size", "per-chunk hash `SIZE` for applying straight from HTTP (0: none)")
	chunkHash := fs.String("chunk-hash", manifest.ChunkBLAKE3, "`HASH` of the chunks: "+manifest.ChunkBLAKE3+", or "+manifest.ChunkSHA256+" where only FIPS hashes are accepted or for PEs older than this option (on a CPU with AVX2, SHA-256 costs the PE 3.5 to 8 times the CPU)")
	checksums := fs.Bool("wim-checksums", true, "decode the image, check its SHA-1s and record each file's XXH64, which the PE checks instead of the SHA-1s (a PE older than this option refuses such a manifest)")
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
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), manifest.FileName) && e.Name() != manifest.ShortSignatureName && !strings.HasSuffix(e.Name(), ".part") {
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
		expiresIn, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return err
		}
		if *version != "" {
			if _, err := sign.CompareVersions(*version, *version); err != nil {
				return usageErrorf("--version: %v", err)
			}
		}
		cs := int64(-1)
		if chunk != 0 {
			if chunk < 4*bytesize.KiB {
				return usageErrorf("--chunk-size %s is too small: at least %s, or 0 for none", chunk.Explain(), (4 * bytesize.KiB).Explain())
			}
			if chunk > manifest.MaxChunkSize {
				return usageErrorf("--chunk-size %s is too large: at most %s, which a PE holds in memory to check a chunk", chunk.Explain(), bytesize.Size(manifest.MaxChunkSize).Explain())
			}
			cs = int64(chunk)
		}
		if !manifest.KnownChunkHash(*chunkHash) {
			return usageErrorf("--chunk-hash %q: want %s or %s", *chunkHash, manifest.ChunkBLAKE3, manifest.ChunkSHA256)
		}
		rep, err := outFlags.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		task := rep.Start("hash", 0, "bytes")
		m, mb, err := manifest.Build(dir, files, manifest.BuildOptions{Name: *name, Version: *version, ExpiresIn: expiresIn, Image: &manifest.Image{File: *image, Index: *index}, ChunkSize: cs, ChunkHash: *chunkHash, WIMChecksums: *checksums, Progress: task.Callback()})
		task.Finish(err)
		if err != nil {
			return err
		}
		sig, err := sign.Sign(mb, priv, m.SignContext())
		if err != nil {
			return err
		}
		mp := filepath.Join(dir, manifest.FileName)
		if err := os.WriteFile(mp, mb, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(sign.SignatureFor(mp), sig, 0o644); err != nil {
			return err
		}
		// A signature under the old name would be of an older manifest.
		if err := os.Remove(filepath.Join(dir, manifest.ShortSignatureName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		chunks := "no chunk hashes"
		if e, ok := m.File(*image); ok && e.ChunkSize > 0 {
			chunks = fmt.Sprintf("%s chunks hashed with %s", bytesize.Size(e.ChunkSize), e.ChunkHashName())
		}
		fmt.Fprintf(rep.Out, "wrote %s and %s: %s, image %s index %d (%s), %s, signed by key %s\n", mp, sign.SignatureFor(mp), plural.Count(len(m.Files), "file"), *image, *index, chunks, describe(m.SignContext()), sign.KeyID(priv.Public().(ed25519.PublicKey)))
		return nil
	}
	return c
}

func newPackageVerifyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify --key FILE.pub [--package NAME] [--min-version V] DIR",
		Args:  argCount(1, 1),
		Short: "Check a package's signature, every file's size, SHA-256 and chunk hashes, and the image's checksum table",
	}
	fs := c.Flags()
	pubPath := fs.String("key", "", "public key `FILE.pub` (from minint keygen)")
	renamed(c, "pub", "key")
	pkgName := fs.String("package", "", "require this package `NAME` (as a fetch step's package:)")
	minVersion := fs.String("min-version", "", "refuse a package version below `V` (as a fetch step's min-version:)")
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
		mb, sig, sigPath, err := manifest.ReadDir(dir)
		if err != nil {
			return err
		}
		rep, err := outFlags.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		if filepath.Base(sigPath) == manifest.ShortSignatureName {
			rep.Printf("warning: %s: signature under its old name %s; name it %s (the PE reads the old name until the next release)", dir, manifest.ShortSignatureName, manifest.SignatureName)
		}
		m, err := manifest.Verify(mb, sig, pub, manifest.VerifyOptions{Name: *pkgName, MinVersion: *minVersion})
		if err != nil {
			return err
		}
		if m.Signature.Legacy {
			rep.Printf("warning: %s: signature in minint's old format (no purpose, version or expiry): run minint package create again (the PE reads it until the next release)", dir)
		}
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
				err = manifest.VerifyChunks(context.Background(), p, e, nil)
			}
			task.Finish(err)
			if err == nil && e.WIMChecksums != nil {
				// What the PE checks the decompressed data against.
				task := rep.Start("decode "+e.Path, 0, "bytes")
				err = manifest.VerifyWIMChecksums(p, e, task.Callback())
				task.Finish(err)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		fmt.Fprintf(rep.Out, "%s: signature by key %s good (%s), %s verified\n", dir, sign.KeyID(pub), describe(m.SignContext()), plural.Count(len(m.Files), "file"))
		return nil
	}
	return c
}

func newPackageSignCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sign --key KEY [--version V] [--expires WHEN] SEQUENCE.yaml…",
		Args:  argCount(1, -1),
		Short: "Sign a task sequence for minint.sequence=URL (seq.yaml -> seq.yaml.sig)",
		Long: "Sign task sequences served over HTTP: writes FILE.sig beside each FILE. The signature is made for the " +
			"purpose \"sequence\" and binds the file's name, the creation time, and --version and --expires when given: " +
			"the PE refuses it under another name, as a package's signature, once expired, and below " +
			"minint.sequence-min-version= on its kernel command line.",
	}
	fs := c.Flags()
	key := fs.String("key", "", "private key `FILE` (from minint keygen)")
	version := fs.String("version", "", "sequence `VERSION`, dot-separated numbers, for minint.sequence-min-version=")
	expires := fs.String("expires", "", "refuse the sequence after `WHEN`: a duration from now (90d, 720h) or a time (2027-05-28 or RFC 3339)")
	c.RunE = func(_ *cobra.Command, args []string) error {
		priv, err := readPrivate(*key)
		if err != nil {
			return err
		}
		now := time.Now().UTC().Truncate(time.Second)
		expiresIn, err := parseExpiry(*expires, now)
		if err != nil {
			return err
		}
		for _, f := range fs.Args() {
			if strings.HasSuffix(f, ".sig") {
				return usageErrorf("%s is a signature already", f)
			}
			if !strings.HasSuffix(f, ".yaml") && !strings.HasSuffix(f, ".yml") {
				return usageErrorf("%s: package sign signs task sequences (.yaml); package create signs a package's manifest", f)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			// Sign only what the PE will accept.
			if _, err := sequence.Parse(f, b); err != nil {
				return err
			}
			ctx := sign.Context{Purpose: sign.PurposeSequence, Name: filepath.Base(f), Version: *version, Created: now}
			if expiresIn > 0 {
				ctx.Expires = now.Add(expiresIn)
			}
			sig, err := sign.Sign(b, priv, ctx)
			if err != nil {
				return usageErrorf("%s: %v", f, err)
			}
			if err := os.WriteFile(sign.SignatureFor(f), sig, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s (%s)\n", sign.SignatureFor(f), describe(ctx))
		}
		return nil
	}
	return c
}

// parseExpiry reads --expires: "" (never), a number of days ("90d"), a Go
// duration ("720h"), or a time ("2027-05-28", RFC 3339), and returns how
// long after now it is.
func parseExpiry(s string, now time.Time) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, usageErrorf("--expires %q: want a number of days (90d), a duration (720h) or a time (2027-05-28)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else if x, err := time.ParseDuration(s); err == nil {
		d = x
	} else if t, err := time.Parse(time.DateOnly, s); err == nil {
		d = t.Sub(now)
	} else if t, err := time.Parse(time.RFC3339, s); err == nil {
		d = t.Sub(now)
	} else {
		return 0, usageErrorf("--expires %q: want a number of days (90d), a duration (720h) or a time (2027-05-28)", s)
	}
	if d < time.Second {
		return 0, usageErrorf("--expires %q is not in the future", s)
	}
	return d, nil
}

// describe says what a signature binds, for messages: its trusted
// comment's fields.
func describe(c sign.Context) string {
	return strings.TrimPrefix(c.String(), "minint ")
}
