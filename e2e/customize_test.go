package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
)

// TestDeployCustomizedISO is a released ISO (the PE alone, trusting the
// fixture's key) turned into a site's with `minint iso customize` — a new
// sequence, a package signed with another key and that key — and booted
// under UEFI through the unchanged shim → GRUB chain: the PE finds the
// medium by its new ID (in the rewritten grub.cfg), trusts the new key
// (appended to its initramfs) and deploys.
func TestDeployCustomizedISO(t *testing.T) {
	t.Parallel()
	f := setup(t)
	released := f.iso(t, "", "")
	dir := t.TempDir()
	pkg := copyPkg(t, f.pkg)
	os.Remove(filepath.Join(pkg, "manifest.json"))
	os.Remove(filepath.Join(pkg, "manifest.json.sig"))
	if _, err := run(dir, f.minint, "package", "create", "--key", f.otherKey, "--name", "sample-os", pkg); err != nil {
		t.Fatal(err)
	}
	seq := filepath.Join(dir, "seq.yaml")
	if err := os.WriteFile(seq, []byte(sequence("medium:/minint/image/manifest.json", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	custom := filepath.Join(dir, "site.iso")
	start := time.Now()
	if _, err := run(dir, f.minint, "iso", "customize", released, "-o", custom, "--sequence", seq,
		"--package", pkg, "--key", strings.TrimSuffix(f.otherKey, ".key")+".pub", "--cmdline", "minint.var.site=lab"); err != nil {
		t.Fatal(err)
	}
	t.Logf("customized in %s", time.Since(start).Round(time.Millisecond))
	out, err := run(dir, f.minint, "iso", "show", "--json", custom)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		MediaID string `json:"media_id"`
		Cmdline string
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || !strings.Contains(m.Cmdline, "minint.media="+m.MediaID) {
		t.Fatalf("iso show: %v %s", err, out)
	}

	disk := filepath.Join(t.TempDir(), "disk.img")
	// UEFI under TCG on a busy host: more than vm's default 2 minutes
	// per wait.
	v := startVM(t, qemu.Options{ISO: custom, Firmware: qemu.UEFI, Mem: "512M", Timeout: 10 * time.Minute,
		Disks: []qemu.Disk{{Path: disk, Size: 512 << 20, Boot: true}}, DiskFirst: true, AllowReboot: true, WorkDir: t.TempDir()})
	f.waitDeployed(t, v)
	if st := stepStates(v); st["partition-uefi"] != "done" || st["apply-image"] != "done" {
		t.Errorf("steps %v", st)
	}
}
