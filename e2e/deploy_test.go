package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
	"github.com/minint/minint/serve"
)

// TestDeployFromISO is the new computer under SeaBIOS: blank disk, the ISO
// with the image in the CD drive; the PE writes an MBR layout, applies the
// image from the medium and reboots into the deployed OS. Then the PE
// boots again on the deployed disk: its journal says the sequence
// finished, so it redoes nothing.
func TestDeployFromISO(t *testing.T) {
	t.Parallel()
	f := setup(t)
	iso := f.iso(t, sequence("medium:/minint/image/manifest.json", ""), f.pkg)
	disk := filepath.Join(t.TempDir(), "disk.img")
	v := vm(t, iso, disk, qemu.BIOS, true)
	f.waitDeployed(t, v)
	st := stepStates(v)
	if st["partition-bios"] != "done" || st["partition-uefi"] != "skipped" || st["bootfiles"] != "done" {
		t.Errorf("steps %v: want partition-bios done, partition-uefi skipped, bootfiles done", st)
	}
	d := inspect(t, disk)
	if d.Label != "dos" || !d.MBRCode {
		t.Errorf("disk: %s table, MBR boot code %v; want dos with boot code", d.Label, d.MBRCode)
	}
	if !d.has("syslinux/ldlinux.sys") || !d.has("vmlinuz") {
		t.Errorf("boot partition lacks syslinux or the kernel: %v", d.Files)
	}

	// The deployed machine boots the PE again (a CD left in, a boot order
	// with the network first). A new computer's first boot keeps /minint
	// and its journal, which says every step finished: the PE must adopt
	// the disk without repartitioning it, redo nothing and say so.
	v2 := vm(t, iso, disk, qemu.BIOS, false)
	ev := peEnd(t, v2)
	st = stepStates(v2)
	if ev.State != "done" || st["partition-bios"] != "done" {
		t.Fatalf("PE on the deployed disk ended %s (%s), steps %v; want done, partition-bios adopting the disk", ev.State, ev.Error, st)
	}
	for _, step := range []string{"format", "fetch", "apply-image", "bootfiles", "setup"} {
		if st[step] != "skipped" {
			t.Errorf("step %s on the deployed disk: %q, want skipped (steps %v)", step, st[step], st)
		}
	}
	var adopted, said bool
	for _, l := range v2.Lines() {
		adopted = adopted || strings.Contains(l.Text, "already carries this layout and journal: partitioning skipped")
		said = said || strings.Contains(l.Text, "finished in an earlier boot") && strings.Contains(l.Text, "minint.redo=1")
	}
	if !adopted || !said {
		t.Errorf("the PE on the deployed disk did not say that it adopted the partitions (%v) and that the sequence finished in an earlier boot (%v)", adopted, said)
	}
}

