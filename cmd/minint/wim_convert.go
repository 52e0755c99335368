package main

import (
	"context"
	"fmt"
	"github.com/minint/minint/bytesize"
	"os"
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
		ctx, stop := signalContext()
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
		Use:   "split WIM PART.swm SIZE [flags]",
		Short: "Split a WIM into .swm parts of at most SIZE each",
		Long: "Split a WIM into .swm parts of at most SIZE each\n\n" +
			"SIZE is in MiB when it has no unit, as wimlib-imagex reads it (4000 fits FAT32), or a size such as 3900MiB or 2GB.\n" +
			"Parts are named PART.swm, PART2.swm, PART3.swm, ...",
	}
	c.Args = argCount(3, 3)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		size, err := splitSize(rest[2])
		if err != nil {
			return usageErrorf("SIZE: %v", err)
		}
		if !strings.HasSuffix(strings.ToLower(rest[1]), ".swm") {
			return usageErrorf("%s: the first part's name must end in .swm", rest[1])
		}
		ctx, stop := signalContext()
		defer stop()
		parts, err := wim.Split(ctx, rest[0], rest[1], int64(size))
		for _, p := range parts {
			fmt.Fprintln(c.OutOrStdout(), p)
		}
		return err
	}
	return c
}

// splitSize reads split's SIZE: a bare number is MiB, as wimlib-imagex
// reads its PART_SIZE; anything else follows package bytesize.
func splitSize(s string) (bytesize.Size, error) {
	t := strings.TrimSpace(s)
	if t != "" && strings.Trim(t, "0123456789") == "" {
		t += "MiB"
	}
	n, err := bytesize.Parse(t)
	if err == nil && n < bytesize.MiB {
		err = fmt.Errorf("%s is too small: at least %s", n.Explain(), bytesize.MiB.Explain())
	}
	return n, err
}
