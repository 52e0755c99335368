package wim_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/minint/minint/wim"
)

// TestCancel: capture, apply, verify and export stop soon after their
// context is cancelled and return its error; a cancelled capture leaves no
// file.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := map[string]string{}
	for i := range 64 {
		files[filepath.Join("d", string(rune('a'+i%26)), string(rune('A'+i/26))+".bin")] = string(randomBytes(256<<10, uint64(i)))
	}
	writeFiles(t, src, files)
	const total = 64 * 256 << 10

	// cancelAfter returns a context and a progress function that cancels
	// it once half of the data is through, counting what comes after.
	cancelAfter := func() (context.Context, func(done, total int64), *atomic.Int64) {
		ctx, cancel := context.WithCancel(t.Context())
		var after atomic.Int64
		var cancelled atomic.Bool
		return ctx, func(done, _ int64) {
			if cancelled.Load() {
				after.Store(done)
				return
			}
			if done >= total/2 {
				cancelled.Store(true)
				after.Store(done)
				cancel()
			}
		}, &after
	}

	x := filepath.Join(dir, "x.wim")
	ctx, prog, _ := cancelAfter()
	w, err := wim.Create(x, wim.WriterOptions{Compression: wim.CompressionXPRESS, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddImage(ctx, src, wim.ImageOptions{Name: "x", Progress: prog}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled AddImage: %v, want context.Canceled", err)
	}
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close after a cancelled AddImage: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*wim*")); len(left) != 0 {
		t.Errorf("a cancelled capture left %v", left)
	}

	minintCapture(t, src, x, "xpress", false, "x")
	rc, err := wim.OpenReader(x)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	for _, threads := range []int{1, 2} {
		ctx, prog, after := cancelAfter()
		out := filepath.Join(dir, "out", fmt.Sprint(threads))
		if err := rc.Apply(ctx, 1, out, wim.ApplyOptions{Threads: threads, Progress: prog}); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Apply (%d threads): %v, want context.Canceled", threads, err)
		}
		// The blobs in progress finish or stop; nothing new starts.
		if n := after.Load(); n > total/2+4*(256<<10) {
			t.Errorf("Apply (%d threads) went on to %d of %d bytes after being cancelled at half", threads, n, total)
		}
	}

	ctx, prog, _ = cancelAfter()
	if err := rc.Verify(ctx, wim.VerifyOptions{Threads: 2, Progress: prog}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Verify: %v, want context.Canceled", err)
	}

	img, _ := rc.Image(1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	y := filepath.Join(dir, "y.wim")
	if err := wim.Export(ctx, img, y, wim.WriterOptions{Compression: wim.CompressionLZX}, wim.ImageOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Export: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(y); !os.IsNotExist(err) {
		t.Errorf("a cancelled export left %s: %v", y, err)
	}
}
