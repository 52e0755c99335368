package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseEvent(t *testing.T) {
	for _, c := range []struct {
		line, kind, state string
		ok                bool
	}{
		{`{"event":"pe","state":"done"}`, "pe", "done", true},
		{`{"time":"x","event":"inventory","data":{"disks":[{"name":"vda"}]}}`, "inventory", "", true},
		// printk interleaved before the object
		{`[   12.3] random: crng init done{"event":"pe","state":"failed","error":"boom"}`, "pe", "failed", true},
		// trailing noise after the object
		{`{"event":"step","state":"done"}[   13.0] audit: x`, "step", "done", true},
		{`{"no_event_key":1}`, "", "", false},
		{`{"event":"pe","state":`, "", "", false},
		{`{ brace in text } {"event":"banner"}`, "banner", "", true},
		{`plain text`, "", "", false},
	} {
		e, ok := parseEvent(c.line)
		if ok != c.ok || e.Kind != c.kind || e.State != c.state {
			t.Errorf("parseEvent(%q) = %+v, %v", c.line, e, ok)
		}
		if ok && !strings.HasPrefix(string(e.Raw), "{") {
			t.Errorf("parseEvent(%q): raw %q", c.line, e.Raw)
		}
	}
}

func TestArgs(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "m.iso")
	os.WriteFile(iso, []byte("x"), 0o644)
	vars := filepath.Join(dir, "vars.fd")
	os.WriteFile(vars, []byte("vars"), 0o644)
	vm := &VM{workDir: dir, opts: Options{ISO: iso, BootFrom: "disk", BootDiskInterface: "usb", Firmware: UEFI,
		OVMFCode: vars, OVMFVars: vars, Disks: []Disk{{Size: 1 << 20, Interface: "sata"}, {Size: 2 << 20, Interface: "nvme", Snapshot: true}},
		HostFwd: []string{"tcp:127.0.0.1:2222-:22"}}}
	args, err := vm.buildArgs()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	for _, want := range []string{"-accel tcg", "-no-reboot", "-serial stdio", "-monitor none",
		"if=pflash,format=raw,unit=1,file=" + filepath.Join(dir, "OVMF_VARS.fd"),
		"qemu-xhci", "usb-storage,bus=xhci0.0,drive=boot0,bootindex=0", "file=" + iso + ",format=raw,readonly=on",
		"ahci,id=ahci0", "ide-hd,drive=disk0,bus=ahci0.0", "nvme,drive=disk1", "snapshot=on",
		"hostfwd=tcp:127.0.0.1:2222-:22", "virtio-net-pci,netdev=net0,romfile="} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q:\n%s", want, s)
		}
	}
	for i, size := range []int64{1 << 20, 2 << 20} {
		fi, err := os.Stat(filepath.Join(dir, []string{"disk0.raw", "disk1.raw"}[i]))
		if err != nil || fi.Size() != size {
			t.Errorf("blank disk %d: %v", i, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "OVMF_VARS.fd")); string(b) != "vars" {
		t.Error("no private copy of the OVMF variables")
	}

	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Firmware: "coreboot"}, "unknown firmware"},
		{Options{Firmware: UEFI, OVMFCode: "/nonexistent/OVMF_CODE.fd"}, "package ovmf"},
		{Options{Disks: []Disk{{Path: filepath.Join(dir, "missing.img")}}}, "no size"},
		{Options{Disks: []Disk{{Size: 1, Interface: "scsi-over-carrier-pigeon"}}}, "unknown disk interface"},
		{Options{ISO: filepath.Join(dir, "nope.iso")}, "ISO"},
		{Options{ISO: iso, BootFrom: "floppy"}, "unknown boot device"},
	} {
		vm := &VM{workDir: t.TempDir(), opts: c.o}
		if _, err := vm.buildArgs(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.o, err, c.want)
		}
	}
}

func TestMissingQEMU(t *testing.T) {
	_, err := Start(context.Background(), Options{Binary: "qemu-system-nonexistent"})
	if !errors.Is(err, ErrMissingHost) || !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Fatalf("got %v", err)
	}
}

