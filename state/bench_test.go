package state

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	benchFiles = flag.Int("state.files", 1000, "BenchmarkCapture: number of files (the issue's figure is 10000)")
	benchBytes = flag.Int64("state.bytes", 100<<20, "BenchmarkCapture: total bytes (the issue's figure is 1 GiB)")
	benchDir   = flag.String("state.dir", "/dev/shm", "BenchmarkCapture: where the data lives (tmpfs keeps the disk out of it)")
)

// BenchmarkCapture captures the same home directory by hard links and by
// copying, in the same run, and reports both times and their ratio.
// go test ./state -run '^$' -bench Capture -state.files 10000 -state.bytes 1073741824
func BenchmarkCapture(b *testing.B) {
	base, err := os.MkdirTemp(*benchDir, "state-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	root := filepath.Join(base, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("u:x:1000:1000::/home/u:/bin/sh\n"), 0o644)
	rng := rand.New(rand.NewPCG(1, 2))
	per := *benchBytes / int64(*benchFiles)
	buf := make([]byte, per)
	for i := 0; i < *benchFiles; i++ {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		p := filepath.Join(root, "home/u", fmt.Sprintf("d%03d", i%100), fmt.Sprintf("f%05d", i))
		if i < 100 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var link, cp time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, copyMode := range []bool{false, true} {
			store := filepath.Join(base, "store")
			t0 := time.Now()
			_, st, err := CaptureStat(ctx, root, store, Spec{Key: testKey, Copy: copyMode})
			d := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if copyMode {
				cp += d
			} else {
				link += d
				if st.Copied != 0 {
					b.Fatalf("hard-link capture copied %d files", st.Copied)
				}
			}
			b.StopTimer()
			os.RemoveAll(store)
			b.StartTimer()
		}
	}
	b.ReportMetric(link.Seconds()/float64(b.N), "link-s/op")
	b.ReportMetric(cp.Seconds()/float64(b.N), "copy-s/op")
	b.ReportMetric(cp.Seconds()/link.Seconds(), "copy/link")
	b.ReportMetric(float64(*benchFiles), "files")
	b.ReportMetric(float64(*benchBytes)/(1<<20), "MiB")
}
