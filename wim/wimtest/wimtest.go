// Package wimtest writes WIMs for the tests of packages that read them,
// as httptest serves HTTP for theirs.
package wimtest

import (
	"context"
	"os"
	"testing"

	"github.com/minint/minint/wim"
)

// Capture writes the tree at src as the one image of a new WIM at dst and
// returns the WIM's size; any failure ends the test.
func Capture(tb testing.TB, src, dst string, wo wim.WriterOptions, io wim.ImageOptions) int64 {
	tb.Helper()
	w, err := wim.Create(dst, wo)
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.AddImage(context.Background(), src, io); err != nil {
		w.Close()
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}
