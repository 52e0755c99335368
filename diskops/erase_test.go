package diskops

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/minint/minint/internal/disktest"
)

func fillRandom(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(b)) {
		rand.Read(b)
		f.WriteAt(b[:min(int64(len(b)), size-off)], off)
	}
}

func assertAllZero(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range b {
		if c != 0 {
			t.Fatalf("byte %d is %#x after erase", i, c)
		}
	}
}

func TestEraseImage(t *testing.T) {
	tg := imageTarget(t, 8<<20+12345) // not a multiple of the block size
	fillRandom(t, tg.Path, tg.Size)
	var last int64
	res, err := Erase(context.Background(), tg, EraseOptions{Samples: 64, Progress: func(d, _ int64) { last = d }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != tg.Size || last != tg.Size || res.Verified < 64+256 {
		t.Errorf("result %+v, progress %d", res, last)
	}
	assertAllZero(t, tg.Path)
	if _, err := Erase(context.Background(), tg, EraseOptions{Method: "shred"}); err == nil {
		t.Error("accepted method shred")
	}
}

// TestVerifyZeroCatchesData makes sure verification is not vacuous: a
// non-zero byte in the last MiB is found.
func TestVerifyZeroCatchesData(t *testing.T) {
	tg := imageTarget(t, 4<<20)
	tg.File.WriteAt([]byte{1}, tg.Size-100)
	if _, err := verifyZero(tg, 1); !errors.Is(err, ErrVerify) {
		t.Fatalf("verifyZero = %v", err)
	}
}

func TestEraseLoopDevice(t *testing.T) {
	disktest.NeedE2E(t)
	img := imageTarget(t, 32<<20)
	fillRandom(t, img.Path, img.Size)
	out, err := exec.Command("losetup", "-f", "--show", img.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	for _, method := range []string{"zero", "discard"} {
		fillRandom(t, loop, 32<<20)
		tg, err := OpenTarget(context.Background(), loop, TargetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !tg.IsBlock() {
			t.Fatal("loop device not seen as a block device")
		}
		res, err := Erase(context.Background(), tg, EraseOptions{Method: method})
		tg.Close()
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		t.Logf("%s: %+v", method, res)
		assertAllZero(t, img.Path)
	}
}
