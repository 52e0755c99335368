package e2e

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/qemu"
)

// refHook runs in the reference machine (VM 1) at every boot. The first
// time (no marker on its root) it makes the machine its own: a user with a
// tree of every kind of metadata in its home, a package-like tree in
// /opt/tool, a shell history and a log for generalize to drop; it records
// both trees' snapshots on the hook disk. Later boots (after the capture)
// compare the trees with those snapshots exactly and report their digests,
// and whether the history and the log are still there.
const refHook = `G=$MININT_T/guesttool
mark=/etc/minint-capture-reference
errs=
if [ ! -f $mark ]; then
  # The sample OS's busybox has no adduser: an account the long way.
  uid=$(awk -F: '$3>=1000 && $3<60000 && $3>m {m=$3} END {print (m ? m : 999) + 1}' /etc/passwd)
  echo "carol:x:$uid:$uid:Carol:/home/carol:/bin/sh" >> /etc/passwd
  echo "carol:x:$uid:" >> /etc/group
  echo 'carol:!:19000:0:99999:7:::' >> /etc/shadow
  mkdir -p /home/carol && chown $uid:$uid /home/carol && chmod 0750 /home/carol || errs="$errs home"
  mkdir -p /opt/tool/bin /opt/tool/lib /opt/tool/share/doc
  printf '#!/bin/sh\necho tool 1.0\n' > /opt/tool/bin/tool
  chmod 0755 /opt/tool/bin/tool
  ln /opt/tool/bin/tool /opt/tool/bin/tool-1.0
  head -c 70000 /dev/urandom > /opt/tool/lib/libtool.so.1.0
  ln -s libtool.so.1.0 /opt/tool/lib/libtool.so.1
  echo "a package-like tree" > /opt/tool/share/doc/README
  chmod 4755 /opt/tool/bin/tool
  $G populate /home/carol 3 || errs="$errs populate"
  echo "echo a secret typed by the engineer" > /root/.ash_history
  echo "reference machine log line" > /var/log/reference.log
  $G snapshot /home/carol $MININT_T/carol.snap || errs="$errs snapshot"
  $G snapshot /opt/tool $MININT_T/tool.snap || errs="$errs snapshot"
  touch $mark
  sync
  phase=changed
else
  phase=again
  $G snapshot /home/carol $MININT_T/carol.again.snap || errs="$errs snapshot"
  $G snapshot /opt/tool $MININT_T/tool.again.snap || errs="$errs snapshot"
fi
$G diff $MININT_T/carol.snap /home/carol > $MININT_T/carol.$phase.diff
cd=$(wc -l < $MININT_T/carol.$phase.diff)
$G diff $MININT_T/tool.snap /opt/tool > $MININT_T/tool.$phase.diff
td=$(wc -l < $MININT_T/tool.$phase.diff)
printf '{"event":"capture-ref","phase":"%s","errors":"%s","carol":"%s","tool":"%s","carol_diff":%d,"tool_diff":%d,"history":%d,"log":%d}\n' \
  $phase "$errs" "$($G digest /home/carol)" "$($G digest /opt/tool)" $cd $td \
  "$(wc -c < /root/.ash_history)" "$(wc -c < /var/log/reference.log)"
`

// cloneHook runs in the machine deployed from the captured image (VM 2):
// it snapshots the two trees onto the hook disk for the host to compare
// with the reference's (WIM keeps mtimes to 100 ns, so the exact in-guest
// diff is only reported) and says what generalize left of the history and
// the log.
const cloneHook = `G=$MININT_T/guesttool
$G snapshot /home/carol $MININT_T/carol.got
$G snapshot /opt/tool $MININT_T/tool.got
h=absent
[ -e /root/.ash_history ] && h=$(wc -c < /root/.ash_history)
l=absent
[ -e /var/log/reference.log ] && l=$(wc -c < /var/log/reference.log)
printf '{"event":"capture-clone","carol_id":"%s","history":"%s","log":"%s","marker":%s}\n' \
  "$(id -u carol 2>/dev/null)" "$h" "$l" "$([ -f /etc/minint-capture-reference ] && echo true || echo false)"
`

