package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/u-root/mkuimage/cpio"
	"github.com/ulikunitz/xz"
)

type comp struct {
	name, ext string
	wrap      func(io.Writer) (io.WriteCloser, error)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor returns the writer for one of the formats the kernel unpacks
// (Debian's kernel has RD_GZIP, RD_XZ and RD_ZSTD).
func compressor(name string) (comp, error) {
	switch name {
	case "", "gzip", "gz":
		return comp{"gzip", ".gz", func(w io.Writer) (io.WriteCloser, error) {
			return pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		}}, nil
	case "xz":
		return comp{"xz", ".xz", func(w io.Writer) (io.WriteCloser, error) {
			// The kernel's XZ decoder verifies CRC32 only (not the CRC64 default).
			return xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 1 << 20}.NewWriter(w)
		}}, nil
	case "zstd", "zst":
		return comp{"zstd", ".zst", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithWindowSize(1<<20))
		}}, nil
	case "none":
		return comp{"none", "", func(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil }}, nil
	}
	return comp{}, fmt.Errorf("unknown compression %q (want gzip, xz, zstd or none)", name)
}

// assemble writes to out (atomically) the compressed newc cpio of the Go
// part goCPIO followed by files, creating their parent directories.
func assemble(goCPIO string, files []File, c comp, out string) error {
	in, err := os.Open(goCPIO)
	if err != nil {
		return err
	}
	defer in.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(in))
	if err != nil {
		return fmt.Errorf("reading cached Go part %s: %w", goCPIO, err)
	}
	return writeFileAtomic(out, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		zw, err := c.wrap(bw)
		if err != nil {
			return err
		}
		cw := cpio.Newc.Writer(zw)
		have := map[string]bool{}
		for _, r := range recs {
			have[r.Name] = true
			if err := cw.WriteRecord(cpio.MakeReproducible(r)); err != nil {
				return err
			}
		}
		for _, f := range files {
			var dirs []string
			for d := path.Dir(f.Dest); d != "." && d != "/" && !have[d]; d = path.Dir(d) {
				dirs = append(dirs, d)
				have[d] = true
			}
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := cw.WriteRecord(cpio.MakeReproducible(cpio.Directory(dirs[i], 0o755))); err != nil {
					return err
				}
			}
			if have[f.Dest] && !strings.HasPrefix(f.Dest, "lib/modules/") {
				return fmt.Errorf("extra file %s would replace a file of the PE", f.Dest)
			}
			have[f.Dest] = true
			rec := cpio.StaticRecord(f.Data, cpio.Info{Mode: cpio.S_IFREG | uint64(f.Mode.Perm()), Name: f.Dest})
			if err := cw.WriteRecord(cpio.MakeReproducible(rec)); err != nil {
				return err
			}
		}
		if err := cpio.WriteTrailer(cw); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
}
