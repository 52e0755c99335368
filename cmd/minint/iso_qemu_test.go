package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestISOCommand(t *testing.T) {
	for _, p := range []string{"/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("host packages missing (run scripts/setup-host.sh): %v", err)
		}
	}
	dir := t.TempDir()
	pe := filepath.Join(dir, "pe")
	os.Mkdir(pe, 0o755)
	os.WriteFile(filepath.Join(pe, "vmlinuz"), bytes.Repeat([]byte("k"), 100000), 0o644)
	os.WriteFile(filepath.Join(pe, "initramfs.cpio.gz"), bytes.Repeat([]byte("i"), 50000), 0o644)
	// pe.json as written elsewhere: paths from another directory.
	b, _ := json.Marshal(map[string]any{"kernel": "/elsewhere/vmlinuz", "initramfs": "/elsewhere/initramfs.cpio.gz", "id": "abc", "kernel_version": "6.1"})
	os.WriteFile(filepath.Join(pe, "pe.json"), b, 0o644)
	seq := filepath.Join(dir, "seq.yaml")
	os.WriteFile(seq, []byte("version: 1\nsteps:\n  - {type: run, shell: \"true\"}\n"), 0o644) // valid: iso checks it
	out := filepath.Join(dir, "m.iso")
	events := filepath.Join(dir, "events.jsonl")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"iso", "-o", out, "--pe-dir", pe, "--sequence", seq, "--add", seq + ":extra/s.yaml",
		"--label", "TEST", "--cmdline", "x=1", "--json-events", events}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("ISO: %v", err)
	}
	ev, _ := os.ReadFile(events)
	var last map[string]any
	lines := strings.Split(strings.TrimSpace(string(ev)), "\n")
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	data, _ := last["data"].(map[string]any)
	if last["event"] != "iso" || last["state"] != "done" || data["pe_id"] != "abc" || !strings.Contains(data["cmdline"].(string), "x=1") {
		t.Errorf("last event %v", last)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"iso", "--pe-dir", filepath.Join(dir, "none"), "-o", out}, 1, "minint build -o"},
		{[]string{"iso", "--pe-dir", pe, "--kernel", "/boot/x"}, 2, "--pe-dir"},
		{[]string{"iso", "--pe-dir", pe, "--add", "nocolon", "-o", out}, 2, "SRC:DEST"},
		{[]string{"iso", "--pe-dir", pe, "--label", "bad label", "-o", filepath.Join(dir, "b.iso")}, 2, "label"},
		{[]string{"qemu"}, 2, "--iso"},
		{[]string{"qemu", "--iso", out, "--firmware", "coreboot"}, 2, "bios or uefi"},
		{[]string{"qemu", "--iso", out, "--disk", ":"}, 2, "SIZE"},
		{[]string{"qemu", "--iso", out, "--disk", filepath.Join(dir, "nodisk.img")}, 2, "give a SIZE"},
		{[]string{"qemu", "--iso", out, "--disk", ":12Q"}, 2, "size"},
	} {
		var so, se bytes.Buffer
		if code := runMain(c.args, &so, &se); code != c.code || !strings.Contains(se.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, se.String(), c.code, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.iso")); err == nil {
		t.Error("a failed build left an ISO")
	}
}

func TestParseDiskFlag(t *testing.T) {
	d, err := parseDiskFlag(":64M:nvme")
	if err != nil || d.Path != "" || d.Size != 64<<20 || d.Interface != "nvme" {
		t.Fatalf("%+v %v", d, err)
	}
	d, err = parseDiskFlag(filepath.Join(t.TempDir(), "new.img") + ":1G")
	if err != nil || d.Size != 1<<30 {
		t.Fatalf("%+v %v", d, err)
	}
	// One size rule (package bytesize): KB/MB/GB are decimal, fractions
	// take a unit.
	for s, want := range map[string]int64{":8GB": 8e9, ":1.5G": 3 << 29, ":512KiB": 512 << 10, ":4096": 4096} {
		if d, err := parseDiskFlag(s); err != nil || d.Size != want {
			t.Errorf("%q: %+v %v, want %d bytes", s, d, err, want)
		}
	}
	if _, err := parseDiskFlag(":64 parsecs"); err == nil || !strings.Contains(err.Error(), `invalid size "64 parsecs"`) {
		t.Errorf("bad size: %v", err)
	}
}

// emptyInitramfs is a newc cpio archive with only its trailer: an
// initramfs that the ISO commands read as the kernel would.
var emptyInitramfs = "070701" + strings.Repeat("00000000", 11) + "0000000B" + "00000000" + "TRAILER!!!\x00\x00\x00\x00"
