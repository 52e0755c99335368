package fsx

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenRegularRefusesOthers(t *testing.T) {
	d := t.TempDir()
	reg := filepath.Join(d, "f")
	os.WriteFile(reg, []byte("x"), 0o600)
	os.Symlink(reg, filepath.Join(d, "link"))
	syscall.Mkfifo(filepath.Join(d, "fifo"), 0o600)
	if f, err := OpenRegular(reg); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	for _, n := range []string{"link", "fifo"} {
		if _, err := OpenRegular(filepath.Join(d, n)); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want ErrNotRegular", n, err)
		}
	}
	if _, _, err := HashFile(filepath.Join(d, "link")); !errors.Is(err, ErrNotRegular) {
		t.Errorf("HashFile through a symlink: %v", err)
	}
}
