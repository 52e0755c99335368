package initramfs

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/u-root/mkuimage/cpio"
)

// The initramfs is a concatenation of compressed cpio archives, one per
// part, which the kernel unpacks one after the other (see the kernel's
// "initramfs buffer format"). Each part's compressed size is then exact,
// which is what the size budget reports, and a part whose contents did not
// change (the Go programs, the modules, the firmware) is taken compressed
// from the cache instead of being compressed again.

// Part names, in the order they are unpacked.
const (
	PartInit     = "init"     // peinit (its share of the Go binary; estimated)
	PartTools    = "tools"    // u-root rescue commands in the same binary
	PartSetup    = "setup"    // minint-setup, copied to deployed systems
	PartModules  = "modules"  // kernel modules and their index
	PartFirmware = "firmware" // /lib/firmware
	PartOther    = "other"    // build info, keys, boot loaders, extra files
)

// Part is one part of the initramfs and what it costs.
type Part struct {
	Name  string `json:"name"`
	Files int    `json:"files"`
	// Raw is its size in the cpio archive (headers and padding included);
	// Compressed its size in the initramfs.
	Raw        int64 `json:"raw"`
	Compressed int64 `json:"compressed"`
	// Estimated: init and tools are one Go binary; init's share is that of
	// a stand-alone build of peinit, tools' the rest.
	Estimated bool `json:"estimated,omitempty"`
}

// segment is one part's files, compressed into a cached cpio archive.
type segment struct {
	name  string
	files []File
	recs  []cpio.Record // instead of files: records (the Go part)
	path  string        // compressed archive, once written
	raw   int64
	size  int64
}

// segmentKey hashes what a segment's archive is made of.
func segmentKey(s *segment, c comp) string {
	h := sha256.New()
	fmt.Fprintf(h, "minint-segment v1 %s %s\n", c.name, s.name)
	for _, r := range s.recs {
		fmt.Fprintf(h, "rec %s %o %d %s\n", r.Name, r.Mode, r.FileSize, r.Info.Name)
	}
	for _, f := range s.files {
		fmt.Fprintf(h, "file %s %o %x\n", f.Dest, f.Mode, sha256.Sum256(f.Data))
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// writeSegments compresses each segment into the cache (or takes it from
// there) and fills in its path and sizes. have tracks the directories
// earlier segments create, so that each is created once.
func writeSegments(cache string, segs []*segment, c comp, goKey string) error {
	have := map[string]bool{}
	for _, s := range segs {
		if err := s.plan(have); err != nil {
			return err
		}
		s.path = filepath.Join(cache, "seg-"+segmentKey(s, c)+c.ext)
		if s.name == PartTools && goKey != "" {
			// The Go part is hashed by its inputs; its records take long to hash.
			s.path = filepath.Join(cache, "go-"+goKey+c.ext)
		}
		st, err := os.Stat(s.path)
		if err == nil {
			s.size = st.Size()
			touch(s.path)
			continue
		}
		if err := writeFileAtomic(s.path, func(w io.Writer) error { return writeArchive(w, c, s.recs) }); err != nil {
			return err
		}
		st, err = os.Stat(s.path)
		if err != nil {
			return err
		}
		s.size = st.Size()
	}
	prune(cache, "seg-*", 24)
	return nil
}

// plan turns files into records (parent directories first) and measures
// the raw size of the segment's archive.
func (s *segment) plan(have map[string]bool) error {
	for _, r := range s.recs {
		have[r.Name] = true
	}
	for _, f := range s.files {
		var dirs []string
		for d := path.Dir(f.Dest); d != "." && d != "/" && !have[d]; d = path.Dir(d) {
			dirs = append(dirs, d)
			have[d] = true
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			s.recs = append(s.recs, cpio.Directory(dirs[i], 0o755))
		}
		if have[f.Dest] && s.name != PartModules && s.name != PartFirmware {
			return fmt.Errorf("extra file %s would replace a file of the PE", f.Dest)
		}
		have[f.Dest] = true
		s.recs = append(s.recs, cpio.StaticRecord(f.Data, cpio.Info{Mode: cpio.S_IFREG | uint64(f.Mode.Perm()), Name: f.Dest}))
	}
	s.raw = 0
	for _, r := range s.recs {
		s.raw += newcSize(r.Name, int64(r.FileSize))
	}
	s.raw += newcSize("TRAILER!!!", 0)
	return nil
}

// newcSize is the size of one newc record: a 110-byte header and the name
// with its NUL, padded to 4, then the data, padded to 4.
func newcSize(name string, data int64) int64 {
	h := (110 + int64(len(name)) + 1 + 3) &^ 3
	return h + (data+3)&^3
}

// concat writes the segments one after the other into out (atomically).
func concat(segs []*segment, out string) error {
	return writeFileAtomic(out, func(w io.Writer) error {
		for _, s := range segs {
			f, err := os.Open(s.path)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// budget turns segments into the parts reported to the user, splitting the
// Go binary's part into init and tools by initRaw, the size of a
// stand-alone peinit (0 when unknown: all of it is reported as tools).
func budget(segs []*segment, initRaw int64) []Part {
	var parts []Part
	for _, s := range segs {
		p := Part{Name: s.name, Raw: s.raw, Compressed: s.size}
		for _, r := range s.recs {
			if r.Mode&cpio.S_IFMT == cpio.S_IFREG {
				p.Files++
			}
		}
		if s.name == PartTools && initRaw > 0 && initRaw < s.raw {
			share := float64(initRaw) / float64(s.raw)
			initC := int64(float64(s.size) * share)
			parts = append(parts, Part{Name: PartInit, Files: 1, Raw: initRaw, Compressed: initC, Estimated: true})
			p.Files--
			p.Raw -= initRaw
			p.Compressed -= initC
			p.Estimated = true
		}
		parts = append(parts, p)
	}
	return parts
}

// FormatBudget renders parts as a table for people.
func FormatBudget(parts []Part, compression string) string {
	var b strings.Builder
	var raw, comp int64
	fmt.Fprintf(&b, "%-10s %6s %11s %11s\n", "part", "files", "raw", compression)
	for _, p := range parts {
		mark := ""
		if p.Estimated {
			mark = " (est.)"
		}
		fmt.Fprintf(&b, "%-10s %6d %11s %11s%s\n", p.Name, p.Files, mib(p.Raw), mib(p.Compressed), mark)
		raw += p.Raw
		comp += p.Compressed
	}
	fmt.Fprintf(&b, "%-10s %6s %11s %11s", "total", "", mib(raw), mib(comp))
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// writeArchive writes recs as one compressed newc archive with its
// trailer, every record made reproducible.
func writeArchive(w io.Writer, c comp, recs []cpio.Record) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	zw, err := c.wrap(bw)
	if err != nil {
		return err
	}
	arch := cpio.Newc.Writer(zw)
	for _, r := range recs {
		if err := arch.WriteRecord(cpio.MakeReproducible(r)); err != nil {
			return err
		}
	}
	if err := cpio.WriteTrailer(arch); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
