package wim

import (
	"context"
	"fmt"
	"strings"
)

// ApplyOptions controls Apply.
type ApplyOptions struct {
	// Threads is the number of files decompressed and written in parallel;
	// 0 means GOMAXPROCS.
	Threads int
	// NoUnixData ignores stored owners, modes and xattrs: files get 0644,
	// directories 0755, the caller's owner.
	NoUnixData bool
	// Paths restricts extraction to these image paths and their subtrees
	// (their parent directories are created too). Nil extracts everything.
	Paths []string
	// Flatten extracts each of Paths directly into dir under its base
	// name ("/etc/ssh" -> dir/ssh, "/" -> the image's top level), as
	// wimlib-imagex extract does without --preserve-dir-structure. Two
	// paths with the same base name are refused (ErrInsecurePath). The
	// metadata of dir itself is left alone.
	Flatten bool
	// Progress, if set, is called with bytes of file data written so far and
	// the total.
	Progress func(done, total int64)
	// InsecureSkipHashCheck neither computes nor compares the SHA-1 of
	// each file's data: files get whatever the decompressor produced,
	// damaged or not. It exists to measure what the check costs (the
	// apply floor of minint's deploy benchmark, which hashes nothing);
	// like tls.Config.InsecureSkipVerify, never set it to apply an image
	// for use.
	InsecureSkipHashCheck bool
	// Checksums, if set, checks each file's data against its XXH64 in
	// this table instead of its SHA-1 (a table of the wrong length fails
	// with ErrChecksum before anything is created). Set it only when the
	// WIM's bytes were authenticated by what carried the table: see
	// Checksums for why that keeps what the SHA-1 check gives.
	Checksums Checksums
}

// Apply extracts image index (1-based) into dir. See Image.Apply.
func (r *Reader) Apply(ctx context.Context, index int, dir string, opts ApplyOptions) error {
	img, err := r.Image(index)
	if err != nil {
		return err
	}
	return img.Apply(ctx, dir, opts)
}

// checkName rejects names that could leave the extraction directory.
func checkName(dir *File, name string) error {
	bad := ""
	switch {
	case name == "":
		bad = "empty name"
	case name == "." || name == "..":
		bad = fmt.Sprintf("name %q", name)
	case strings.ContainsRune(name, '/'):
		bad = fmt.Sprintf("name %q contains '/'", name)
	case strings.ContainsRune(name, 0):
		bad = fmt.Sprintf("name %q contains NUL", name)
	}
	if bad != "" {
		return fmt.Errorf("%w: %s in directory %s", ErrInsecurePath, bad, dir.Path())
	}
	return nil
}

// validateTree checks every name under root before anything is created.
func validateTree(root *File) error {
	var walk func(d *File) error
	walk = func(d *File) error {
		seen := make(map[string]bool, len(d.Children))
		for _, c := range d.Children {
			if err := checkName(d, c.Name); err != nil {
				return err
			}
			if seen[c.Name] {
				return fmt.Errorf("%w: duplicate name %q in directory %s", ErrInsecurePath, c.Name, d.Path())
			}
			seen[c.Name] = true
			if len(c.Children) > 0 && !c.IsDir() {
				return fmt.Errorf("%w: %s is not a directory but has children", ErrFormat, c.Path())
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}
