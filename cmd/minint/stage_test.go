package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStageCommand runs `minint stage` against a fake root with fake EFI
// variables (never the host's: --root and --efivars are always given, and
// a root other than / never reboots).
func TestStageCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: stage captures every user's files")
	}
	root, host := t.TempDir(), t.TempDir()
	for p, c := range map[string]string{
		"etc/passwd":                  "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n",
		"etc/group":                   "root:x:0:\nann:x:1000:\n",
		"home/ann/doc.txt":            "hello\n",
		"boot/efi/loader/loader.conf": "default os.conf\n",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	for _, n := range []string{"vmlinuz", "initramfs.img"} {
		os.WriteFile(filepath.Join(host, n), []byte(n), 0o644)
	}
	os.WriteFile(filepath.Join(host, "seq.yaml"), []byte("version: 1\nname: refresh\nsteps:\n  - type: reboot\n"), 0o644)
	efivars := filepath.Join(host, "efivars")
	os.MkdirAll(efivars, 0o755)
	events := filepath.Join(host, "events.jsonl")
	args := []string{"stage", "--root", root, "--efivars", efivars, "--kernel", filepath.Join(host, "vmlinuz"),
		"--initramfs", filepath.Join(host, "initramfs.img"), "--sequence", filepath.Join(host, "seq.yaml"),
		"--non-interactive", "--countdown", "0s", "--json-events", events, "--staged-fs", "UUID=0b9e6e49-5b7a-4c43-9b7f-3f5d2d9a1c01"}

	var out, errOut bytes.Buffer
	if code := runMain(append(args, "--dry-run"), &out, &errOut); code != 0 {
		t.Fatalf("dry run exit %d\n%s", code, errOut.String())
	}
	if _, err := os.Stat(filepath.Join(root, "minint")); !os.IsNotExist(err) {
		t.Fatal("--dry-run created /minint")
	}
	if code := runMain(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	for _, p := range []string{"minint/state/index", "minint/pe/sequence.yaml", "boot/efi/loader/entries/minint-pe.conf"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Error(err)
		}
	}
	b, _ := os.ReadFile(events)
	last := strings.Split(strings.TrimSpace(string(b)), "\n")
	var ev map[string]any
	if err := json.Unmarshal([]byte(last[len(last)-1]), &ev); err != nil || ev["event"] != "stage" || ev["state"] != "done" {
		t.Errorf("last event %s (%v)", last[len(last)-1], err)
	}
	// The sequence's requirements are the machine's; a sequence the PE
	// would refuse is refused now. Every problem is reported at once.
	os.WriteFile(filepath.Join(host, "big.yaml"), []byte("version: 1\nname: big\nsteps:\n  - type: requirements\n    min-cpus: 4096\n    min-memory: 64TiB\n    firmware: [bios]\n  - type: reboot\n"), 0o644)
	os.WriteFile(filepath.Join(host, "bad.yaml"), []byte("version: 1\nname: bad\nsteps:\n  - type: warp\n"), 0o644)
	for seq, wants := range map[string][]string{
		"big.yaml": {"CPUs: ", "the sequence needs 4096", "memory: ", "the sequence needs 64.0 TiB", "firmware: this machine boots with uefi, the sequence runs on bios only"},
		"bad.yaml": {"task sequence: ", "warp"},
	} {
		a := append([]string(nil), args...)
		for i := range a {
			if a[i] == filepath.Join(host, "seq.yaml") {
				a[i] = filepath.Join(host, seq)
			}
		}
		errOut.Reset()
		code := runMain(append(a, "--dry-run"), &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "requirements not met") {
			t.Errorf("%s: exit %d, want 1 with the requirements report\n%s", seq, code, errOut.String())
		}
		for _, w := range wants {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("%s: report lacks %q:\n%s", seq, w, errOut.String())
			}
		}
	}
	if code := runMain([]string{"stage", "--root", root}, &out, &errOut); code != 2 {
		t.Errorf("missing --kernel: exit %d, want 2", code)
	}
	errOut.Reset()
	if code := runMain([]string{"stage", "--root", root, "--capture-only", "--yes", "--countdown", "5m"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--yes") {
		t.Errorf("--yes with a countdown: exit %d, want 2\n%s", code, errOut.String())
	}
	// --yes alone starts at once: a capture-only run finishes without input.
	ev2 := filepath.Join(host, "events2.jsonl")
	if code := runMain([]string{"stage", "--root", root, "--capture-only", "--yes", "--json-events", ev2}, &out, &errOut); code != 0 {
		t.Errorf("--capture-only --yes: exit %d\n%s", code, errOut.String())
	}
	if b, _ := os.ReadFile(ev2); !strings.Contains(string(b), `"state":"done","data":{"bytes"`) || !strings.Contains(string(b), `"plan":["capture user state into `) {
		t.Errorf("--capture-only --yes events:\n%s", b)
	}
}