// fakeQEMU is a stand-in for QEMU's serial output: a script that prints
// what a guest would and exits like QEMU does after a poweroff.
func fakeQEMU(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-qemu")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		name, script string
		is           error
		events       int
	}{
		{"done then poweroff", `printf 'SeaBIOS\r\nminint PE x\r\n[ 1.0] noise\r\n{"event":"inventory","data":{"disks":[]}}\r\n{"event":"pe","state":"done"}\r\n'; sleep 0.2; exit 0`, nil, 2},
		{"failed", `echo 'minint PE'; echo '{"event":"pe","state":"failed","error":"no disk"}'; sleep 30`, ErrGuestFailed, 1},
		{"exit without verdict", `echo 'minint PE'; echo 'Kernel panic'; exit 0`, ErrExited, 0},
		{"done but no poweroff", `echo '{"event":"pe","state":"done"}'; sleep 30`, ErrTimeout, 1},
		{"hangs", `echo 'minint PE'; sleep 30`, ErrTimeout, 0},
		{"QEMU error after done", `echo '{"event":"pe","state":"done"}'; echo 'qemu: bad' >&2; exit 1`, ErrExited, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "console.log")
			var console strings.Builder
			start := time.Now()
			res, err := Run(context.Background(), Options{Binary: fakeQEMU(t, c.script), NoNet: true,
				Timeout: 2 * time.Second, LogPath: log, Console: &lockedBuilder{b: &console}})
			if c.is == nil && err != nil || c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("got %v, want %v", err, c.is)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("Run took %s: the VM was not ended", time.Since(start))
			}
			if res != nil && len(res.Events) != c.events {
				t.Errorf("%d events, want %d: %+v", len(res.Events), c.events, res.Events)
			}
			b, _ := os.ReadFile(log)
			if len(b) == 0 && c.name != "hangs" {
				t.Error("empty console log")
			}
		})
	}
}

type lockedBuilder struct{ b *strings.Builder }

func (l *lockedBuilder) Write(p []byte) (int, error) { return l.b.Write(p) }

func TestWaitForAndKill(t *testing.T) {
	vm, err := Start(context.Background(), Options{Binary: fakeQEMU(t, `echo one; printf '\033c\033[?7l\033[2Jminint PE ready\n'; echo '{"event":"banner"}'; sleep 60`),
		NoNet: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := vm.WaitFor(context.Background(), regexp.MustCompile(`^minint PE ready$`))
	if err != nil || l.Text != "minint PE ready" {
		t.Fatalf("WaitFor: %+v %v", l, err)
	}
	if _, err := vm.WaitEvent(context.Background(), "banner", IsEvent("banner", "")); err != nil {
		t.Fatal(err)
	}
	if got := vm.Lines(); !slices.ContainsFunc(got, func(l Line) bool { return l.Text == "one" }) {
		t.Errorf("lines %+v", got)
	}
	if err := vm.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("Kill did not end the VM")
	}
	if err := vm.Wait(); err == nil {
		t.Error("a killed VM reports success")
	}
	if _, err := vm.WaitFor(context.Background(), regexp.MustCompile("never")); !errors.Is(err, ErrExited) {
		t.Errorf("WaitFor after exit: %v", err)
	}
}

func TestArgsDiskFirst(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "m.iso")
	os.WriteFile(iso, []byte("x"), 0o644)
	for _, c := range []struct {
		first      bool
		disk, isoI string
	}{{false, "bootindex=1", "bootindex=0"}, {true, "bootindex=0", "bootindex=2"}} {
		vm := &VM{workDir: t.TempDir(), opts: Options{ISO: iso, DiskFirst: c.first, Disks: []Disk{{Size: 1 << 20, Boot: true}}}}
		args, err := vm.buildArgs()
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Join(args, " ")
		if !strings.Contains(s, "virtio-blk-pci,drive=disk0,"+c.disk) || !strings.Contains(s, "ide-cd,drive=cd0,"+c.isoI) {
			t.Errorf("DiskFirst=%v: want disk %s and CD %s:\n%s", c.first, c.disk, c.isoI, s)
		}
	}
}
