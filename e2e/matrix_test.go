package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
)

// The device matrix boots the default PE on the NICs and storage
// controllers of real PCs and servers as QEMU emulates them. The PE is
// booted straight from its kernel and initramfs (no boot loader: the
// boot path has its own tests) with the fixture's PE.

// matrixNICs are QEMU's NIC models and the driver each needs.
var matrixNICs = []struct{ model, driver string }{
	{"e1000", "e1000"}, {"e1000e", "e1000e"}, {"rtl8139", "8139cp"}, {"vmxnet3", "vmxnet3"}, {"pcnet", "pcnet32"},
}

// matrixDisks are the storage controllers, with the transport the PE's
// inventory reports for a disk behind each, as disk selection names it too
// (diskops.Transport): a disk behind a SCSI host adapter, virtio-scsi
// included, is "scsi".
var matrixDisks = []struct{ iface, serial, transport string }{
	{"megasas", "MX-MEGASAS", "scsi"},
	{"megasas-gen2", "MX-MEGAGEN2", "scsi"},
	{"lsi53c895a", "MX-LSI", "scsi"},
	{"pvscsi", "MX-PVSCSI", "scsi"},
	{"scsi", "MX-VIRTIOSCSI", "scsi"},
	{"sata", "MX-AHCI", "sata"},
	{"nvme", "MX-NVME", "nvme"},
	{"usb", "MX-USB", "usb"},
}

// TestDeviceMatrixInventory boots one guest with every NIC model and
// every storage controller: each NIC gets its own user-mode network and
// so its own DHCP lease, and each disk is in the inventory with its
// transport.
func TestDeviceMatrixInventory(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var nics []qemu.NIC
	for _, n := range matrixNICs {
		nics = append(nics, qemu.NIC{Model: n.model})
	}
	var disks []qemu.Disk
	for _, d := range matrixDisks {
		disks = append(disks, qemu.Disk{Size: 64 << 20, Interface: d.iface, Serial: d.serial})
	}
	v := startVM(t, qemu.Options{Kernel: filepath.Join(f.peDir, "vmlinuz"), Initrd: peInitramfs(t, f),
		Append: "console=ttyS0,115200 quiet minint.done=poweroff " + harnessCmdline,
		NoNet:  true, NICs: nics, Disks: disks, Mem: "768M",
		Timeout: 6 * time.Minute, WorkDir: t.TempDir()})
	ctx := context.Background()
	if _, err := v.Verdict(ctx); err != nil {
		t.Fatal(err)
	}
	var inv map[string]any
	var leases []any
	var loaded []any
	for _, e := range v.Events() {
		switch {
		case e.Kind == "inventory":
			inv = e.Data
		case e.Kind == "step" && e.Op == "network":
			leases, _ = e.Data["leases"].([]any)
		case e.Kind == "step" && e.Op == "modules":
			loaded, _ = e.Data["loaded"].([]any)
		case e.Kind == "banner":
			// PID 1 starts with 1024/4096 open files; the PE raises both.
			if n, _ := e.Data["nofile"].(string); !strings.Contains(n, "raised to") {
				t.Errorf("banner: RLIMIT_NOFILE %q, want raised", n)
			}
		}
	}
	t.Logf("modules loaded: %v", loaded)

	// Every NIC: driven by its driver, and leased an address.
	byDriver := map[string]map[string]any{}
	nicList, _ := inv["nics"].([]any)
	for _, x := range nicList {
		n, _ := x.(map[string]any)
		byDriver[fmt.Sprint(n["driver"])] = n
	}
	leased := map[string]string{}
	for _, x := range leases {
		l, _ := x.(map[string]any)
		leased[fmt.Sprint(l["interface"])] = fmt.Sprint(l["address"])
	}
	for _, want := range matrixNICs {
		n := byDriver[want.driver]
		if n == nil {
			t.Errorf("NIC %s: no interface driven by %s in the inventory %v", want.model, want.driver, nicList)
			continue
		}
		if a := leased[fmt.Sprint(n["name"])]; a != "10.0.2.15/24" {
			t.Errorf("NIC %s (%s): lease %q, want 10.0.2.15/24 from its user-mode network", want.model, n["name"], a)
		}
	}
	if len(leases) != len(matrixNICs) {
		t.Errorf("%d leases for %d NICs: %v", len(leases), len(matrixNICs), leases)
	}

	// Every disk: listed, with the right size and transport.
	bySerial := map[string]map[string]any{}
	diskList, _ := inv["disks"].([]any)
	for _, x := range diskList {
		d, _ := x.(map[string]any)
		bySerial[fmt.Sprint(d["serial"])] = d
	}
	for _, want := range matrixDisks {
		d := bySerial[want.serial]
		if d == nil {
			t.Errorf("disk on %s (serial %s) missing from the inventory", want.iface, want.serial)
			continue
		}
		if d["transport"] != want.transport || d["size_bytes"] != float64(64<<20) {
			t.Errorf("disk on %s: transport %v, size %v; want %s, 64 MiB", want.iface, d["transport"], d["size_bytes"], want.transport)
		}
	}
	if t.Failed() {
		var got []string
		for _, x := range diskList {
			got = append(got, fmt.Sprint(x))
		}
		sort.Strings(got)
		t.Logf("inventory disks:\n%s", strings.Join(got, "\n"))
	}
}

