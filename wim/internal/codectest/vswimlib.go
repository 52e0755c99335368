package codectest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// threadCPU returns the CPU time consumed by the calling OS thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// WimlibCPU runs wimlib-imagex with args (single-threaded) and returns the
// CPU time it used. CPU time, unlike wall time, stays comparable when other
// work shares the machine.
func WimlibCPU(tb testing.TB, args ...string) time.Duration {
	tb.Helper()
	cmd := exec.Command("wimlib-imagex", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%v: %v\n%s", cmd, err, stderr.String())
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchVsWimlib compares, in CPU time on one core, compressing and
// decompressing all of wimlib's chunks of the corpus with codec c against
// wimlib-imagex capturing the corpus (--threads=1) and applying the
// resulting WIM. wimlib's times include its file I/O and SHA-1 work, so the
// comparison slightly favours us; it is a reference, not a verdict. It
// reports MB/s of CPU time for both and the ratios, plus the output size
// relative to wimlib's.
func BenchVsWimlib(b *testing.B, compress string, c Codec) {
	w := WimlibCapture(b, compress, 32768)
	dir := b.TempDir()
	tree := filepath.Join(dir, "tree")
	files, err := corpusFiles()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
		p := filepath.Join(tree, filepath.Base(filepath.Dir(f))+"_"+filepath.Base(f)+"_"+string(rune('a'+i%26)))
		os.MkdirAll(tree, 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	wimPath := filepath.Join(dir, "x.wim")

	var chunks []Chunk
	var chunkBytes int64
	for _, bl := range w.Blobs {
		for _, ch := range bl.Chunks {
			chunks = append(chunks, ch)
			chunkBytes += int64(ch.Size)
		}
	}
	raw := make([][]byte, len(chunks))
	for i, ch := range chunks {
		raw[i] = make([]byte, ch.Size)
		if ch.Raw {
			copy(raw[i], ch.Stored)
		} else if err := c.Decompress(raw[i], ch.Stored); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dst := make([]byte, w.ChunkSize)
	// Each iteration measures all four; the minimum of each is kept, which
	// filters out interference from other work on the machine.
	var capCPU, appCPU, compCPU, decCPU time.Duration
	keepMin := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	var ours, theirs int64
	b.ResetTimer()
	for range b.N {
		os.Remove(wimPath)
		os.RemoveAll(filepath.Join(dir, "out"))
		keepMin(&capCPU, WimlibCPU(b, "capture", tree, wimPath, "--compress="+compress, "--threads=1"))
		keepMin(&appCPU, WimlibCPU(b, "extract", wimPath, "1", "/*", "--to-stdout"))
		ours, theirs = 0, 0
		t0 := threadCPU()
		for i, ch := range chunks {
			n := c.Compress(dst[:ch.Size], raw[i])
			if n == 0 {
				n = ch.Size
			}
			ours += int64(n)
			theirs += int64(len(ch.Stored))
		}
		t1 := threadCPU()
		for i, ch := range chunks {
			if !ch.Raw {
				if err := c.Decompress(raw[i], ch.Stored); err != nil {
					b.Fatal(err)
				}
			}
		}
		t2 := threadCPU()
		keepMin(&compCPU, t1-t0)
		keepMin(&decCPU, t2-t1)
	}
	mbps := func(bytes int64, d time.Duration, _ int) float64 {
		return float64(bytes) / 1e6 / d.Seconds()
	}
	b.ReportMetric(mbps(chunkBytes, compCPU, 1), "comp-MB/s-cpu")
	b.ReportMetric(mbps(total, capCPU, 1), "wimlib-capture-MB/s-cpu")
	b.ReportMetric(mbps(chunkBytes, compCPU, 1)/mbps(total, capCPU, 1), "comp-speed-x")
	b.ReportMetric(mbps(chunkBytes, decCPU, 1), "dec-MB/s-cpu")
	b.ReportMetric(mbps(total, appCPU, 1), "wimlib-extract-MB/s-cpu")
	b.ReportMetric(mbps(chunkBytes, decCPU, 1)/mbps(total, appCPU, 1), "dec-speed-x")
	b.ReportMetric(float64(ours)/float64(theirs), "size-x")
}
