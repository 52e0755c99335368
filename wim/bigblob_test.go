package wim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// A large file goes through the chunk-parallel path; damage in the middle
// of it must fail Apply and Verify (never write silently wrong data).
func TestBigBlobParallelAndDamage(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(src, 0o755)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20+123)
	for i := range data {
		data[i] = "abcdefgh"[rng.IntN(8)]
	}
	os.WriteFile(filepath.Join(src, "big"), data, 0o644)
	w := filepath.Join(tmp, "x.wim")
	capture(t, src, w, WriterOptions{Compression: CompressionLZX}, ImageOptions{})
	rc, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "out")
	if err := rc.Apply(context.Background(), 1, dst, ApplyOptions{Threads: 4}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "big"))
	if !bytes.Equal(got, data) {
		t.Fatal("big file differs after apply")
	}
	img, _ := rc.Image(1)
	f, _ := img.Lookup("/big")
	off := f.data.res.rh.offset + f.data.res.rh.sizeInWim/2
	rc.Close()

	raw, _ := os.ReadFile(w)
	raw[off] ^= 0x55
	bad := filepath.Join(tmp, "bad.wim")
	os.WriteFile(bad, raw, 0o644)
	rc, err = OpenReader(bad)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	err = rc.Apply(context.Background(), 1, filepath.Join(tmp, "out2"), ApplyOptions{Threads: 4})
	if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) {
		t.Fatalf("apply of damaged blob: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(tmp, "out2", "big")); serr == nil {
		t.Error("damaged file left behind")
	}
	if err := rc.Verify(context.Background(), VerifyOptions{Threads: 4}); !errors.Is(err, ErrFormat) && !errors.Is(err, ErrChecksum) {
		t.Fatalf("verify of damaged blob: %v", err)
	}
	img, _ = rc.Image(1)
	f, _ = img.Lookup("/big")
	r, _ := f.Open()
	if _, err := io.Copy(io.Discard, r); err == nil {
		t.Fatal("reading damaged file succeeded")
	}
}
