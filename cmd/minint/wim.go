package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/minint/minint/wim"
)

// The wim verbs follow wimlib-imagex's names and argument order so that
// someone who knows imagex/wimlib finds their way; unlike wimlib-imagex,
// Linux metadata (owners, modes, device nodes, xattrs) is kept by default.
// Verbs that change or convert existing WIMs (append, export, split) live in
// wim_convert.go and add themselves to wimVerbs.
var wimVerbs = []func() *cobra.Command{
	func() *cobra.Command { return wimCaptureCmd("capture", capture) },
	wimApplyCmd, wimInfoCmd, wimDirCmd, wimExtractCmd, wimVerifyCmd,
}

func init() {
	register(func() *cobra.Command {
		g := group(&cobra.Command{
			Use:   "wim",
			Short: "Capture, apply, inspect, verify, export and split WIM images",
		})
		for _, newVerb := range wimVerbs {
			g.AddCommand(newVerb())
		}
		return g
	})
}

// lowGC lowers the garbage collector's target (unless GOGC says
// otherwise) for capture: it allocates little as it goes (chunk buffers are
// reused), so collecting at 25% growth instead of 100% costs next to no CPU
// and keeps the peak memory, the scanned tree plus the pipeline, near
// wimlib's.
func lowGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}

// openWIM opens a WIM, or a split set when the name ends in .swm.
func openWIM(path string) (*wim.ReadCloser, error) { return wim.OpenReader(path) }

// selectImage resolves an image given by 1-based index or by name; a
// missing image is the caller's mistake, so it is a usage error.
// selectOptionalImage is selectImage for verbs whose INDEX|NAME may be left
// out: sel "" means the only image, and is a usage error when there are
// several.
func selectOptionalImage(r *wim.Reader, wimName, sel string) (*wim.Image, error) {
	if sel == "" {
		if n := len(r.Images()); n != 1 {
			return nil, usageErrorf("%s has %d images: say which one", wimName, n)
		}
		sel = "1"
	}
	return selectImage(r, sel)
}

func selectImage(r *wim.Reader, sel string) (*wim.Image, error) {
	img, err := r.FindImage(sel)
	if errors.Is(err, wim.ErrNotFound) || errors.Is(err, wim.ErrDuplicateName) {
		return nil, usageErrorf("%v", err)
	}
	return img, err
}

func parseCompression(s string) (wim.Compression, error) {
	c, err := wim.ParseCompression(s)
	if err != nil {
		return 0, usageErrorf("--compress: %v", err)
	}
	return c, nil
}

// wimCaptureCmd makes capture and append, which take the same flags and
// differ in what they do with the WIM file.
func wimCaptureCmd(verb string, do func(ctx context.Context, dst, src string, wopts wim.WriterOptions, iopts wim.ImageOptions) error) *cobra.Command {
	c := &cobra.Command{
		Use:   verb + " SRC WIM [NAME [DESCRIPTION]] [flags]",
		Short: "Capture a directory tree into a new WIM file",
		Long: "Capture a directory tree into a new WIM file\n\n" +
			"NAME (default: SRC's base name) must not be used by another image of the WIM.",
	}
	if verb == "append" {
		c.Short = "Capture a directory tree as one more image of an existing WIM"
	}
	fs := c.Flags()
	name := fs.String("name", "", "image `NAME` (or the third argument)")
	desc := fs.String("description", "", "image `DESCRIPTION` (or the fourth argument)")
	compress := fs.String("compress", "lzx", "`COMPRESSION`: none, xpress or lzx (append: the WIM's own)")
	threads := fs.Int("threads", 0, "`N` compression threads (default: number of CPUs)")
	config := fs.String("config", "", "wimlib-style capture configuration `FILE` ([ExclusionList], [ExclusionException])")
	check := fs.Bool("check", false, "write an integrity table (SHA-1 of every 10 MiB of the file)")
	unixData := fs.Bool("unix-data", true, "store Linux owners, modes, device nodes and xattrs (Linux-first: --unix-data=false to skip)")
	events := addOutputFlags(c, "progress", "show no progress")
	c.Args = argCount(2, 4)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		src, dst := rest[0], rest[1]
		if err := nameArgs(fs, rest[2:], name, desc); err != nil {
			return err
		}
		comp, err := parseCompression(*compress)
		if err != nil {
			return err
		}
		if verb == "append" && fs.Changed("compress") {
			return usageErrorf("--compress: append keeps the WIM's compression")
		}
		if *threads < 0 {
			return usageErrorf("--threads: must be positive")
		}
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s: not a directory", src)
		}
		if *name == "" {
			// wimlib-imagex's default too: images need names to be found by.
			*name = filepath.Base(filepath.Clean(src))
		}
		opts := wim.ImageOptions{Name: *name, Description: *desc, NoUnixData: !*unixData}
		if *config != "" {
			f, err := os.Open(*config)
			if err != nil {
				return err
			}
			cfg, err := wim.ParseCaptureConfig(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", *config, err)
			}
			opts.Config = cfg
		}
		rep, err := events.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		task := rep.Start(verb, 0, "bytes")
		opts.Progress = task.Callback()
		wopts := wim.WriterOptions{Compression: comp, Threads: *threads, Integrity: *check}
		ctx, stop := signalContext()
		defer stop()
		lowGC()
		err = do(ctx, dst, src, wopts, opts)
		task.Finish(err)
		return err
	}
	return c
}

