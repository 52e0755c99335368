package fetch

import (
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/manifest"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readInOrder reads r front to back in 1 MiB reads, as an apply reads a WIM's
// blobs in file order.
func readInOrder(b *testing.B, r io.ReaderAt, size int64) {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransfer measures the CPU the download itself costs, without an
// apply's decompression: staging (Download, then one read of the file, as
// the apply reads it) against the pipeline (Transfer read through ReadAt
// while it downloads) from an nginx on loopback, 4 MiB chunks. Issue 16
// asks that the pipeline cost no more CPU than staging: the cpu ratio
// should be at most 1. GODEBUG=cpu.sha=off,cpu.avx2=off turns off the
// vector code of Go's SHA-256 (manifests with SHA-256 chunks), not that
// of BLAKE3, whose library detects the CPU on its own.
//
//	go test ./pe/fetch -run '^$' -bench Transfer -benchtime 5x -cpu 1
func BenchmarkTransfer(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 128<<20)
	rand.New(rand.NewSource(1)).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "image.wim"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	m, _, err := manifest.Build(dir, []string{"image.wim"}, manifest.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	e := &m.Files[0]
	n := testnginx.Start(b, dir, testnginx.Options{})
	url := n.URL + "/image.wim"
	c := &Client{}
	ctx := context.Background()
	var staged, piped time.Duration
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dest := filepath.Join(b.TempDir(), "image.wim")
		t0 := cpuTime()
		if err := c.Download(ctx, url, dest, e, nil); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(dest)
		if err != nil {
			b.Fatal(err)
		}
		readInOrder(b, f, e.Size)
		f.Close()
		t1 := cpuTime()
		staged += t1 - t0

		dest = filepath.Join(b.TempDir(), "image.wim")
		tr, err := c.StartTransfer(ctx, url, dest, e, nil)
		if err != nil {
			b.Fatal(err)
		}
		readInOrder(b, tr, e.Size)
		if err := tr.Wait(); err != nil {
			b.Fatal(err)
		}
		tr.Close()
		piped += cpuTime() - t1
	}
	k := float64(b.N)
	b.ReportMetric(staged.Seconds()/k, "staged-cpu-s/op")
	b.ReportMetric(piped.Seconds()/k, "pipelined-cpu-s/op")
	b.ReportMetric(piped.Seconds()/staged.Seconds(), "cpu-pipelined/staged")
}
