package qemu

import (
	"context"
	"errors"
	"fmt"
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
	for _, want := range []string{"-accel tcg", "-m 512M", "-no-reboot", "-serial stdio", "-monitor none",
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
	// Memory is read by package bytesize's rule, and handed to QEMU in MiB.
	for mem, want := range map[string]string{"1G": "1024M", "768MiB": "768M", "2048": "", "1.5G": "1536M"} {
		vm := &VM{workDir: t.TempDir(), opts: Options{Mem: mem}}
		args, err := vm.buildArgs()
		if got := strings.Join(args, " "); want == "" && err == nil || want != "" && (err != nil || !strings.Contains(got, "-m "+want+" ")) {
			t.Errorf("Mem %q: %v %s; want -m %s", mem, err, got, want)
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
		{Options{Mem: "lots"}, `memory: invalid size "lots"`},
		{Options{Mem: "1GB"}, "memory 1GB (1000000000 bytes): want a whole number of MiB"},
		{Options{SecureBoot: SecureBootMicrosoft}, "needs UEFI"},
		{Options{Firmware: UEFI, SecureBoot: "vendor"}, "unknown Secure Boot keys"},
		{Options{Firmware: UEFI, SecureBoot: SecureBootSnakeoil, OVMFVars: "/nonexistent/VARS.fd"}, "package ovmf"},
	} {
		vm := &VM{workDir: t.TempDir(), opts: c.o}
		if _, err := vm.buildArgs(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.o, err, c.want)
		}
	}
}

// TestSecureBootArgs: Debian's Secure Boot OVMF needs SMM, on a q35
// machine, with the flash writable from SMM only.
func TestSecureBootArgs(t *testing.T) {
	dir := t.TempDir()
	code, vars := filepath.Join(dir, "code.fd"), filepath.Join(dir, "vars.ms.fd")
	os.WriteFile(code, []byte("code"), 0o644)
	os.WriteFile(vars, []byte("ms vars"), 0o644)
	vm := &VM{workDir: dir, opts: Options{Firmware: UEFI, SecureBoot: SecureBootMicrosoft, OVMFCode: code, OVMFVars: vars, NoNet: true}}
	args, err := vm.buildArgs()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	for _, want := range []string{"-machine q35,smm=on", "-global driver=cfi.pflash01,property=secure,value=on",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + code} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q:\n%s", want, s)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "OVMF_VARS.fd")); string(b) != "ms vars" {
		t.Error("the guest does not get its own copy of the Secure Boot variables")
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

func TestFrameScanner(t *testing.T) {
	stream := []byte("boot noise\r\n\x1b[Hminint PE x\x1b[K\r\n  step one\x1b[K\x1b[J{\"event\":\"pe\"}\r\n\x1b[H\x1b[1mtwo\x1b[0m\x1b[K\x1b[J")
	// Any cut of the stream gives the same frames.
	for cut := 0; cut < len(stream); cut++ {
		var f frameScanner
		got := append(f.feed(stream[:cut]), f.feed(stream[cut:])...)
		if len(got) != 2 {
			t.Fatalf("cut at %d: %d frames", cut, len(got))
		}
		if l := frameLines(got[0]); !slices.Equal(l, []string{"minint PE x", "  step one"}) {
			t.Errorf("cut at %d: frame 1 %q", cut, l)
		}
		if l := frameLines(got[1]); !slices.Equal(l, []string{"two"}) {
			t.Errorf("cut at %d: frame 2 %q", cut, l)
		}
	}
}

func TestDecodePPM(t *testing.T) {
	ppm := append([]byte("P6\n# QEMU\n2 1\n255\n"), 255, 0, 0, 0, 0, 255)
	img, err := DecodePPM(ppm)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _, _ := img.At(0, 0).RGBA(); r != 0xffff {
		t.Errorf("pixel 0 %v", img.At(0, 0))
	}
	if _, _, b, _ := img.At(1, 0).RGBA(); b != 0xffff {
		t.Errorf("pixel 1 %v", img.At(1, 0))
	}
	for _, bad := range [][]byte{nil, []byte("P3\n1 1\n255\n"), []byte("P6\n2 2\n255\n\x00"), []byte("P6\n99999 1\n255\n")} {
		if _, err := DecodePPM(bad); err == nil {
			t.Errorf("DecodePPM(%q) accepted", bad)
		}
	}
}

func TestArgsDevices(t *testing.T) {
	dir := t.TempDir()
	var disks []Disk
	for _, iface := range []string{"megasas", "megasas", "megasas-gen2", "lsi53c895a", "pvscsi", "scsi", "sata", "nvme", "usb", "mptsas1068"} {
		disks = append(disks, Disk{Size: 1 << 20, Interface: iface, Serial: "S-" + iface})
	}
	vm := &VM{workDir: dir, opts: Options{Disks: disks, Screen: true,
		NICs: []NIC{{Model: "e1000"}, {Model: "rtl8139", MAC: "52:54:00:00:00:02"}, {Model: "vmxnet3", Tap: "tap-x1"}}}}
	args, err := vm.buildArgs()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(args, " ")
	for _, want := range []string{
		"megasas,id=megasas0", "scsi-hd,bus=megasas0.0,scsi-id=0,lun=0,drive=disk0,serial=S-megasas", "scsi-hd,bus=megasas0.0,scsi-id=1,lun=0,drive=disk1",
		"megasas-gen2,id=megasasgen20", "lsi53c895a,id=lsi53c895a0", "pvscsi,id=pvscsi0", "virtio-scsi-pci,id=scsi0", "scsi-hd,bus=scsi0.0",
		"mptsas1068,id=mptsas10680", "nvme,drive=disk7,serial=S-nvme", "usb-storage,bus=xhci0.0,drive=disk8,serial=S-usb",
		"-netdev user,id=nic1 -device e1000,netdev=nic1,romfile=", "rtl8139,netdev=nic2,romfile=,mac=52:54:00:00:00:02",
		"tap,id=nic3,ifname=tap-x1,script=no,downscript=no", "-device VGA", "-display none", "-qmp unix:" + filepath.Join(dir, "qmp.sock"),
	} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "id=megasas0") != 1 {
		t.Errorf("the MegaRAID adapter added twice:\n%s", s)
	}
	if strings.Contains(s, "-nographic") {
		t.Error("-nographic with a screen")
	}
}

func TestVerdictFromLines(t *testing.T) {
	for _, c := range []struct {
		script string
		is     error
	}{
		{`printf 'minint PE x\r\nminint PE: done\r\n'; exit 0`, nil},
		{`printf 'minint PE x\r\nminint PE FAILED: no disk\r\n'; sleep 30`, ErrGuestFailed},
	} {
		_, err := Run(context.Background(), Options{Binary: fakeQEMU(t, c.script), Timeout: 10 * time.Second})
		if !errors.Is(err, c.is) && !(c.is == nil && err == nil) {
			t.Errorf("%s: %v, want %v", c.script, err, c.is)
		}
		if c.is != nil && !strings.Contains(fmt.Sprint(err), "no disk") {
			t.Errorf("the failure does not say why: %v", err)
		}
	}
}
