package pe

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/sign"
)

func TestLoadSourceSigned(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("../sequence/testdata/deploy.yaml")
	os.WriteFile(filepath.Join(dir, "seq.yaml"), src, 0o644)
	priv := mustPriv(t)
	pub := priv.Public().(ed25519.PublicKey)
	os.WriteFile(filepath.Join(dir, "seq.sig"), sign.Sign(src, priv), 0o644)
	os.WriteFile(filepath.Join(dir, "unsigned.yaml"), src, 0o644)
	os.WriteFile(filepath.Join(dir, "tampered.yaml"), append(src, []byte("# x\n")...), 0o644)
	os.WriteFile(filepath.Join(dir, "tampered.sig"), sign.Sign(src, priv), 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	ctx := context.Background()
	seq, err := loadSource(ctx, srv.URL+"/seq.yaml", "", pub, nil)
	if err != nil || len(seq.Steps) != 12 {
		t.Fatalf("signed sequence: %v", err)
	}
	if _, err := loadSource(ctx, srv.URL+"/unsigned.yaml", "", pub, nil); !errors.Is(err, httpx.ErrNotFound) {
		t.Errorf("unsigned sequence: %v", err)
	}
	if _, err := loadSource(ctx, srv.URL+"/tampered.yaml", "", pub, nil); !errors.Is(err, sign.ErrSignature) {
		t.Errorf("tampered sequence: %v", err)
	}
	if _, err := loadSource(ctx, srv.URL+"/seq.yaml", "", nil, nil); !errors.Is(err, sign.ErrSignature) {
		t.Errorf("no key: %v", err)
	}
	// From the boot medium: no signature needed.
	med := t.TempDir()
	os.MkdirAll(filepath.Join(med, "minint"), 0o755)
	os.WriteFile(filepath.Join(med, MediumSequence), src, 0o644)
	if _, err := loadSource(ctx, "", med, nil, nil); err != nil {
		t.Errorf("medium sequence: %v", err)
	}
}

func TestHostInventory(t *testing.T) {
	inv := hostInventory("/", diskops.DiscoverOptions{NoProbe: true})
	if inv.CPUs < 1 || inv.Memory < 1<<20 || (inv.Firmware != "bios" && inv.Firmware != "uefi") || inv.Arch == "" {
		t.Errorf("inventory %+v", inv)
	}
}
