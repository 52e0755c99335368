package capture

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/generalize"
	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/wim"
)

func TestImage(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	debianTree(t, root)
	writeFiles(t, root, map[string]string{
		"etc/ssh/ssh_host_rsa_key": "KEY",
		"proc/1/status":            "x",
		"tmp/junk":                 "x",
		"swapfile":                 "swap",
		"minint/journal.json":      "{}",
		"var/log/syslog":           "log\n",
	})
	before, err := treetest.Snapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "ref.wim")
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	res, err := Image(context.Background(), root, out, Options{Compression: wim.CompressionXPRESS, Generalize: generalize.DefaultOptions(), Check: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := treetest.Snapshot(root)
	if d := treetest.Diff(before, after, treetest.DiffOptions{}); len(d) > 0 {
		t.Errorf("source changed: %v", d)
	}
	rc, err := wim.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, _ := rc.Image(1)
	if img.Name != "Debian GNU/Linux 12" {
		t.Errorf("name %q", img.Name)
	}
	want := map[string]string{
		"MININT/OS_ID": "debian", "MININT/OS_VERSION": "12", "MININT/KERNELS": "6.1.0-13-amd64 6.1.0-56-amd64",
		"MININT/CAPTURE_TIME": "2026-11-28T10:00:00Z", "MININT/GENERALIZE/MODE": "snapshot",
	}
	for k, v := range want {
		if img.Fields[k] != v {
			t.Errorf("%s = %q, want %q", k, img.Fields[k], v)
		}
	}
	if r := img.Fields["MININT/GENERALIZE/REPORT"]; !strings.Contains(r, "delete /etc/ssh/ssh_host_rsa_key") || !strings.Contains(r, "empty /etc/machine-id") {
		t.Errorf("report field: %q", r)
	}
	for _, p := range []string{"/proc/1", "/tmp/junk", "/swapfile", "/minint", "/etc/ssh/ssh_host_rsa_key"} {
		if _, err := img.Lookup(p); !errors.Is(err, wim.ErrNotFound) {
			t.Errorf("%s in the image: %v", p, err)
		}
	}
	for _, p := range []string{"/proc", "/tmp", "/etc/machine-id", "/var/log/syslog"} {
		if f, err := img.Lookup(p); err != nil || (!f.IsDir() && f.Size != 0) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if res.Size == 0 || res.System.OSID != "debian" || len(res.Plan.Changes) != 3 {
		t.Errorf("result %+v, plan %v", res, res.Plan.Changes)
	}

	// In place: the source itself is generalized.
	if _, err := Image(context.Background(), root, filepath.Join(tmp, "ip.wim"), Options{Generalize: generalize.Options{SSHHostKeys: true}, InPlace: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ssh/ssh_host_rsa_key")); !os.IsNotExist(err) {
		t.Errorf("in-place left the key: %v", err)
	}
	// Not a system: nothing written.
	if _, err := Image(context.Background(), t.TempDir(), filepath.Join(tmp, "none.wim"), Options{}); !errors.Is(err, ErrNoRoot) {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "none.wim")); !os.IsNotExist(err) {
		t.Error("file left after a failed capture")
	}
}
