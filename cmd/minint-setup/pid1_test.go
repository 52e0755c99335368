package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/answer"
)

// TestAsPID1 runs minint-setup as PID 1 of a new PID and mount namespace,
// chrooted into a fake deployed system with busybox: it must set the
// system up, remove itself and exec the system's /sbin/init with the
// arguments it got; with a bad answer file it must not start init.
func TestAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for namespaces and chroot")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox-static")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	bin := filepath.Join(t.TempDir(), "minint-setup")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	mkroot := func(cfg string) string {
		root := t.TempDir()
		bbData, _ := os.ReadFile(bb)
		setup, _ := os.ReadFile(bin)
		for p, c := range map[string]string{
			"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
			"etc/shadow":          "root:*:19000:0:99999:7:::\n",
			"etc/group":           "root:x:0:\n",
			"boot/extlinux.conf":  "APPEND root=UUID=1 rw " + answer.InitArg + " quiet\n",
			"sbin/init":           "#!/bin/busybox sh\necho \"init $*\" > /init-ran\n",
			"bin/busybox":         string(bbData),
			"minint/setup.json":   cfg,
			"minint/minint-setup": string(setup),
		} {
			os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(root, p), []byte(c), 0o755)
		}
		return root
	}
	good, _ := json.Marshal(answer.Config{Answer: answer.Answer{Hostname: "pid1"}, Init: "/sbin/init", BootEntries: []answer.BootEntry{{Path: "/boot/extlinux.conf"}}})
	root := mkroot(string(good))
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--kill-child", "chroot", root, answer.Binary, "single")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "init-ran")); string(b) != "init single\n" {
		t.Fatalf("real init not exec'd with its arguments (%q); output:\n%s", b, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "pid1\n" {
		t.Errorf("hostname %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "boot/extlinux.conf")); string(b) != "APPEND root=UUID=1 rw quiet\n" {
		t.Errorf("boot entry %q", b)
	}
	for _, p := range []string{answer.Binary, answer.ConfigFile} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there", p)
		}
	}
	if !strings.Contains(string(out), `"state":"done"`) {
		t.Errorf("no done event on the console:\n%s", out)
	}

	// Bad answer file: init must never start. PID 1 cannot exit, so it
	// waits for a rescue; the test kills it once the result is written.
	root = mkroot(`{"answer":{"users":[{"name":"Bad Name"}]},"init":"/sbin/init"}`)
	cmd = exec.Command("unshare", "--pid", "--fork", "--mount", "--kill-child", "chroot", root, answer.Binary)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(root, answer.ResultFile)); err == nil && strings.Contains(string(b), `"ok": false`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failure result")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(root, "init-ran")); !os.IsNotExist(err) {
		t.Error("init ran although setup failed")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "boot/extlinux.conf")); !strings.Contains(string(b), answer.InitArg) {
		t.Error("failed setup removed init= from the boot entry")
	}
	cmd.Process.Kill()
	cmd.Wait()
}
