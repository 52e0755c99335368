package initramfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/minint/minint/internal/child"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func needE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("builds the PE with u-root (minutes when the cache is cold) and boots QEMU; set MININT_E2E=1 (make test does)")
	}
}

func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found: install %s (scripts/setup-host.sh does)", tool, pkg)
	}
}

// logf sends build progress to the test log.
func logf(t *testing.T) func(string, ...any) {
	return func(f string, a ...any) { t.Logf(f, a...) }
}

func TestBuildCachedContents(t *testing.T) {
	needE2E(t)
	ctx := context.Background()
	cfg := Config{
		Modules:     []string{"virtio_blk", "ext4", "iso9660"},
		Files:       []File{{Data: []byte("hello from the test\n"), Dest: "/etc/minint/test.txt", Mode: 0o600}},
		Compression: "zstd",
		Log:         logf(t),
	}
	out := t.TempDir()
	start := time.Now()
	pe, err := Build(ctx, cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	start = time.Now()
	pe2, err := Build(ctx, cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	t.Logf("first build %s (cached before: %v), warm rebuild %s; initramfs %.1f MiB, %d modules", first.Round(time.Millisecond), pe.Cached, warm.Round(time.Millisecond), float64(pe.InitramfsSize)/(1<<20), len(pe.Modules))
	// The ID hashes every input. In a tree others are editing, peinit's
	// sources may change between the two builds: then the IDs differ, a
	// rebuild is right and the warm target moot.
	if pe2.ID != pe.ID {
		t.Logf("inputs changed during the test (ID %s -> %s); not checking the warm rebuild", pe.ID, pe2.ID)
	} else {
		if !pe2.Cached {
			t.Errorf("second build with the same inputs not from the cache: %+v", pe2)
		}
		if warm > 10*time.Second {
			t.Errorf("warm rebuild took %s, target ≤ 10 s", warm)
		}
	}
	if pe.InitramfsSize > 30<<20 {
		t.Errorf("initramfs %d bytes, target ≤ 30 MB", pe.InitramfsSize)
	}

	ents, err := ReadArchive(pe.Initramfs)
	if err != nil {
		t.Fatalf("initramfs does not read back: %v", err)
	}
	files := map[string]Entry{}
	for _, e := range ents {
		files[e.Name] = e
	}
	var parts []string
	for _, p := range pe.Parts {
		parts = append(parts, p.Name)
	}
	if strings.Join(parts, " ") != "init tools setup modules firmware other" {
		t.Errorf("size budget parts %v", parts)
	}
	mdir := "lib/modules/" + pe.KernelVersion
	for _, name := range []string{"init", "bbin/peinit", "bbin/gosh", "bbin/ls", "bin/sh", "dev/console",
		mdir + "/" + "modules.dep", mdir + "/modules.alias", mdir + "/kernel/fs/ext4/ext4.ko", mdir + "/kernel/fs/jbd2/jbd2.ko",
		mdir + "/kernel/fs/isofs/isofs.ko", mdir + "/kernel/drivers/block/virtio_blk.ko", pathInImage, "etc/minint/test.txt"} {
		if _, ok := files[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
	if _, ok := files[mdir+"/kernel/drivers/net/virtio_net.ko"]; ok {
		t.Error("initramfs carries virtio_net, which the module list did not ask for")
	}
	if r, ok := files["etc/minint/test.txt"]; ok {
		if string(r.Data) != "hello from the test\n" || r.Mode&0o777 != 0o600 {
			t.Errorf("extra file: %q mode %o", r.Data, r.Mode&0o777)
		}
	}
	if r, ok := files[mdir+"/modules.dep"]; ok {
		b := r.Data
		if !strings.Contains(string(b), "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko") {
			t.Errorf("modules.dep in the PE:\n%s", b)
		}
	}
	// Outputs are complete files, no temporaries left beside them.
	outs, _ := os.ReadDir(out)
	for _, e := range outs {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left in the output: %s", e.Name())
		}
	}
}

// TestBootQEMU boots the default PE with a blank virtio disk, a vfat disk
// with another medium's ID and an ISO on the CD drive holding the wanted
// ID, and checks the inventory, the boot medium and the power-off.
func TestBootQEMU(t *testing.T) {
	needE2E(t)
	for tool, pkg := range map[string]string{"qemu-system-x86_64": "qemu-system-x86", "xorriso": "xorriso", "mkfs.vfat": "dosfstools", "mcopy": "mtools"} {
		needTool(t, tool, pkg)
	}
	ctx := context.Background()
	pe, err := Build(ctx, Config{Log: logf(t)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	id := fmt.Sprintf("e2e-%d", time.Now().UnixNano())

	blank := filepath.Join(dir, "blank.img")
	if err := os.WriteFile(blank, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(blank, 64<<20)

	isoTree := filepath.Join(dir, "iso")
	os.MkdirAll(filepath.Join(isoTree, "minint"), 0o755)
	os.WriteFile(filepath.Join(isoTree, "minint", "media.json"), []byte(`{"id":"`+id+`"}`), 0o644)
	iso := filepath.Join(dir, "media.iso")
	run(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", "MININT", "-o", iso, isoTree)

	fat := filepath.Join(dir, "other.img")
	os.WriteFile(fat, nil, 0o644)
	os.Truncate(fat, 16<<20)
	run(t, "mkfs.vfat", "-n", "OTHER", fat)
	other := filepath.Join(dir, "other.json")
	os.WriteFile(other, []byte(`{"id":"some-other-medium"}`), 0o644)
	run(t, "mmd", "-i", fat, "::minint")
	run(t, "mcopy", "-i", fat, other, "::minint/media.json")

	b := boot(t, pe, "minint.done=poweroff minint.media="+id,
		"-drive", "file="+blank+",if=none,id=blank,format=raw", "-device", "virtio-blk-pci,drive=blank,serial=BLANK123",
		"-drive", "file="+fat+",if=none,id=other,format=raw", "-device", "virtio-blk-pci,drive=other,serial=OTHER1",
		"-cdrom", iso, "-nic", "user,model=virtio-net-pci")
	if b.state != "done" {
		t.Fatalf("PE state %q (error %q)\n%s", b.state, b.peErr, b.console)
	}
	inventory := b.inventory
	if inventory == nil {
		t.Fatalf("no inventory event\n%s", b.console)
	}
	disks, _ := inventory["disks"].([]any)
	found := map[string]map[string]any{}
	for _, d := range disks {
		m, _ := d.(map[string]any)
		if m != nil {
			found[fmt.Sprint(m["serial"])] = m
		}
	}
	bl := found["BLANK123"]
	if bl == nil || bl["size_bytes"] != float64(64<<20) || bl["transport"] != "virtio" {
		t.Errorf("blank disk missing or wrong in inventory: %v", disks)
	}
	if found["OTHER1"] == nil {
		t.Errorf("second disk missing in inventory: %v", disks)
	}
	// QEMU's user network hands out 10.0.2.15 by DHCP.
	nics, _ := inventory["nics"].([]any)
	if len(nics) != 1 || !strings.Contains(fmt.Sprint(nics[0]), "10.0.2.15/24") || nics[0].(map[string]any)["link"] != true {
		t.Errorf("NIC with link and DHCP address 10.0.2.15/24 missing: %v", nics)
	}
	bm, _ := inventory["boot_medium"].(map[string]any)
	if bm == nil || bm["id"] != id || bm["fstype"] != "iso9660" || bm["device"] != "/dev/sr0" {
		t.Errorf("boot medium %v, want the ISO on /dev/sr0 with ID %s", bm, id)
	}
	if t.Failed() {
		t.Logf("console:\n%s", b.console)
	}
}

// TestBootQEMUFailure checks the failure path: a boot medium that is not
// there makes the PE report the error and, with minint.done=poweroff,
// power off instead of hanging or panicking.
func TestBootQEMUFailure(t *testing.T) {
	needE2E(t)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	pe, err := Build(context.Background(), Config{Log: logf(t)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := boot(t, pe, "minint.done=poweroff minint.net=0 minint.media=no-such-medium")
	if b.state != "failed" || !strings.Contains(b.peErr, "no-such-medium") {
		t.Errorf("PE state %q, error %q; want failed naming the medium\n%s", b.state, b.peErr, b.console)
	}
	if !strings.Contains(b.console, "minint PE FAILED") {
		t.Errorf("no readable failure line on the console\n%s", b.console)
	}
}

type bootResult struct {
	console      string
	inventory    map[string]any
	state, peErr string
}

// boot runs the PE in QEMU (TCG, serial console on stdout) until it powers
// off, and collects its events. It fails the test if QEMU does not exit by
// itself in time.
func boot(t *testing.T, pe *PE, cmdline string, qemuArgs ...string) bootResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"-accel", "tcg", "-m", "384", "-nographic", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-kernel", pe.Kernel, "-initrd", pe.Initramfs, "-append", "console=ttyS0,115200 minint.events=serial minint.failwait=0 " + cmdline}, qemuArgs...)
	if !slices.Contains(qemuArgs, "-nic") {
		args = append(args, "-nic", "none")
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := child.Start(cmd); err != nil { // no guest left behind by a killed test
		t.Fatal(err)
	}
	var (
		console bytes.Buffer
		banner  time.Duration
		r       bootResult
	)
	s := bufio.NewScanner(stdout)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		console.WriteString(line + "\n")
		if banner == 0 && strings.Contains(line, "minint PE") {
			banner = time.Since(start)
		}
		if strings.Contains(line, "Run /init as init process") {
			t.Logf("kernel clock at /init: %s", line)
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev struct {
			Event string         `json:"event"`
			State string         `json:"state"`
			Error string         `json:"error"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("console line starting with { is not a JSON event: %v\n%s", err, line)
			continue
		}
		switch ev.Event {
		case "inventory":
			r.inventory = ev.Data
		case "pe":
			r.state, r.peErr = ev.State, ev.Error
		}
	}
	err := cmd.Wait()
	r.console = console.String()
	t.Logf("QEMU ran %s; banner after %s (wall clock, TCG, shared CPU)", time.Since(start).Round(time.Millisecond), banner.Round(time.Millisecond))
	if err != nil || ctx.Err() != nil {
		t.Fatalf("QEMU did not power off by itself: %v (context: %v)\n%s", err, ctx.Err(), r.console)
	}
	return r
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