// TestCaptureRedeploy is the reference-image workflow of issue #8: deploy
// the sample image to VM 1 and change it (the engineer's work), boot the
// capture ISO on VM 1 (the PE finds the installed system, captures its
// generalized view and uploads it to nginx's WebDAV), deploy the captured
// WIM to a blank VM 2 and check the changes came along with a new
// identity; then boot VM 1 from its disk and check it is unchanged.
func TestCaptureRedeploy(t *testing.T) {
	t.Parallel()
	f := setup(t)
	gt := f.static(t, "./e2e/guesttool")
	www := t.TempDir()
	dav := testnginx.Start(t, www, testnginx.Options{WebDAV: true})

	// 1. The reference machine: deployed, then changed by its hook.
	iso := f.iso(t, sequence("medium:/minint/image/manifest.json", ""), f.pkg)
	disk1 := bigDisk(t, "ref.img")
	hook1 := hookDisk(t, refHook, map[string]string{"guesttool": gt})
	v := vm(t, iso, disk1, qemu.BIOS, true, hook1)
	f.waitDeployed(t, v)
	ref := osReport(t, v)
	changed := hookEvent(t, v, "capture-ref")
	t.Logf("reference: machine-id %s, host key %s; hook %s", ref.MachineID, ref.HostKey, changed)
	var rh refReport
	if err := json.Unmarshal(changed, &rh); err != nil || rh.Phase != "changed" || rh.Errors != "" || rh.History == 0 || rh.Log == 0 || len(rh.Carol) != 64 {
		t.Fatalf("reference hook %s: want phase changed without errors, with a history, a log and tree digests", changed)
	}
	if len(ref.MachineID) != 32 || len(ref.HostKey) != 64 {
		t.Fatalf("reference identity %q / %q: want a 32-digit machine-id and a host key digest", ref.MachineID, ref.HostKey)
	}
	if t.Failed() {
		return
	}

	// 2. The capture PE on the reference machine.
	url := fmt.Sprintf("http://10.0.2.2:%d/images/ref.wim", dav.Port)
	ciso := f.iso(t, "", "", "--capture", url)
	refSum := fileDigest(t, disk1)
	start := time.Now()
	v = vm(t, ciso, disk1, qemu.BIOS, false, hook1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	ev, err := v.WaitEvent(ctx, "the capture PE's verdict", func(e qemu.Event) bool {
		return e.Kind == "capture" && e.State == "done" || e.Kind == "pe" && (e.State == "failed" || e.State == "done")
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "capture" {
		t.Fatalf("capture PE: %s", ev.Raw)
	}
	select {
	case <-v.Exited():
	case <-time.After(2 * time.Minute):
		t.Error("the capture PE did not power off")
	}
	t.Logf("captured and uploaded in %s: %s", time.Since(start).Round(time.Second), ev.Msg)
	if fileDigest(t, disk1) != refSum {
		t.Error("the capture PE wrote to the reference disk")
	}
	ents, _ := os.ReadDir(filepath.Join(www, "images"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "ref.wim" {
		t.Fatalf("server holds %v: want ref.wim only (nothing half-uploaded or temporary)", names)
	}
	wimPath := filepath.Join(www, "images/ref.wim")
	checkCapturedWIM(t, f, wimPath, ref)
	if t.Failed() {
		return
	}

	// 3. The clone: the captured WIM, packaged and deployed to a blank
	// VM 2 (BIOS, like the reference), and VM 1 booted from its own disk
	// at the same time.
	pkg := filepath.Join(t.TempDir(), "pkg")
	os.MkdirAll(pkg, 0o755)
	if err := os.Link(wimPath, filepath.Join(pkg, "sample.wim")); err != nil {
		t.Fatal(err)
	}
	if _, err := run(pkg, f.minint, "package", "create", "--key", f.key, "--name", "captured-reference", pkg); err != nil {
		t.Fatal(err)
	}
	snaps := t.TempDir()
	for _, n := range []string{"carol.snap", "tool.snap"} {
		debugfsDump(t, hook1.Path, "/"+n, filepath.Join(snaps, n))
	}
	hook2 := hookDisk(t, cloneHook, map[string]string{"guesttool": gt})
	iso2 := f.iso(t, sequence("medium:/minint/image/manifest.json", ""), pkg)
	disk2 := bigDisk(t, "clone.img")
	v2 := vm(t, iso2, disk2, qemu.BIOS, true, hook2)
	v1 := vm(t, "", disk1, qemu.BIOS, true, hook1)

	// 3a. VM 1 is the reference machine as it was.
	again := waitOS(t, v1)
	ah := hookEvent(t, v1, "capture-ref")
	var rh2 refReport
	if err := json.Unmarshal(ah, &rh2); err != nil {
		t.Fatalf("reference hook after capture %s: %v", ah, err)
	}
	if again.MachineID != ref.MachineID || again.HostKey != ref.HostKey {
		t.Errorf("reference identity after capture %s / %s, before %s / %s: the capture changed the reference machine",
			again.MachineID, again.HostKey, ref.MachineID, ref.HostKey)
	}
	if again.Tree != ref.Tree {
		t.Errorf("reference system tree digest %s after capture, %s before", again.Tree, ref.Tree)
	}
	if rh2.Phase != "again" || rh2.Errors != "" || rh2.CarolDiff != 0 || rh2.ToolDiff != 0 || rh2.History != rh.History || rh2.Log != rh.Log {
		t.Errorf("reference after capture %s, before %s: want the same trees, history and log", ah, changed)
	}
	// Exactly the same trees, down to the root directories, mtimes to the
	// nanosecond and allocated blocks; only atimes may move.
	for _, n := range []string{"carol", "tool"} {
		before, after := filepath.Join(t.TempDir(), n+".snap"), filepath.Join(t.TempDir(), n+".again.snap")
		debugfsDump(t, hook1.Path, "/"+n+".snap", before)
		debugfsDump(t, hook1.Path, "/"+n+".again.snap", after)
		if d := exactDiff(readSnapshot(t, before), readSnapshot(t, after)); len(d) > 0 {
			t.Errorf("the reference's %s changed across the capture (%d differences):\n%s", n, len(d), strings.Join(d[:min(len(d), 20)], "\n"))
		}
	}

	// 3b. VM 2 is a generalized copy.
	clone := waitOS(t, v2)
	ch := hookEvent(t, v2, "capture-clone")
	t.Logf("clone: machine-id %s, host key %s; hook %s", clone.MachineID, clone.HostKey, ch)
	if clone.OS != "minint-sample" || clone.Version != "A" || clone.Hostname != "e2e-host" {
		t.Errorf("clone is %s %s named %s", clone.OS, clone.Version, clone.Hostname)
	}
	if strings.Join(clone.Users, ",") != "alice,carol" {
		t.Errorf("clone users %v: want alice (deployed) and carol (made on the reference)", clone.Users)
	}
	if clone.Tree != f.tree {
		t.Errorf("clone system tree digest %s, sample image %s", clone.Tree, f.tree)
	}
	if len(clone.MachineID) != 32 || clone.MachineID == ref.MachineID {
		t.Errorf("clone machine-id %q, reference %q: want a new one", clone.MachineID, ref.MachineID)
	}
	if len(clone.HostKey) != 64 || clone.HostKey == ref.HostKey {
		t.Errorf("clone host key %q, reference %q: want a new one", clone.HostKey, ref.HostKey)
	}
	var cr struct {
		CarolID      string `json:"carol_id"`
		History, Log string
		Marker       bool
	}
	if err := json.Unmarshal(ch, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.CarolID == "" || cr.History != "absent" || cr.Log != "0" || !cr.Marker {
		t.Errorf("clone hook %s: want carol, no shell history, an emptied log, the reference's marker file", ch)
	}
	for _, n := range []string{"carol", "tool"} {
		want := readSnapshot(t, filepath.Join(snaps, n+".snap"))
		got := filepath.Join(t.TempDir(), n+".got")
		debugfsDump(t, hook2.Path, "/"+n+".got", got)
		d := treetest.Diff(want, readSnapshot(t, got), treetest.WIMOptions())
		if len(d) > 0 {
			t.Errorf("%s on the clone differs from the reference (%d differences):\n%s", n, len(d), strings.Join(d[:min(len(d), 20)], "\n"))
		}
	}
}

// checkCapturedWIM checks the uploaded WIM with minint and with wimlib
// (the oracle), and what its XML says about the source.
func checkCapturedWIM(t *testing.T, f *fixture, p string, ref sampleOS) {
	t.Helper()
	if _, err := run(f.work, f.minint, "wim", "verify", p); err != nil {
		t.Errorf("minint wim verify: %v", err)
	}
	if out, err := exec.Command("wimlib-imagex", "verify", p).CombinedOutput(); err != nil {
		t.Errorf("wimlib-imagex verify: %v\n%s", err, out)
	}
	out, err := run(f.work, f.minint, "wim", "info", "--json", p)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Images []struct {
			Name   string
			Files  uint64
			Fields map[string]string
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Images) != 1 {
		t.Fatalf("wim info --json: %v\n%s", err, out)
	}
	img := info.Images[0]
	t.Logf("captured image %q: %d files, fields %v", img.Name, img.Files, img.Fields)
	fl := img.Fields
	want := map[string]string{"MININT/OS_ID": "minint-sample", "MININT/OS_NAME": "minint sample OS", "MININT/OS_VERSION": "A",
		"MININT/KERNELS": ref.Kernel, "MININT/GENERALIZE/MODE": "snapshot"}
	for k, v := range want {
		if fl[k] != v {
			t.Errorf("image field %s = %q, want %q", k, fl[k], v)
		}
	}
	if img.Name != "minint sample OS A" {
		t.Errorf("image name %q", img.Name)
	}
	if ct, err := time.Parse(time.RFC3339, fl["MININT/CAPTURE_TIME"]); err != nil || time.Since(ct) > time.Hour || time.Until(ct) > time.Hour {
		t.Errorf("capture time %q: want about now", fl["MININT/CAPTURE_TIME"])
	}
	rep := fl["MININT/GENERALIZE/REPORT"]
	for _, s := range []string{"/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key", "/root/.ash_history", "/var/log/reference.log"} {
		if !strings.Contains(rep, s) {
			t.Errorf("generalize report lacks %s:\n%s", s, rep)
		}
	}
	// The text form shows the same.
	if txt, err := run(f.work, f.minint, "wim", "info", p); err != nil || !strings.Contains(txt, "MININT/OS_NAME:") || !strings.Contains(txt, "minint sample OS") {
		t.Errorf("wim info: %v\n%s", err, txt)
	}
}

// waitOS waits for a sample OS report without waitDeployed's expectations
// (the captured system has two users) and for the guest to power off.
func waitOS(t *testing.T, v *qemu.VM) sampleOS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ev, err := v.WaitEvent(ctx, "a sample-os report", func(e qemu.Event) bool {
		return e.Kind == "sample-os" || (e.Kind == "pe" && e.State == "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind == "pe" {
		t.Fatalf("PE failed: %s", ev.Error)
	}
	select {
	case <-v.Exited():
	case <-time.After(3 * time.Minute):
		t.Error("the sample OS did not power off")
	}
	return osReport(t, v)
}

// osReport is the guest's (last) sample-os report.
func osReport(t *testing.T, v *qemu.VM) sampleOS {
	t.Helper()
	var s sampleOS
	var found bool
	for _, e := range v.Events() {
		if e.Kind == "sample-os" {
			found = true
			s = sampleOS{}
			if err := json.Unmarshal(e.Raw, &s); err != nil {
				t.Fatalf("sample-os line %s: %v", e.Raw, err)
			}
		}
	}
	if !found {
		t.Fatal("no sample-os report")
	}
	return s
}

// hookEvent is the guest's (last) event of kind.
func hookEvent(t *testing.T, v *qemu.VM, kind string) json.RawMessage {
	t.Helper()
	var raw json.RawMessage
	for _, e := range v.Events() {
		if e.Kind == kind {
			raw = e.Raw
		}
	}
	if raw == nil {
		t.Fatalf("the guest printed no %s event (did the test hook run?)", kind)
	}
	return raw
}

// refReport is refHook's capture-ref event.
type refReport struct {
	Phase, Errors string
	Carol, Tool   string
	CarolDiff     int `json:"carol_diff"`
	ToolDiff      int `json:"tool_diff"`
	History, Log  int
}

// exactDiff compares two snapshots of the same tree on the same disk:
// everything but atimes, the root included, allocation too.
func exactDiff(a, b treetest.Tree) []string {
	d := treetest.Diff(a, b, treetest.DiffOptions{})
	for p, x := range a.Entries {
		if y := b.Entries[p]; y != nil && x.Allocated != y.Allocated {
			d = append(d, fmt.Sprintf("%q: allocated %d != %d bytes", p, x.Allocated, y.Allocated))
		}
	}
	return d
}

// debugfsDump copies one file out of an ext4 image without mounting it.
func debugfsDump(t *testing.T, img, path, out string) {
	t.Helper()
	b, err := exec.Command("debugfs", "-R", fmt.Sprintf("dump %s %s", path, out), img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs dump %s from %s: %v\n%s", path, img, err, b)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("debugfs dump %s from %s: nothing written\n%s", path, img, b)
	}
}

func readSnapshot(t *testing.T, p string) treetest.Tree {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var tr treetest.Tree
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&tr); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return tr
}

// TestCaptureAmbiguous boots the capture PE on a machine with two
// installed systems, one on xfs and one on btrfs (whole-disk file
// systems): the PE must load those file systems' modules itself to look
// inside, then refuse to choose, listing both, and write to neither disk.
func TestCaptureAmbiguous(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tool := range []string{"mkfs.xfs", "mkfs.btrfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (xfsprogs, btrfs-progs: scripts/setup-host.sh)", tool)
		}
	}
	tree := func(id, name string) string {
		dir := t.TempDir()
		for rel, data := range map[string]string{
			"etc/os-release":           fmt.Sprintf("ID=%s\nNAME=%q\nVERSION_ID=1\n", id, name),
			"sbin/init":                "#!/bin/sh\n",
			"boot/vmlinuz-6.1.0-test":  "kernel",
			"etc/ssh/ssh_host_rsa_key": "KEY",
		} {
			p := filepath.Join(dir, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	mk := func(name string, size int64, prog string, args ...string) string {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, nil, 0o644)
		os.Truncate(p, size)
		if out, err := exec.Command(prog, append(args, p)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", prog, err, out)
		}
		return p
	}
	bimg := mk("btrfs.img", 128<<20, "mkfs.btrfs", "-q", "-L", "REF-BTRFS", "--rootdir", tree("btrfsos", "Btrfs Linux"))
	ximg := mk("xfs.img", 300<<20, "mkfs.xfs", "-q", "-L", "REF-XFS")
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", ximg, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount xfs: %v\n%s", err, out)
	}
	out, err := exec.Command("cp", "-a", tree("xfsos", "XFS Linux")+"/.", mnt).CombinedOutput()
	if uerr := exec.Command("umount", mnt).Run(); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		t.Fatalf("filling the xfs image: %v\n%s", err, out)
	}
	xsum, bsum := fileDigest(t, ximg), fileDigest(t, bimg)

	ciso := f.iso(t, "", "", "--capture", "http://10.0.2.2:9/images/never.wim")
	v := vm(t, ciso, ximg, qemu.BIOS, false, qemu.Disk{Path: bimg})
	ev := peFailure(t, v)
	t.Logf("PE stopped: %s", ev.Error)
	for _, want := range []string{"several installed systems found", "xfs", "btrfs", "XFS Linux", "Btrfs Linux", "REF-XFS", "REF-BTRFS"} {
		if !strings.Contains(ev.Error, want) {
			t.Errorf("PE error %q does not say %q", ev.Error, want)
		}
	}
	if fileDigest(t, ximg) != xsum || fileDigest(t, bimg) != bsum {
		t.Error("the capture PE wrote to a reference disk")
	}
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:64])
}