// nameArgs takes an image's name and description from the arguments after
// the ones every wimlib-imagex verb has, as wimlib-imagex does; the flags
// say the same, so only one of each may be given.
func nameArgs(fs *pflag.FlagSet, args []string, name, desc *string) error {
	for i, f := range []struct {
		flag string
		v    *string
	}{{"name", name}, {"description", desc}} {
		if len(args) > i {
			if fs.Changed(f.flag) {
				return usageErrorf("image %s given both as an argument and with --%s", f.flag, f.flag)
			}
			*f.v = args[i]
		}
	}
	return nil
}

// capture writes a new WIM file; wim.Create puts it under its name only
// once it is complete.
func capture(ctx context.Context, dst, src string, wopts wim.WriterOptions, iopts wim.ImageOptions) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists (remove it, or use 'minint wim append' to add an image)", dst)
	}
	w, err := wim.Create(dst, wopts)
	if err != nil {
		return err
	}
	if err := w.AddImage(ctx, src, iopts); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func wimApplyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "apply WIM [INDEX|NAME] DIR [flags]",
		Short: "Apply (extract) a whole image to a directory",
		Long:  "Apply (extract) a whole image to a directory\n\nINDEX (1-based) or NAME may be left out when the WIM has one image.",
	}
	fs := c.Flags()
	threads := fs.Int("threads", 0, "`N` decompression threads (default: number of CPUs)")
	unixData := fs.Bool("unix-data", true, "restore Linux owners, modes, device nodes and xattrs (Linux-first: --unix-data=false to skip)")
	events := addOutputFlags(c, "progress", "show no progress")
	c.Args = argCount(2, 3)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		rc, err := openWIM(rest[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		sel, dir := "", rest[len(rest)-1]
		if len(rest) == 3 {
			sel = rest[1]
		}
		img, err := selectOptionalImage(&rc.Reader, rest[0], sel)
		if err != nil {
			return err
		}
		return applyImage(rc, img, dir, nil, false, *threads, *unixData, events)
	}
	return c
}

func applyImage(rc *wim.ReadCloser, img *wim.Image, dir string, paths []string, flatten bool, threads int, unixData bool,
	events *outputFlags) error {
	rep, err := events.open()
	if err != nil {
		return err
	}
	defer rep.Close()
	op := "apply"
	if paths != nil {
		op = "extract"
	}
	task := rep.Start(op, 0, "bytes")
	ctx, stop := signalContext()
	defer stop()
	err = rc.Apply(ctx, img.Index, dir, wim.ApplyOptions{
		Threads:    threads,
		NoUnixData: !unixData,
		Paths:      paths,
		Flatten:    flatten,
		Progress:   task.Callback(),
	})
	task.Finish(err)
	return err
}

func wimExtractCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "extract WIM INDEX|NAME PATH... [--dest-dir DIR] [flags]",
		Short: "Extract files or directories (with their contents) from an image",
		Long: "Extract files or directories (with their contents) from an image\n\n" +
			"PATHs are inside the image, e.g. /etc/hostname or etc/ssh. Like wimlib-imagex, each is\n" +
			"extracted directly into DIR under its base name (/etc/hostname -> DIR/hostname) unless\n" +
			"--preserve-dir-structure is given (-> DIR/etc/hostname).",
	}
	fs := c.Flags()
	dest := fs.String("dest-dir", ".", "`DIR` to extract into (--dest also works)")
	preserve := fs.Bool("preserve-dir-structure", false, "extract each PATH at its place in the image, with its parent directories")
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "dest" {
			name = "dest-dir"
		}
		return pflag.NormalizedName(name)
	})
	threads := fs.Int("threads", 0, "`N` decompression threads (default: number of CPUs)")
	unixData := fs.Bool("unix-data", true, "restore Linux owners, modes, device nodes and xattrs (Linux-first: --unix-data=false to skip)")
	events := addOutputFlags(c, "progress", "show no progress")
	c.Args = argCount(3, -1)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		rc, err := openWIM(rest[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		img, err := selectImage(&rc.Reader, rest[1])
		if err != nil {
			return err
		}
		return applyImage(rc, img, *dest, rest[2:], !*preserve, *threads, *unixData, events)
	}
	return c
}

// imageInfo is what `wim info --json` prints for each image.
type imageInfo struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Directories uint64 `json:"directories"`
	Files       uint64 `json:"files"`
	TotalBytes  uint64 `json:"total-bytes"`
	Created     string `json:"created,omitempty"`
	Modified    string `json:"modified,omitempty"`
	// Fields are the image's other XML elements, e.g. what a capture
	// recorded about its source (MININT/OS_NAME, MININT/GENERALIZE/...).
	Fields map[string]string `json:"fields,omitempty"`
}

type wimInfo struct {
	Path        string      `json:"path"`
	GUID        string      `json:"guid"`
	Version     string      `json:"version"`
	Compression string      `json:"compression"`
	ChunkSize   int         `json:"chunk-size"`
	Part        int         `json:"part"`
	TotalParts  int         `json:"total-parts"`
	Integrity   bool        `json:"integrity-table"`
	BootIndex   int         `json:"boot-index"`
	Size        int64       `json:"size"`
	Images      []imageInfo `json:"images"`
}

func wimInfoCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "info WIM [INDEX|NAME] [flags]",
		Short: "Show a WIM's header and its images",
	}
	fs := c.Flags()
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	xml := fs.Bool("xml", false, "print the WIM's XML data as stored")
	c.Args = argCount(1, 2)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		rc, err := openWIM(rest[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		hi := rc.Info()
		if *xml {
			_, err := io.WriteString(c.OutOrStdout(), hi.XML)
			return err
		}
		info := wimInfo{
			Path: rest[0], GUID: fmt.Sprintf("%x", hi.GUID), Version: fmt.Sprintf("%#x", hi.Version),
			Compression: hi.Compression.String(), ChunkSize: hi.ChunkSize,
			Part: hi.PartNumber, TotalParts: hi.TotalParts, Integrity: hi.HasIntegrity, BootIndex: hi.BootIndex,
			Size: hi.Size,
		}
		imgs := rc.Images()
		if len(rest) == 2 {
			img, err := selectImage(&rc.Reader, rest[1])
			if err != nil {
				return err
			}
			imgs = []*wim.Image{img}
		}
		for _, img := range imgs {
			ii := imageInfo{Index: img.Index, Name: img.Name, Description: img.Description,
				Directories: img.DirCount, Files: img.FileCount, TotalBytes: img.TotalBytes, Fields: img.Fields}
			if img.CreationTime != 0 {
				ii.Created = img.CreationTime.Time().Format("2006-01-02 15:04:05 UTC")
			}
			if img.ModTime != 0 {
				ii.Modified = img.ModTime.Time().Format("2006-01-02 15:04:05 UTC")
			}
			info.Images = append(info.Images, ii)
		}
		if *asJSON {
			enc := json.NewEncoder(c.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		}
		w := c.OutOrStdout()
		fmt.Fprintf(w, "Path:          %s\n", info.Path)
		fmt.Fprintf(w, "GUID:          %s\n", info.GUID)
		fmt.Fprintf(w, "Version:       %s\n", info.Version)
		fmt.Fprintf(w, "Compression:   %s\n", info.Compression)
		fmt.Fprintf(w, "Chunk size:    %d\n", info.ChunkSize)
		fmt.Fprintf(w, "Part:          %d/%d\n", info.Part, info.TotalParts)
		fmt.Fprintf(w, "Integrity:     %v\n", info.Integrity)
		fmt.Fprintf(w, "Boot index:    %d\n", info.BootIndex)
		fmt.Fprintf(w, "Size:          %d bytes\n", info.Size)
		fmt.Fprintf(w, "Image count:   %d\n", len(rc.Images()))
		for _, ii := range info.Images {
			fmt.Fprintf(w, "\nIndex:         %d\n", ii.Index)
			fmt.Fprintf(w, "Name:          %s\n", ii.Name)
			if ii.Description != "" {
				fmt.Fprintf(w, "Description:   %s\n", ii.Description)
			}
			fmt.Fprintf(w, "Directories:   %d\n", ii.Directories)
			fmt.Fprintf(w, "Files:         %d\n", ii.Files)
			fmt.Fprintf(w, "Total bytes:   %d\n", ii.TotalBytes)
			if ii.Created != "" {
				fmt.Fprintf(w, "Created:       %s\n", ii.Created)
			}
			if ii.Modified != "" {
				fmt.Fprintf(w, "Modified:      %s\n", ii.Modified)
			}
			keys := make([]string, 0, len(ii.Fields))
			for k := range ii.Fields {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				// Multi-line values (a generalize report) stay readable.
				v := strings.ReplaceAll(ii.Fields[k], "\n", "\n               ")
				fmt.Fprintf(w, "%-14s %s\n", k+":", v)
			}
		}
		return nil
	}
	return c
}

func wimDirCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "dir WIM [INDEX|NAME] [flags]",
		Short: "List the files in an image",
	}
	long := c.Flags().BoolP("long", "l", false, "show type, mode, owner, size and mtime like ls -l")
	c.Args = argCount(1, 2)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		rc, err := openWIM(rest[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		sel := ""
		if len(rest) == 2 {
			sel = rest[1]
		}
		img, err := selectOptionalImage(&rc.Reader, rest[0], sel)
		if err != nil {
			return err
		}
		w := c.OutOrStdout()
		return img.Walk(func(path string, f *wim.File) error {
			if !*long {
				_, err := fmt.Fprintln(w, path)
				return err
			}
			size := fmt.Sprint(f.Size)
			if f.FileMode()&fs.ModeDevice != 0 {
				// As ls -l: major, minor instead of a size.
				size = fmt.Sprintf("%d, %d", unix.Major(uint64(f.Rdev)), unix.Minor(uint64(f.Rdev)))
			}
			line := fmt.Sprintf("%s %5d %5d %12s %s %s", lsMode(f.FileMode()), f.UID, f.GID, size,
				f.ModTime.Time().Format("2006-01-02 15:04:05.0000000"), path)
			if f.IsSymlink() {
				line += " -> " + f.LinkTarget
			}
			_, err := fmt.Fprintln(w, line)
			return err
		})
	}
	return c
}

// lsMode renders a mode the way ls -l does ("drwxr-xr-x", "crw-rw----",
// "-rwsr-xr-x", "drwxrwxrwt"), not as fs.FileMode.String does.
func lsMode(m fs.FileMode) string {
	b := []byte("-rwxrwxrwx")
	switch {
	case m&fs.ModeDir != 0:
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	}
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	// setuid, setgid and sticky take the x position: lower case when x is
	// set too, upper case when it is not.
	special := func(pos int, set bool, c byte) {
		if !set {
			return
		}
		if b[pos] == 'x' {
			b[pos] = c
		} else {
			b[pos] = c - 'a' + 'A'
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's')
	special(6, m&fs.ModeSetgid != 0, 's')
	special(9, m&fs.ModeSticky != 0, 't')
	return string(b)
}

func wimVerifyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify WIM [flags]",
		Short: "Check a WIM: integrity table, every blob's SHA-1, every image's metadata",
	}
	fs := c.Flags()
	threads := fs.Int("threads", 0, "`N` threads (default: number of CPUs)")
	events := addOutputFlags(c, "progress", "show no progress")
	c.Args = argCount(1, 1)
	c.RunE = func(_ *cobra.Command, rest []string) error {
		rc, err := openWIM(rest[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		rep, err := events.open()
		if err != nil {
			return err
		}
		defer rep.Close()
		task := rep.Start("verify", 0, "bytes")
		ctx, stop := signalContext()
		defer stop()
		err = rc.Verify(ctx, wim.VerifyOptions{Threads: *threads, Progress: task.Callback()})
		task.Finish(err)
		if err == nil {
			rep.Printf("%s: OK", rest[0])
		}
		return err
	}
	return c
}
