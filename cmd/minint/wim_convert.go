package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/minint/minint/wim"
)

func init() {
	wimVerbs = append(wimVerbs, func() *cobra.Command { return wimCaptureCmd("append", wim.Append) }, wimExportCmd, wimSplitCmd)
}

func wimExportCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "export SRC INDEX|NAME DEST [DEST_NAME [DEST_DESCRIPTION]] [flags]",
		Short: "Copy an image into another WIM (created if missing)",
		Long: "Copy an image into another WIM (created if missing)\n\n" +
			"DEST_NAME (default: the image's name) must not be used by another image of DEST.",
	}
	fs := c.Flags()
	name := fs.String("name", "", "new image `NAME` (or the fourth argument; default: the source image's)")
	desc := fs.String("description", "", "new image `DESCRIPTION` (or the fifth argument)")
	compress := fs.String("compress", "", "`COMPRESSION` of a new DEST: none, xpress or lzx (default: SRC's)")
	check := fs.Bool("check", false, "write an integrity table")
	events := addOutputFlags(c, "progress", "show no progress")
	c.Args = argCount(3, 5)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		if err := nameArgs(fs, rest[3:], name, desc); err != nil {
			return err
		}
		rc, err := openWIM(rest[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		img, err := selectImage(&rc.Reader, rest[1])
		if err != nil {
			return err
		}
		wopts := wim.WriterOptions{Integrity: *check, Compression: rc.Info().Compression}
		if *compress != "" {
			if wopts.Compression, err = parseCompression(*compress); err != nil {
				return err
			}
		}
		rep, err := events.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		task := rep.Start("export", 0, "bytes")
		ctx, stop := wimContext()
		defer stop()
		err = export(ctx, img, rest[2], wopts, wim.ImageOptions{Name: *name, Description: *desc, Progress: task.Callback()}, fs.Changed("compress"))
		task.Finish(err)
		return err
	}
	return c
}

// export adds img to dest (wim.Export), refusing --compress for a dest
// that exists and keeps its own.
func export(ctx context.Context, img *wim.Image, dest string, wopts wim.WriterOptions, iopts wim.ImageOptions, compressSet bool) error {
	if _, err := os.Stat(dest); err == nil && compressSet {
		return usageErrorf("--compress: %s exists and keeps its own compression", dest)
	}
	return wim.Export(ctx, img, dest, wopts, iopts)
}

func wimSplitCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "split WIM PART.swm SIZE_MB [flags]",
		Short: "Split a WIM into .swm parts of at most SIZE_MB MiB each",
		Long:  "Split a WIM into .swm parts of at most SIZE_MB MiB each\n\nParts are named PART.swm, PART2.swm, PART3.swm, ... (4000 fits FAT32).",
	}
	c.Args = argCount(3, 3)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		mb, err := strconv.ParseInt(rest[2], 10, 64)
		if err != nil || mb <= 0 {
			return usageErrorf("SIZE_MB %q: want a positive number of MiB", rest[2])
		}
		if !strings.HasSuffix(strings.ToLower(rest[1]), ".swm") {
			return usageErrorf("%s: the first part's name must end in .swm", rest[1])
		}
		ctx, stop := wimContext()
		defer stop()
		parts, err := wim.Split(ctx, rest[0], rest[1], mb<<20)
		for _, p := range parts {
			fmt.Fprintln(c.OutOrStdout(), p)
		}
		return err
	}
	return c
}
