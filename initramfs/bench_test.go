package initramfs

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
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
	sizes := map[string]int64{pe.Compression: pe.InitramfsSize}
	for _, c := range []string{"gzip", "xz", "none"} {
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

// BenchmarkBootCompression builds the default PE with each compression the
// Debian kernel unpacks (RD_GZIP, RD_XZ, RD_ZSTD in /boot/config-*) and
// boots each in QEMU (TCG, direct kernel boot, no network), in turn, b.N
// rounds: it reports each one's compressed size, the time from QEMU's start
// to the PE's banner, and both as ratios to gzip measured in the same run.
// Run: MININT_E2E=1 go test ./initramfs -run '^$' -bench BootCompression -benchtime 3x
func BenchmarkBootCompression(b *testing.B) {
	if os.Getenv("MININT_E2E") != "1" {
		b.Skip("builds the PE three times and boots QEMU; set MININT_E2E=1")
	}
	ctx := context.Background()
	comps := []string{"gzip", "xz", "zstd"}
	pes := map[string]*PE{}
	for _, c := range comps {
		p, err := Build(ctx, Config{Compression: c}, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		pes[c] = p
	}
	banner := map[string]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range comps {
			res, err := qemu.Run(ctx, qemu.Options{Kernel: pes[c].Kernel, Initrd: pes[c].Initramfs, NoNet: true, Mem: "512M",
				Append: "console=ttyS0,115200 quiet minint.done=poweroff minint.net=0", Timeout: 3 * time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			banner[c] += res.Banner
		}
	}
	for _, c := range comps {
		secs := banner[c].Seconds() / float64(b.N)
		b.ReportMetric(float64(pes[c].InitramfsSize)/(1<<20), c+"-MiB")
		b.ReportMetric(secs, c+"-banner-s")
		b.ReportMetric(float64(pes[c].InitramfsSize)/float64(pes["gzip"].InitramfsSize), c+"/gzip-size")
		b.ReportMetric(secs/(banner["gzip"].Seconds()/float64(b.N)), c+"/gzip-boot")
	}
}
