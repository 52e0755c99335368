package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/sign"
)

func TestPEKeyFile(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pp, kp := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key")
	os.WriteFile(pp, pub, 0o644)
	os.WriteFile(kp, priv, 0o600)
	f, id, err := peKeyFile(pp)
	if err != nil {
		t.Fatal(err)
	}
	if f.Dest != "etc/minint/package.pub" || string(f.Data) != string(pub) || len(id) != 16 {
		t.Errorf("got %s %q id %q", f.Dest, f.Data, id)
	}
	// The secret key must never end up in a PE.
	if _, _, err := peKeyFile(kp); err == nil || !strings.Contains(err.Error(), "not the .key") {
		t.Errorf("private key accepted as --key: %v", err)
	}
	if _, _, err := peKeyFile(filepath.Join(dir, "missing.pub")); err == nil {
		t.Error("missing key file accepted")
	}
}
