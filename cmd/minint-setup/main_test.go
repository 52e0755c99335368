package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/answer"
)

// TestSetupOnFakeRoot runs the real binary with --root against a tree laid
// out like a deployed system.
func TestSetupOnFakeRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown in the fake root")
	}
	bin := filepath.Join(t.TempDir(), "minint-setup")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root := t.TempDir()
	for p, c := range map[string]string{
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/group":           "root:x:0:\n",
		"boot/extlinux.conf":  "DEFAULT minint\nLABEL minint\n  LINUX /boot/vmlinuz\n  APPEND root=UUID=1234 rw init=/minint/minint-setup\n",
		"minint/minint-setup": "binary",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	cfg := &answer.Config{
		Answer:      answer.Answer{Hostname: "kiosk", Users: []answer.User{{Name: "op", SSHKeys: []string{"ssh-ed25519 AAAA op"}}}},
		BootEntries: []answer.BootEntry{{Path: "/boot/extlinux.conf"}},
	}
	if err := answer.WriteConfig(filepath.Join(root, answer.ConfigFile), cfg); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--root", root).CombinedOutput()
	if err != nil {
		t.Fatalf("minint-setup: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "kiosk\n" {
		t.Errorf("hostname %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "boot/extlinux.conf")); strings.Contains(string(b), "init=") || !strings.Contains(string(b), "APPEND root=UUID=1234 rw\n") {
		t.Errorf("extlinux.conf still %q", b)
	}
	for _, gone := range []string{answer.ConfigFile, answer.Binary} {
		if _, err := os.Stat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", gone, err)
		}
	}
	var res answer.Result
	b, _ := os.ReadFile(filepath.Join(root, answer.ResultFile))
	if err := json.Unmarshal(b, &res); err != nil || !res.OK {
		t.Errorf("result %s (%v)", b, err)
	}

	// A bad answer file: nothing applied, boot entry kept, result says why.
	os.WriteFile(filepath.Join(root, "boot/extlinux.conf"), []byte("APPEND init=/minint/minint-setup\n"), 0o644)
	os.WriteFile(filepath.Join(root, answer.ConfigFile), []byte(`{"answer":{"hostname":"bad name"}}`), 0o600)
	out, err = exec.Command(bin, "--root", root).CombinedOutput()
	if err == nil {
		t.Fatalf("bad answer file accepted:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "boot/extlinux.conf")); string(b) != "APPEND init=/minint/minint-setup\n" {
		t.Errorf("failed setup touched the boot entry: %q", b)
	}
	b, _ = os.ReadFile(filepath.Join(root, answer.ResultFile))
	if err := json.Unmarshal(b, &res); err != nil || res.OK || !strings.Contains(res.Error, "hostname") {
		t.Errorf("result after failure %s (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, answer.ConfigFile)); err != nil {
		t.Errorf("config removed after a failure: %v", err)
	}
}