// bootArea is the hex SHA-256 of an MBR disk's bytes before its second
// partition: the table, the boot code and the first partition.
func bootArea(t *testing.T, disk string) string {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	start := int64(binary.LittleEndian.Uint32(mbr[446+16+8:])) * 512
	if mbr[510] != 0x55 || mbr[511] != 0xaa || start == 0 {
		t.Fatalf("%s: no MBR with a second partition", disk)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, start)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestDeployOverHTTP takes everything from a real nginx on the host (the
// guest reaches 127.0.0.1 as 10.0.2.2) on a UEFI machine with GPT: the
// signed sequence named by minint.sequence= on the kernel command line,
// and the package. The ISO carries only the PE. The sequence names the
// host by a rule matching the VM's MAC (QEMU's first NIC is
// 52:54:00:12:34:56): waitDeployed finds e2e-host only if the PE bound it.
func TestDeployOverHTTP(t *testing.T) {
	t.Parallel()
	f := setup(t)
	port := nginx(t, f.work)
	seqDir := filepath.Join(f.work, "http-seq")
	os.MkdirAll(seqDir, 0o755)
	seq := filepath.Join(seqDir, "seq.yaml")
	// It names its host by a rule on the VM's MAC, and reports to minint
	// serve: its row must reach done.
	src := sequence(fmt.Sprintf("http://10.0.2.2:%d/pkg/manifest.json", port), "")
	src = strings.Replace(src, "    hostname: e2e-host\n", "    hostname: ${var.hostname}\n", 1)
	src = strings.Replace(src, "name: e2e\n", `name: e2e
vars:
  hostname: unmatched-${machine.mac}
rules:
  - match: {mac: "52:54:00:12:34:*"}
    vars: {hostname: e2e-host}
`, 1)
	status, statusURL, _ := statusServer(t)
	if err := os.WriteFile(seq, []byte(withStatus(src, statusURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(seqDir, f.minint, "package", "sign", "--key", f.key, seq); err != nil {
		t.Fatal(err)
	}
	iso := f.iso(t, "", "", "--cmdline", fmt.Sprintf("minint.sequence=http://10.0.2.2:%d/http-seq/seq.yaml", port))
	disk := filepath.Join(t.TempDir(), "disk.img")
	// The hook disk proves the test hook other tests act through, and
	// that the deployed OS sees its EFI variables (minint stage needs them).
	hook := hookDisk(t, `n=$(ls /sys/firmware/efi/efivars 2>/dev/null | wc -l)
printf '{"event":"hook","efivars":%d,"mid":"%s"}\n' "$n" "$(cat /etc/machine-id)"
`, nil)
	v := vm(t, iso, disk, qemu.UEFI, true, hook)
	f.waitDeployed(t, v)
	var hooked bool
	for _, e := range v.Events() {
		if e.Kind == "hook" {
			hooked = true
			var h struct {
				EFIVars int    `json:"efivars"`
				MID     string `json:"mid"`
			}
			if err := json.Unmarshal(e.Raw, &h); err != nil || h.EFIVars == 0 || len(h.MID) != 32 {
				t.Errorf("hook report %s: want EFI variables and a 32-digit machine-id", e.Raw)
			}
		}
	}
	if !hooked {
		t.Error("the deployed OS did not run the test hook")
	}
	st := stepStates(v)
	if st["partition-uefi"] != "done" || st["partition-bios"] != "skipped" || st["network"] != "done" {
		t.Errorf("steps %v: want network and partition-uefi done, partition-bios skipped", st)
	}
	d := inspect(t, disk)
	if d.Label != "gpt" || !d.has("EFI/BOOT/BOOTX64.EFI") || !d.has("vmlinuz") {
		t.Errorf("disk: %s table, ESP %v; want gpt with systemd-boot at the removable path and the kernel", d.Label, d.Files)
	}
	if r := onlyRow(t, status); r.State != "done" || r.Sequence != "e2e" || r.MAC == "" || r.IP == "" || r.StepIndex != r.StepCount || r.Error != "" {
		t.Errorf("dashboard row after the deployment: %+v; want done, with MAC and IP", r)
	}
}

// TestFailClosed: a package that does not verify (bad signature, changed
// image, truncated download, 404) stops the sequence before any boot file
// is written, and the disk is not bootable.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cases := []struct {
		name string
		// prepare returns the manifest location and the package dir to
		// put on the ISO ("" for none).
		prepare func(t *testing.T) (manifest, pkgDir string)
		want    string
	}{
		{"bad-signature", func(t *testing.T) (string, string) {
			// The same manifest signed by a key the PE does not trust.
			dir := copyPkg(t, f.pkg)
			if _, err := run(dir, f.minint, "package", "create", "--key", f.otherKey, "--name", "sample-os", dir); err != nil {
				t.Fatal(err)
			}
			return "medium:/minint/image/manifest.json", dir
		}, "signature"},
		{"wrong-sha256", func(t *testing.T) (string, string) {
			// Signed correctly, but the image changed afterwards (same size).
			dir := copyPkg(t, f.pkg)
			flipByte(t, filepath.Join(dir, "sample.wim"))
			return "medium:/minint/image/manifest.json", dir
		}, "checksum mismatch"},
		{"http-truncated", func(t *testing.T) (string, string) {
			// Signed correctly, but the server has only half the image.
			dir := copyPkg(t, f.pkg)
			wim := filepath.Join(dir, "sample.wim")
			fi, err := os.Stat(wim)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(wim, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			port := nginx(t, dir)
			return fmt.Sprintf("http://10.0.2.2:%d/manifest.json", port), ""
		}, "the manifest says"},
		{"http-404", func(t *testing.T) (string, string) {
			port := nginx(t, f.work)
			return fmt.Sprintf("http://10.0.2.2:%d/pkg/missing/manifest.json", port), ""
		}, "404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			manifest, pkgDir := c.prepare(t)
			seq := sequence(manifest, "")
			// The 404 case reports to minint serve: its row must show
			// the error and the failure log.
			var status *serve.Server
			var base string
			if c.name == "http-404" {
				var url string
				status, url, base = statusServer(t)
				seq = withStatus(seq, url)
			}
			iso := f.iso(t, seq, pkgDir)
			disk := filepath.Join(t.TempDir(), "disk.img")
			v := vm(t, iso, disk, qemu.BIOS, false)
			ev := peFailure(t, v)
			t.Logf("PE stopped: %s", ev.Error)
			if !strings.Contains(ev.Error, c.want) {
				t.Errorf("PE error %q: want %q", ev.Error, c.want)
			}
			// An image on the medium may be verified chunk by chunk as
			// apply-image reads it: that step may fail too, but nothing
			// after it may run.
			st := stepStates(v)
			if st["apply-image"] == "done" {
				t.Error("apply-image finished with an unverified package")
			}
			for _, s := range []string{"setup", "bootfiles", "reboot"} {
				if st[s] != "" {
					t.Errorf("step %s ran (%s) after the failed verification", s, st[s])
				}
			}
			d := inspect(t, disk)
			if d.MBRCode {
				t.Error("the MBR has boot code: the disk was made bootable")
			}
			for _, bad := range []string{"syslinux", "ldlinux", "vmlinuz", "initrd", "EFI", "loader"} {
				if d.has(bad) {
					t.Errorf("boot partition holds %s after a failed verification: %v", bad, d.Files)
				}
			}
			if status != nil {
				r := onlyRow(t, status)
				if r.State != "failed" || r.Step != "fetch" || !strings.Contains(r.Error, "404") || r.Log == "" {
					t.Fatalf("dashboard row after the failure: %+v; want failed in fetch, the 404 and a log", r)
				}
				if log := getText(t, base+r.Log); !strings.Contains(log, "404") || !strings.Contains(log, "FAILED") {
					t.Errorf("uploaded log lacks the failure:\n%s", log)
				}
			}
		})
	}
}

// TestUnsignedNetworkSequence: a sequence from the network runs commands in
// the PE, so one without a valid signature by the PE's key is refused
// before any step runs; the disk stays all zeros.
func TestUnsignedNetworkSequence(t *testing.T) {
	t.Parallel()
	f := setup(t)
	port := nginx(t, f.work)
	dir := filepath.Join(f.work, "unsigned-seq")
	os.MkdirAll(dir, 0o755)
	seq := filepath.Join(dir, "seq.yaml")
	if err := os.WriteFile(seq, []byte(sequence(fmt.Sprintf("http://10.0.2.2:%d/pkg/manifest.json", port), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	// Signed, but by a key the PE does not trust.
	if _, err := run(dir, f.minint, "package", "sign", "--key", f.otherKey, seq); err != nil {
		t.Fatal(err)
	}
	iso := f.iso(t, "", "", "--cmdline", fmt.Sprintf("minint.sequence=http://10.0.2.2:%d/unsigned-seq/seq.yaml", port))
	disk := filepath.Join(t.TempDir(), "disk.img")
	v := vm(t, iso, disk, qemu.BIOS, false)
	ev := peFailure(t, v)
	t.Logf("PE stopped: %s", ev.Error)
	if !strings.Contains(ev.Error, "signature") || !strings.Contains(ev.Error, "seq.yaml") {
		t.Errorf("PE error %q: want the sequence's bad signature", ev.Error)
	}
	for _, e := range v.Events() {
		if e.Kind == "sequence" || (e.Kind == "step" && e.Data["type"] != nil) {
			t.Errorf("the untrusted sequence started: %s", e.Raw)
			break
		}
	}
	if off, ok := firstNonZero(t, disk); ok {
		t.Errorf("the disk was written (non-zero byte at %d)", off)
	}
}

// TestRequirementsNotMet: a 128 MiB disk fails min-disk before anything is
// written; the disk stays all zeros.
func TestRequirementsNotMet(t *testing.T) {
	t.Parallel()
	f := setup(t)
	iso := f.iso(t, sequence("medium:/minint/image/manifest.json", "256MiB"), "")
	disk := filepath.Join(t.TempDir(), "small.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 128<<20); err != nil {
		t.Fatal(err)
	}
	v := vm(t, iso, disk, qemu.BIOS, false)
	ev := peFailure(t, v)
	t.Logf("PE stopped: %s", ev.Error)
	if !strings.Contains(ev.Error, "requirements") {
		t.Errorf("PE error %q: want the requirements step", ev.Error)
	}
	var unmet []any
	for _, e := range v.Events() {
		if e.Kind == "requirements" && e.State == "failed" {
			unmet, _ = e.Data["unmet"].([]any)
		}
	}
	if len(unmet) == 0 || !strings.Contains(fmt.Sprint(unmet), "256") {
		t.Errorf("unmet requirements %v: want the disk size", unmet)
	}
	if off, ok := firstNonZero(t, disk); ok {
		t.Errorf("the disk was written (non-zero byte at %d)", off)
	}
}

// TestPowerCutResume kills QEMU (a power cut) at three points of a
// deployment: while the image downloads from a slow server that ignores
// Range requests, while it is applied, and after apply but before the boot
// files; the next boot resumes from the journal and reaches the same
// verified end state, running again from the fetch on what the journal
// says finished (it is on the target disk: see pe's distrust).
func TestPowerCutResume(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tc := range []struct {
		name string
		http bool                  // package from nginx, sent slowly so the cut lands mid-download
		cut  func(qemu.Event) bool // the event after which the power goes
		// the cut step's state at the cut, and what the resumed boot must show
		step, atCut, resumedDone, notResumed string
		again                                string // the first finished steps it runs again
	}{
		{name: "during-fetch", http: true,
			cut: func(e qemu.Event) bool {
				return e.Kind == "progress" && strings.HasPrefix(e.Op, "fetch ") && e.State == "running" && e.Done > 0
			},
			step: "fetch", atCut: "start", resumedDone: "format", notResumed: "fetch"},
		{name: "during-apply",
			cut: func(e qemu.Event) bool {
				return e.Kind == "progress" && strings.HasPrefix(e.Op, "apply") && e.State == "start"
			},
			step: "apply-image", atCut: "start", resumedDone: "format", notResumed: "apply-image", again: "fetch"},
		{name: "after-apply",
			cut: func(e qemu.Event) bool {
				return e.Kind == "step" && e.Op == "apply-image" && e.State == "done"
			},
			step: "bootfiles", atCut: "", resumedDone: "format", notResumed: "apply-image", again: "fetch, apply-image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			manifest, pkg := "medium:/minint/image/manifest.json", f.pkg
			if tc.http {
				// 13 MB at 1 MB/s: the download takes long enough to cut.
				// The server ignores Range requests (as python3 -m
				// http.server does): mode auto deploys anyway, and the
				// resumed download starts again from byte 0.
				port := nginx(t, f.work, "limit_rate 1m;", "max_ranges 0;")
				manifest, pkg = fmt.Sprintf("http://10.0.2.2:%d/pkg/manifest.json", port), ""
			}
			iso := f.iso(t, sequence(manifest, ""), pkg)
			disk := filepath.Join(t.TempDir(), "disk.img")

			v := vm(t, iso, disk, qemu.UEFI, false)
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			if _, err := v.WaitEvent(ctx, tc.name, func(e qemu.Event) bool { return tc.cut(e) || e.Kind == "pe" }); err != nil {
				t.Fatal(err)
			}
			if tc.atCut == "start" {
				time.Sleep(500 * time.Millisecond) // into the step's work
			}
			v.Kill()
			v.Wait()
			if st := stepStates(v); st[tc.step] != tc.atCut {
				t.Fatalf("power cut at the wrong point: %s is %q, want %q (steps %v)", tc.step, st[tc.step], tc.atCut, st)
			}

			v2 := vm(t, iso, disk, qemu.UEFI, true)
			f.waitDeployed(t, v2)
			var resumed map[string]any
			for _, e := range v2.Events() {
				if e.Kind == "sequence" && e.State == "resume" {
					resumed = e.Data
				}
			}
			if resumed == nil {
				t.Fatal("the second PE boot did not resume from the journal")
			}
			done := fmt.Sprint(resumed["done"])
			t.Logf("power cut %s; second boot resumed with %s done", tc.name, done)
			if !strings.Contains(done, tc.resumedDone) || strings.Contains(done, tc.notResumed) {
				t.Errorf("resumed with done steps %s: want %s done and %s redone", done, tc.resumedDone, tc.notResumed)
			}
			if st := stepStates(v2); st[tc.notResumed] != "done" {
				t.Errorf("second boot's steps %v: want %s done", st, tc.notResumed)
			}
			if tc.again != "" {
				said := false
				for _, l := range v2.Lines() {
					said = said || strings.Contains(l.Text, ": "+tc.again) && strings.Contains(l.Text, "run again")
				}
				if !said {
					t.Errorf("the resumed PE did not say that %s run again", tc.again)
				}
			}
			if tc.http {
				said := false
				for _, l := range v2.Lines() {
					said = said || strings.Contains(l.Text, "the server ignores Range requests")
				}
				if !said {
					t.Error("the resumed PE did not say that the server ignores Range requests")
				}
			}
		})
	}
}

func copyPkg(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"manifest.json", "manifest.json.sig", "sample.wim"} {
		in, err := os.Open(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dir
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	b := make([]byte, 1)
	off := st.Size() / 2
	fh.ReadAt(b, off)
	b[0] ^= 0xFF
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func firstNonZero(t *testing.T, path string) (int64, bool) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, err := fh.Read(buf)
		if i := bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 0 }); i >= 0 {
			return off + int64(i), true
		}
		off += int64(n)
		if err != nil {
			return 0, false
		}
	}
}

// diskInfo is what the host sees on a disk image without mounting it.
type diskInfo struct {
	Label   string   // dos, gpt or "" (no table)
	MBRCode bool     // the first 440 bytes hold boot code
	Files   []string // files on the FAT partitions (mtools)
}

func (d diskInfo) has(s string) bool {
	for _, f := range d.Files {
		if strings.Contains(strings.ToLower(f), strings.ToLower(s)) {
			return true
		}
	}
	return false
}

// inspect reads the partition table with sfdisk and lists the files of
// every FAT partition with mtools (the host kernel has no vfat).
func inspect(t *testing.T, disk string) diskInfo {
	t.Helper()
	var d diskInfo
	b := make([]byte, 440)
	fh, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	fh.ReadAt(b, 0)
	fh.Close()
	d.MBRCode = bytes.ContainsFunc(b, func(r rune) bool { return r != 0 })
	out, err := exec.Command("sfdisk", "-J", disk).Output()
	if err != nil {
		return d // no partition table
	}
	var tbl struct {
		PT struct {
			Label      string `json:"label"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Start int64 `json:"start"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &tbl); err != nil {
		t.Fatalf("sfdisk -J: %v", err)
	}
	d.Label = tbl.PT.Label
	ss := tbl.PT.SectorSize
	if ss == 0 {
		ss = 512
	}
	for _, p := range tbl.PT.Partitions {
		out, err := exec.Command("mdir", "-/", "-b", "-i", fmt.Sprintf("%s@@%d", disk, p.Start*ss), "::/").Output()
		if err != nil {
			continue // not FAT
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimPrefix(strings.TrimSpace(l), "::/"); l != "" {
				d.Files = append(d.Files, l)
			}
		}
	}
	return d
}
