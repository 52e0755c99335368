package initramfs

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkBuild measures a cold build (empty minint cache: u-root compiles
// the Go part) once, then warm rebuilds (everything cached) b.N times, and
// reports both with their ratio and the initramfs size per compression.
// Run: MININT_E2E=1 go test ./initramfs -run XXX -bench Build -benchtime 3x
func BenchmarkBuild(b *testing.B) {
	if os.Getenv("MININT_E2E") != "1" {
		b.Skip("a cold build compiles the PE with u-root (minutes); set MININT_E2E=1")
	}
	ctx := context.Background()
	cache := b.TempDir()
	start := time.Now()
	pe, err := Build(ctx, Config{CacheDir: cache}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cold := time.Since(start)
	sizes := map[string]int64{"gzip": pe.InitramfsSize}
	for _, c := range []string{"xz", "zstd", "none"} {
		p, err := Build(ctx, Config{CacheDir: cache, Compression: c}, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		sizes[c] = p.InitramfsSize
	}
	out := b.TempDir()
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := Build(ctx, Config{CacheDir: cache}, out); err != nil {
			b.Fatal(err)
		}
	}
	warm := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(cold.Seconds(), "cold-s")
	b.ReportMetric(warm.Seconds(), "warm-s")
	b.ReportMetric(float64(cold)/float64(warm), "cold/warm")
	for c, n := range sizes {
		b.ReportMetric(float64(n)/(1<<20), c+"-MiB")
	}
}
