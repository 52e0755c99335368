package pe

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/sign"
)

func TestLoadSourceSigned(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("../sequence/testdata/deploy.yaml")
	priv := mustPriv(t)
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Now()
	signed := func(c sign.Context) []byte {
		if c.Created.IsZero() {
			c.Created = now.Add(-time.Hour)
		}
		b, err := sign.Sign(src, priv, c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seqCtx := sign.Context{Purpose: sign.PurposeSequence, Version: "5"}
	files := map[string][]byte{
		"unsigned.yaml": src,
		"tampered.yaml": append(bytes.Clone(src), "# x\n"...),
	}
	for name, sig := range map[string][]byte{
		"seq.yaml":      signed(sign.Context{Purpose: sign.PurposeSequence, Name: "seq.yaml", Version: "5"}),
		"tampered.yaml": signed(seqCtx),
		"package.yaml":  signed(sign.Context{Purpose: sign.PurposePackage, Version: "5"}),
		"expired.yaml":  signed(sign.Context{Purpose: sign.PurposeSequence, Created: now.Add(-48 * time.Hour), Expires: now.Add(-24 * time.Hour)}),
		"renamed.yaml":  signed(sign.Context{Purpose: sign.PurposeSequence, Name: "wipe.yaml"}),
	} {
		if files[name] == nil {
			files[name] = src
		}
		files[name+".sig"] = sig
	}
	// Accepted for one release, with a warning: the old name, the old
	// format.
	files["oldname.yaml"], files["oldname.sig"] = src, signed(seqCtx)
	files["oldformat.yaml"], files["oldformat.yaml.sig"] = src, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, src))+"\n")
	for name, b := range files {
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	ctx := context.Background()
	var warnings []string
	o := sourceOptions{Warn: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }}
	seq, err := loadSource(ctx, srv.URL+"/seq.yaml", "", pub, nil, o)
	if err != nil || len(seq.Steps) != 12 || len(warnings) != 0 {
		t.Fatalf("signed sequence: %v (warnings %q)", err, warnings)
	}
	if _, err := loadSource(ctx, srv.URL+"/seq.yaml", "", pub, nil, sourceOptions{MinVersion: "5"}); err != nil {
		t.Errorf("signed sequence at the floor: %v", err)
	}
	for name, want := range map[string]string{"oldname.yaml": "old name", "oldformat.yaml": "old format"} {
		warnings = nil
		if _, err := loadSource(ctx, srv.URL+"/"+name, "", pub, nil, o); err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], want) {
			t.Errorf("%s: %v, warnings %q; want accepted with a warning about the %s", name, err, warnings, want)
		}
	}
	for name, c := range map[string]struct {
		o    sourceOptions
		pub  ed25519.PublicKey
		want error
		msg  string
	}{
		"unsigned.yaml":  {o, pub, httpx.ErrNotFound, "unsigned.yaml.sig"},
		"tampered.yaml":  {o, pub, sign.ErrSignature, "changed after signing"},
		"package.yaml":   {o, pub, sign.ErrPurpose, "signed as a package, used as a sequence"},
		"expired.yaml":   {o, pub, sign.ErrExpired, "expired"},
		"renamed.yaml":   {o, pub, sign.ErrSignature, `signed for "wipe.yaml", not "renamed.yaml"`},
		"seq.yaml":       {sourceOptions{MinVersion: "6"}, pub, sign.ErrVersion, "version 5 is older than the minimum 6"},
		"oldformat.yaml": {sourceOptions{MinVersion: "1"}, pub, sign.ErrVersion, "old format"},
	} {
		if _, err := loadSource(ctx, srv.URL+"/"+name, "", c.pub, nil, c.o); !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v saying %q", name, err, c.want, c.msg)
		}
	}
	if _, err := loadSource(ctx, srv.URL+"/seq.yaml", "", nil, nil, o); !errors.Is(err, sign.ErrSignature) {
		t.Errorf("no key: %v", err)
	}
	// From the boot medium: no signature needed.
	med := t.TempDir()
	os.MkdirAll(filepath.Join(med, "minint"), 0o755)
	os.WriteFile(filepath.Join(med, MediumSequence), src, 0o644)
	if _, err := loadSource(ctx, "", med, nil, nil, o); err != nil {
		t.Errorf("medium sequence: %v", err)
	}
}

func TestHostInventory(t *testing.T) {
	inv := hostInventory("/", diskops.DiscoverOptions{NoProbe: true})
	if inv.CPUs < 1 || inv.Memory < 1<<20 || (inv.Firmware != "bios" && inv.Firmware != "uefi") || inv.Arch == "" {
		t.Errorf("inventory %+v", inv)
	}
}

// TestReadSignatureFile: on the boot medium (a file path) FILE.sig comes
// first, the ISO 9660-safe name is read without a warning (an ISO cannot
// hold both FILE.ext and FILE.ext.sig), and nothing is an error wrapping
// both sign.ErrSignature and the missing file.
func TestReadSignatureFile(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "manifest.json")
	var warned []string
	warn := func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }
	if _, err := readSignature(context.Background(), nil, m, warn); !errors.Is(err, sign.ErrSignature) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no signature: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "manifest.sig"), []byte("short"), 0o644)
	if b, err := readSignature(context.Background(), nil, m, warn); string(b) != "short" || err != nil || len(warned) != 0 {
		t.Errorf("medium name: %q, %v, warnings %q", b, err, warned)
	}
	os.WriteFile(m+".sig", []byte("new"), 0o644)
	warned = nil
	if b, err := readSignature(context.Background(), nil, m, warn); string(b) != "new" || err != nil || len(warned) != 0 {
		t.Errorf("both names: %q, %v, warnings %q; want the new one silently", b, err, warned)
	}
}
