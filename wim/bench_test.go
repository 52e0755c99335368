package wim_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minint/minint/wim"
)

// The benchmarks measure this package and wimlib-imagex on the same tree in
// the same run and report the ratio ("x-wimlib": wimlib's time divided by
// ours, above 1 means faster than wimlib), so that numbers from a busy or
// slow machine still compare like with like. Trees and outputs live on
// tmpfs (/dev/shm) to measure the code rather than the disk.
//
//	go test ./wim -run '^$' -bench . -benchtime 3x
//
// MININT_BENCH_TREE chooses the tree (default: Go sources and tool binaries,
// ~16 MB). scripts/bench-wim.sh runs the whole CLI on a bigger tree.

func benchDir(b *testing.B) string {
	b.Helper()
	d, err := os.MkdirTemp("/dev/shm", "minint-bench-")
	if err != nil {
		return b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func benchTree(b *testing.B, dir string) (string, int64) {
	b.Helper()
	tree := os.Getenv("MININT_BENCH_TREE")
	if tree == "" {
		tree = realTree(b, dir)
	}
	var n int64
	filepath.Walk(tree, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return tree, n
}

// timeWimlib runs wimlib-imagex n times (after clean, untimed) and returns
// the total wall time.
func timeWimlib(b *testing.B, n int, clean func(), args ...string) time.Duration {
	b.Helper()
	if _, err := exec.LookPath("wimlib-imagex"); err != nil {
		b.Skip("wimlib-imagex not installed: no reference to compare with")
	}
	var total time.Duration
	for i := 0; i < n; i++ {
		clean()
		start := time.Now()
		if out, err := exec.Command("wimlib-imagex", args...).CombinedOutput(); err != nil {
			b.Fatalf("wimlib-imagex %v: %v\n%s", args, err, out)
		}
		total += time.Since(start)
	}
	return total
}

func BenchmarkApply(b *testing.B) {
	dir := benchDir(b)
	tree, size := benchTree(b, dir)
	for _, comp := range compressions {
		b.Run(comp, func(b *testing.B) {
			w := filepath.Join(dir, comp+".wim")
			if _, err := os.Stat(w); err != nil {
				wimlib(b, "capture", tree, w, "--unix-data", "--compress="+comp)
			}
			out := filepath.Join(dir, "out")
			r, err := wim.OpenReader(w)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.SetBytes(size)
			b.ResetTimer()
			var ours time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.RemoveAll(out)
				b.StartTimer()
				start := time.Now()
				if err := r.Apply(context.Background(), 1, out, wim.ApplyOptions{}); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(start)
			}
			b.StopTimer()
			ref := timeWimlib(b, b.N, func() { os.RemoveAll(out) }, "apply", w, "1", out, "--unix-data")
			b.ReportMetric(ref.Seconds()/ours.Seconds(), "x-wimlib")
		})
	}
}

func BenchmarkCapture(b *testing.B) {
	dir := benchDir(b)
	tree, size := benchTree(b, dir)
	for _, comp := range compressions {
		b.Run(comp, func(b *testing.B) {
			c, err := wim.ParseCompression(comp)
			if err != nil {
				b.Fatal(err)
			}
			w := filepath.Join(dir, "ours.wim")
			b.SetBytes(size)
			b.ResetTimer()
			var ours time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				os.Remove(w)
				b.StartTimer()
				start := time.Now()
				ww, err := wim.Create(w, wim.WriterOptions{Compression: c})
				if err != nil {
					b.Fatal(err)
				}
				if err := ww.AddImage(context.Background(), tree, wim.ImageOptions{Name: "bench"}); err != nil {
					b.Fatal(err)
				}
				if err := ww.Close(); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(start)
			}
			b.StopTimer()
			ourSize := fileSize(b, w)
			ref := filepath.Join(dir, "ref.wim")
			refTime := timeWimlib(b, b.N, func() { os.Remove(ref) }, "capture", tree, ref, "--unix-data", "--compress="+comp)
			b.ReportMetric(refTime.Seconds()/ours.Seconds(), "x-wimlib")
			b.ReportMetric(float64(ourSize)/float64(fileSize(b, ref)), "size/wimlib")
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	dir := benchDir(b)
	tree, size := benchTree(b, dir)
	w := filepath.Join(dir, "lzx.wim")
	wimlib(b, "capture", tree, w, "--unix-data", "--compress=lzx", "--check")
	b.SetBytes(size)
	b.ResetTimer()
	var ours time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := wim.OpenReader(w)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Verify(context.Background(), wim.VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
		r.Close()
		ours += time.Since(start)
	}
	b.StopTimer()
	ref := timeWimlib(b, b.N, func() {}, "verify", w)
	b.ReportMetric(ref.Seconds()/ours.Seconds(), "x-wimlib")
}

func fileSize(b *testing.B, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
