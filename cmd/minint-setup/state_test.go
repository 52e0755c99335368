package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/state"
)

// TestRestoreState: the state captured on the old system is restored by
// setup on the new one, /minint goes only after success, and a damaged
// store fails setup with nothing restored and /minint kept.
func TestRestoreState(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to restore owners")
	}
	bin := filepath.Join(t.TempDir(), "minint-setup")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sign.ParsePrivateKey(priv)
	for _, damaged := range []bool{false, true} {
		old, root := t.TempDir(), t.TempDir()
		for r, files := range map[string]map[string]string{
			old:  {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n", "etc/shadow": "ann:$y$hash:1:0:99999:7:::\n", "etc/group": "root:x:0:\nsudo:x:27:ann\nann:x:1000:\n"},
			root: {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/group": "root:x:0:\nsudo:x:27:\n", "minint/pe.log": "pe log\n"},
		} {
			for p, c := range files {
				os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755)
				os.WriteFile(filepath.Join(r, p), []byte(c), 0o644)
			}
		}
		treetest.Generate(t, filepath.Join(old, "home/ann"), treetest.Options{Seed: 3, Small: true, Owner: &treetest.Owner{UID: 1000, GID: 1000}})
		m, err := state.Capture(context.Background(), old, filepath.Join(root, "minint/state"), state.Spec{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if damaged {
			for sum := range m.Objects() {
				os.Remove(filepath.Join(root, "minint/state", state.ObjectPath(sum)))
				break
			}
		}
		cfg := &answer.Config{Answer: answer.Answer{Hostname: "new", RestoreState: &answer.RestoreState{Keys: []string{string(pub)}}}}
		if err := answer.WriteConfig(filepath.Join(root, answer.ConfigFile), cfg); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--root", root).CombinedOutput()
		if damaged {
			if err == nil || !strings.Contains(string(out), "incomplete") {
				t.Fatalf("damaged store: err %v\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(root, "home")); !os.IsNotExist(err) {
				t.Errorf("damaged store: home restored anyway")
			}
			if _, err := os.Stat(filepath.Join(root, "minint/state/index")); err != nil {
				t.Errorf("damaged store: /minint removed: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("minint-setup: %v\n%s", err, out)
		}
		a, _ := treetest.Snapshot(filepath.Join(old, "home"))
		b, _ := treetest.Snapshot(filepath.Join(root, "home"))
		if d := treetest.Diff(a, b, treetest.DiffOptions{IgnoreRoot: true}); len(d) > 0 {
			t.Fatalf("restored home differs:\n%s", strings.Join(d, "\n"))
		}
		if pw, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(pw), "\nann:x:1000:1000:") {
			t.Errorf("account not recreated: %s", pw)
		}
		// ann was in sudo on the old system: a system group, so the
		// membership is not restored and an event says so.
		if gr, _ := os.ReadFile(filepath.Join(root, "etc/group")); !strings.Contains(string(gr), "sudo:x:27:\n") ||
			!strings.Contains(string(out), `"state":"warning"`) || !strings.Contains(string(out), "system group sudo") {
			t.Errorf("sudo membership: group %s\noutput %s", gr, out)
		}
		if _, err := os.Stat(filepath.Join(root, "minint")); !os.IsNotExist(err) {
			t.Errorf("/minint not removed after success: %v", err)
		}
		var res answer.Result
		rb, _ := os.ReadFile(filepath.Join(root, "var/log/minint/setup-result.json"))
		if err := json.Unmarshal(rb, &res); err != nil || !res.OK || !strings.Contains(strings.Join(res.Log, "\n"), "restored user state") {
			t.Errorf("kept result %s (%v)", rb, err)
		}
		if lb, _ := os.ReadFile(filepath.Join(root, "var/log/minint/pe.log")); string(lb) != "pe log\n" {
			t.Errorf("PE log not kept: %q", lb)
		}
	}
}
