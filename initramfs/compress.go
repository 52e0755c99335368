package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"

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
// (Debian's kernel has RD_GZIP, RD_XZ and RD_ZSTD). The default is zstd:
// with the drivers and firmware of real machines the PE is 0.87× gzip's
// size (xz: 0.85×) and boots to its banner in 0.82× gzip's time (xz:
// 1.08×; BenchmarkBootCompression, docs/benchmarks.md).
func compressor(name string) (comp, error) {
	switch name {
	case "", "zstd", "zst":
		return comp{"zstd", ".zst", func(w io.Writer) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithWindowSize(1<<20))
		}}, nil
	case "gzip", "gz":
		return comp{"gzip", ".gz", func(w io.Writer) (io.WriteCloser, error) {
			return pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		}}, nil
	case "xz":
		return comp{"xz", ".xz", func(w io.Writer) (io.WriteCloser, error) {
			// The kernel's XZ decoder verifies CRC32 only (not the CRC64 default).
			return xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 1 << 20}.NewWriter(w)
		}}, nil
	case "none":
		return comp{"none", "", func(w io.Writer) (io.WriteCloser, error) { return nopCloser{w}, nil }}, nil
	}
	return comp{}, fmt.Errorf("unknown compression %q (want gzip, xz, zstd or none)", name)
}

// readGoPart reads the records of the cached Go part (u-root's cpio).
func readGoPart(goCPIO string) ([]cpio.Record, error) {
	in, err := os.Open(goCPIO)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(in))
	if err != nil {
		return nil, fmt.Errorf("reading cached Go part %s: %w", goCPIO, err)
	}
	// The records read from the file at need: keep their data in memory
	// so that the file may be closed (and pruned) meanwhile.
	for i, r := range recs {
		if r.FileSize == 0 || r.ReaderAt == nil {
			continue
		}
		b := make([]byte, r.FileSize)
		if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading cached Go part %s: %s: %w", goCPIO, r.Name, err)
		}
		recs[i].ReaderAt = bytes.NewReader(b)
	}
	return recs, nil
}
