package diskops

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFormatVsMkfs formats the same image with this package and with
// the standard mkfs tool, and reports our time as a ratio of theirs
// (measured in the same run, so machine load cancels out).
func BenchmarkFormatVsMkfs(b *testing.B) {
	for _, c := range []struct {
		fs, tool string
		size     int64
		args     []string
	}{
		{"vfat", "mkfs.vfat", 256 << 20, []string{"-F", "32", "-n", "ESP"}},
		{"ext4", "mkfs.ext4", 1 << 30, []string{"-F", "-q", "-L", "root"}},
	} {
		b.Run(c.fs, func(b *testing.B) {
			tool, err := exec.LookPath(c.tool)
			if err != nil {
				if tool, err = exec.LookPath("/sbin/" + c.tool); err != nil {
					b.Skipf("%s not installed", c.tool)
				}
			}
			img := filepath.Join(b.TempDir(), "img")
			var ours, theirs time.Duration
			for i := 0; i < b.N; i++ {
				os.Remove(img)
				f, _ := os.Create(img)
				f.Truncate(c.size)
				t0 := time.Now()
				if _, err := Format(context.Background(), f, 0, c.size, FormatSpec{FS: c.fs, Label: "x"}); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(t0)
				f.Close()
				os.Remove(img)
				f, _ = os.Create(img)
				f.Truncate(c.size)
				f.Close()
				t0 = time.Now()
				if out, err := exec.Command(tool, append(c.args, img)...).CombinedOutput(); err != nil {
					b.Fatalf("%s: %v %s", tool, err, out)
				}
				theirs += time.Since(t0)
			}
			b.ReportMetric(float64(ours)/float64(theirs), "ratio-vs-"+c.tool)
		})
	}
}