// matrixSequence is the tests' sequence (e2e_test.go) with the target
// disk chosen by serial number among several, by minint.var.target, and
// without the final reboot (the deployed system's boot is tested
// elsewhere): the PE reports done and powers off.
func matrixSequence(manifest string) string {
	var sel strings.Builder
	for _, d := range []struct{ name, serial string }{{"megasas", "MX-MEGASAS"}, {"pvscsi", "MX-PVSCSI"}, {"nvme", "MX-NVME"}} {
		fmt.Fprintf(&sel, "  - {type: select-disk, name: select-%s, when: \"var.target == %s\", disk: {serial: %s}}\n", d.name, d.name, d.serial)
	}
	s := sequence(manifest, "")
	for old, new := range map[string]string{"  - type: select-disk\n    disk: {transport: virtio}\n": sel.String(), "  - type: reboot\n": ""} {
		if !strings.Contains(s, old) {
			panic("matrixSequence: the e2e sequence changed; update the replacement of " + old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	return s
}

// TestDeviceMatrixDeploy deploys the sample image onto a MegaRAID, a
// VMware PVSCSI and an NVMe disk: three guests at once, each with all three
// disks, the target chosen by the sequence's selection rule.
func TestDeviceMatrixDeploy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	port := nginx(t, f.work)
	dir := filepath.Join(f.work, "matrix-seq")
	os.MkdirAll(dir, 0o755)
	seq := filepath.Join(dir, "seq.yaml")
	if err := os.WriteFile(seq, []byte(matrixSequence(fmt.Sprintf("http://10.0.2.2:%d/pkg/manifest.json", port))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(dir, f.minint, "sequence", "check", seq); err != nil {
		t.Fatal(err)
	}
	if _, err := run(dir, f.minint, "package", "sign", "--key", f.key, seq); err != nil {
		t.Fatal(err)
	}
	// The NVMe guest deploys an image with 20,000 directories more
	// (issue 13.4: apply keeps directories open, PID 1 starts with a
	// 1024/4096 file limit, which the PE raises).
	manyDirs(t, f, dir)
	bigSeq := filepath.Join(dir, "many-dirs.yaml")
	if err := os.WriteFile(bigSeq, []byte(matrixSequence(fmt.Sprintf("http://10.0.2.2:%d/matrix-seq/pkg/manifest.json", port))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(dir, f.minint, "package", "sign", "--key", f.key, bigSeq); err != nil {
		t.Fatal(err)
	}
	initrd := peInitramfs(t, f)
	for _, target := range []string{"megasas", "pvscsi", "nvme"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			seqName := "seq.yaml"
			if target == "nvme" {
				seqName = "many-dirs.yaml"
			}
			v := startVM(t, qemu.Options{Kernel: filepath.Join(f.peDir, "vmlinuz"), Initrd: initrd,
				Append: fmt.Sprintf("console=ttyS0,115200 quiet minint.done=poweroff %s minint.var.target=%s minint.sequence=http://10.0.2.2:%d/matrix-seq/%s",
					harnessCmdline, target, port, seqName),
				Disks: []qemu.Disk{
					{Size: 512 << 20, Interface: "megasas", Serial: "MX-MEGASAS"},
					{Size: 512 << 20, Interface: "pvscsi", Serial: "MX-PVSCSI"},
					{Size: 512 << 20, Interface: "nvme", Serial: "MX-NVME"},
				},
				Timeout: 12 * time.Minute, WorkDir: t.TempDir()})
			res, err := v.Verdict(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range v.Events() {
				if e.Kind == "step" && e.State == "start" {
					// The larger PE's boot, for docs/benchmarks.md.
					t.Logf("QEMU start to banner %.1f s, to the first step %.1f s, PE done %.1f s (TCG, 3 guests at once)",
						res.Banner.Seconds(), e.At.Seconds(), res.Done.Seconds())
					break
				}
			}
			st := stepStates(v)
			for _, s := range []string{"select-megasas", "select-pvscsi", "select-nvme"} {
				want := "skipped"
				if s == "select-"+target {
					want = "done"
				}
				if st[s] != want {
					t.Errorf("%s: %s, want %s", s, st[s], want)
				}
			}
			for _, s := range []string{"partition-bios", "format", "mount", "fetch", "apply-image", "setup", "bootfiles"} {
				if st[s] != "done" {
					t.Errorf("step %s: %q, want done (steps %v)", s, st[s], st)
				}
			}
		})
	}
}

// manyDirs packages the sample OS plus 20,000 directories into dir/pkg.
func manyDirs(t *testing.T, f *fixture, dir string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(root, 0o755)
	if out, err := exec.Command("cp", "-a", f.rootfs+"/.", root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	for i := 0; i < 200; i++ {
		for j := 0; j < 100; j++ {
			if err := os.MkdirAll(filepath.Join(root, "srv/many", fmt.Sprintf("d%03d/e%03d", i, j)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	pkg := filepath.Join(dir, "pkg")
	os.MkdirAll(pkg, 0o755)
	if _, err := run(dir, f.minint, "wim", "capture", "--compress", "lzx", root, filepath.Join(pkg, "sample.wim")); err != nil {
		t.Fatal(err)
	}
	if _, err := run(dir, f.minint, "package", "create", "--key", f.key, "--name", "many-dirs", pkg); err != nil {
		t.Fatal(err)
	}
}

// peInitramfs is the fixture PE's initramfs.
func peInitramfs(t *testing.T, f *fixture) string {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(f.peDir, "initramfs.cpio*"))
	if len(ms) != 1 {
		t.Fatalf("fixture PE: initramfs %v", ms)
	}
	return ms[0]
}
