package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/qemu"
	"github.com/minint/minint/sign"
)

// TestReplace is the replace flow of issue 7: the old machine captures its
// user state with `minint stage --capture-only --state-store URL` into a
// real nginx WebDAV store; a new machine is deployed with the new-computer
// sequence plus pull-state, and its first boot restores the state. Bob's
// home on the new machine must be identical to the old one's (every kind
// of metadata, through guesttool's snapshot) and bob must keep his uid.
//
// Guest 1 (UEFI) also stages a refresh for real, without rebooting, to
// prove what it leaves behind: the unmounted ESP found on the root's disk,
// the PE entry on it with minint.staged=UUID=<root filesystem>, and the
// one-shot variable.
func TestReplace(t *testing.T) {
	t.Parallel()
	f := setup(t)
	www := t.TempDir()
	ng := testnginx.Start(t, www, testnginx.Options{WebDAV: true})
	storeURL := fmt.Sprintf("http://10.0.2.2:%d/states/pc1", ng.Port)
	minint, guesttool := f.static(t, "./cmd/minint"), f.static(t, "./e2e/guesttool")
	dir := t.TempDir()
	statePub, stateKey := stateKeyFiles(t, dir)
	peSeq := filepath.Join(dir, "pe-seq.yaml")
	if err := os.WriteFile(peSeq, []byte("version: 1\nname: refresh\nsteps:\n  - type: reboot\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Guest 1: the old machine.
	hook1 := hookDisk(t, fmt.Sprintf(`T=$MININT_T
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
# busybox-static has no adduser; uid 1007 is not what a new machine
# would pick for the second user, so keeping it proves the restore.
echo 'bob:x:1007:1007:Bob:/home/bob:/bin/sh' >> /etc/passwd
echo 'bob:x:1007:' >> /etc/group
echo 'bob:!:19000:0:99999:7:::' >> /etc/shadow
mkdir -m 0750 /home/bob && chown 1007:1007 /home/bob
$T/guesttool populate /home/bob 2
$T/guesttool snapshot /home/bob $T/bob.snap
$T/minint stage --capture-only --state-store %s --state-key $T/state.key --yes --json-events -
rc=$?
printf '{"event":"replace-captured","rc":%%d,"bob_uid":%%d}\n' $rc "$(id -u bob)"
$T/minint stage --kernel /boot/vmlinuz-* --initramfs /boot/initrd.img-* --sequence $T/pe-seq.yaml --no-reboot --yes --json-events -
rc=$?
os=0
[ -e /sys/firmware/efi/efivars/LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f ] && os=1
mounted=$(grep -c vfat /proc/mounts)
printf '{"event":"replace-staged","rc":%%d,"oneshot":%%d,"vfat_mounts":%%d}\n' $rc $os $mounted
sync
`, storeURL), map[string]string{"minint": minint, "guesttool": guesttool, "pe-seq.yaml": peSeq, "state.key": stateKey})
	disk1 := bigDisk(t, "old.img")
	v1 := vm(t, f.iso(t, sequence("medium:/minint/image/manifest.json", ""), f.pkg), disk1, qemu.UEFI, true, hook1)
	ev := replaceWaitHook(t, v1, "replace-staged", 10*time.Minute)
	var captured struct {
		RC     int `json:"rc"`
		BobUID int `json:"bob_uid"`
	}
	for _, e := range v1.Events() {
		if e.Kind == "replace-captured" {
			json.Unmarshal(e.Raw, &captured)
		}
	}
	if captured.RC != 0 || captured.BobUID != 1007 {
		t.Fatalf("capture in guest 1: %+v; events %s", captured, replaceEvents(v1, "stage"))
	}
	var staged struct {
		RC         int `json:"rc"`
		OneShot    int `json:"oneshot"`
		VFATMounts int `json:"vfat_mounts"`
	}
	json.Unmarshal(ev.Raw, &staged)
	if staged.RC != 0 || staged.OneShot != 1 || staged.VFATMounts != 0 {
		t.Errorf("refresh staging in guest 1: %s (want rc 0, the one-shot variable set, the ESP unmounted again)", ev.Raw)
	}
	replaceWaitExit(t, v1)
	replaceCheckESP(t, disk1)
	snap := filepath.Join(dir, "bob.snap")
	replaceDump(t, hook1.Path, "/bob.snap", snap)
	if _, err := os.Stat(filepath.Join(www, "states/pc1/index")); err != nil {
		t.Fatalf("the store on nginx has no index after the capture: %v", err)
	}

	// Guest 2: a blank new machine; the PE pulls the state, the first boot
	// restores it.
	seq := sequence("medium:/minint/image/manifest.json", "")
	seq = strings.Replace(seq, "  - type: setup\n", fmt.Sprintf("  - type: pull-state\n    from: %s\n    keys: [%q]\n  - type: setup\n", storeURL, readLine(t, statePub)), 1)
	seq = strings.Replace(seq, "    hostname: e2e-host\n", "    hostname: e2e-host\n    restore-state: {log-dir: /var/log/minint}\n", 1)
	hook2 := hookDisk(t, `T=$MININT_T
$T/guesttool diff $T/bob.snap /home/bob > $T/diff.txt 2>&1
rc=$?
head -n 40 $T/diff.txt
printf '{"event":"replace-restored","diff_rc":%d,"diff_lines":%d,"bob_uid":"%s","staging_left":%d,"setup_ok":%d}\n' $rc "$(grep -c . $T/diff.txt)" "$(id -u bob)" "$(ls -d /minint 2>/dev/null | wc -l)" "$(grep -c '"ok": *true' /var/log/minint/setup-result.json)"
$T/minint stage --kernel /boot/vmlinuz-* --initramfs /boot/initrd.img-* --sequence $T/pe-seq.yaml --no-reboot --yes --json-events -
printf '{"event":"replace-bios-staged","rc":%d,"vfat_mounts":%d}\n' $? "$(grep -c vfat /proc/mounts)"
sync
`, map[string]string{"guesttool": guesttool, "bob.snap": snap, "minint": minint, "pe-seq.yaml": peSeq})
	disk2 := bigDisk(t, "new.img")
	iso2 := f.iso(t, seq, f.pkg)
	v2 := vm(t, iso2, disk2, qemu.BIOS, true, hook2)
	replaceWaitHook(t, v2, "replace-bios-staged", 10*time.Minute)
	var restoredEv, biosEv qemu.Event
	for _, e := range v2.Events() {
		switch e.Kind {
		case "replace-restored":
			restoredEv = e
		case "replace-bios-staged":
			biosEv = e
		}
	}
	if st := stepStates(v2); st["pull-state"] != "done" {
		t.Errorf("steps %v: want pull-state done", st)
	}
	var restored struct {
		DiffRC      int    `json:"diff_rc"`
		DiffLines   int    `json:"diff_lines"`
		BobUID      string `json:"bob_uid"`
		StagingLeft int    `json:"staging_left"`
		SetupOK     int    `json:"setup_ok"`
	}
	if err := json.Unmarshal(restoredEv.Raw, &restored); err != nil {
		t.Fatalf("replace-restored event %s: %v", restoredEv.Raw, err)
	}
	if restored.DiffRC != 0 || restored.DiffLines != 0 {
		t.Errorf("bob's home on the new machine differs from the old one (%d lines, exit %d): see the console", restored.DiffLines, restored.DiffRC)
	}
	if restored.BobUID != fmt.Sprint(captured.BobUID) {
		t.Errorf("bob's uid on the new machine %q, on the old one %d", restored.BobUID, captured.BobUID)
	}
	if restored.StagingLeft != 0 {
		t.Error("/minint is still there after a successful restore")
	}
	// Setup moved its result to the log folder when it removed /minint.
	if restored.SetupOK != 1 {
		t.Errorf("first-boot setup result in /var/log/minint: not ok (%s)", restoredEv.Raw)
	}
	for _, e := range v2.Events() {
		if e.Kind == "sample-os" {
			var s sampleOS
			json.Unmarshal(e.Raw, &s)
			if strings.Join(s.Users, ",") != "alice,bob" {
				t.Errorf("new machine: users %v, want alice,bob", s.Users)
			}
		}
	}
	replaceWaitExit(t, v2)
	// The same machine staged a refresh on BIOS: the PE on its syslinux
	// boot partition and syslinux's boot-once armed.
	var bios struct {
		RC         int `json:"rc"`
		VFATMounts int `json:"vfat_mounts"`
	}
	json.Unmarshal(biosEv.Raw, &bios)
	if bios.RC != 0 || bios.VFATMounts != 0 {
		t.Errorf("refresh staging on BIOS: %s (want rc 0 and the boot partition unmounted again); stage events:\n%s", biosEv.Raw, replaceEvents(v2, "stage"))
	}
	replaceCheckSyslinux(t, disk2)

	// The new machine boots the PE again (the CD left in, or the
	// network first). Its first boot removed /minint, journal included,
	// since it restored a state: partition must see the installed system
	// and refuse before anything is written.
	before := bootArea(t, disk2)
	v3 := vm(t, iso2, disk2, qemu.BIOS, false)
	end := peEnd(t, v3)
	if end.State != "failed" || !strings.Contains(end.Error, "refusing to partition a disk that holds a system deployed before") ||
		!strings.Contains(end.Error, "minint sample OS") || !strings.Contains(end.Error, "minint.redo=1") {
		t.Errorf("PE on the deployed disk ended %s (%s); want failed, refusing to partition the disk with the minint sample OS and naming minint.redo=1", end.State, end.Error)
	}
	if st := stepStates(v3); st["partition-bios"] != "failed" || st["format"] != "" || st["pull-state"] != "" || st["apply-image"] != "" {
		t.Errorf("steps on the deployed disk %v: want partition-bios failed and nothing after it started", st)
	}
	v3.Kill()
	v3.Wait()
	if bootArea(t, disk2) != before {
		t.Error("the refused PE changed the partition table, the boot code or the boot partition")
	}
}

// replaceWaitHook waits for the hook's event of this kind, failing early when
// the PE fails.
func replaceWaitHook(t *testing.T, v *qemu.VM, kind string, d time.Duration) qemu.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ev, err := v.WaitEvent(ctx, "the test hook's "+kind+" event", func(e qemu.Event) bool {
		return e.Kind == kind || (e.Kind == "pe" && e.State == "failed")
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind == "pe" {
		t.Fatalf("PE failed: %s", ev.Error)
	}
	return ev
}

func replaceWaitExit(t *testing.T, v *qemu.VM) {
	t.Helper()
	select {
	case <-v.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatal("the guest did not power off after its test hook")
	}
}

// replaceEvents lists the events of one kind, for failure messages.
func replaceEvents(v *qemu.VM, kind string) string {
	var s []string
	for _, e := range v.Events() {
		if e.Kind == kind {
			s = append(s, string(e.Raw))
		}
	}
	return strings.Join(s, "\n")
}

func replaceDump(t *testing.T, img, path, out string) {
	t.Helper()
	if b, err := exec.Command("debugfs", "-R", "dump "+path+" "+out, img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs dump %s: %v\n%s", path, err, b)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("%s from %s: %v (not written by the guest?)", path, img, err)
	}
}

// replaceCheckESP reads the guest's disk after `minint stage`: the PE's
// loader entry on the ESP must name the root filesystem's UUID in
// minint.staged=, and the PE files must be there.
func replaceCheckESP(t *testing.T, disk string) {
	t.Helper()
	fh, tbl, err := guestTable(t, disk)
	if err != nil || tbl == nil {
		t.Fatalf("guest disk partition table: %v", err)
	}
	var esp, root *diskops.PartitionInfo
	for i, p := range tbl.Partitions {
		switch p.TypeName {
		case "esp":
			esp = &tbl.Partitions[i]
		case "linux":
			root = &tbl.Partitions[i]
		}
	}
	if esp == nil || root == nil {
		t.Fatalf("guest disk: no ESP and root partition in %+v", tbl.Partitions)
	}
	rfs := diskops.ProbeFilesystem(fh, root.Start, root.Size)
	if rfs == nil || rfs.UUID == "" {
		t.Fatal("guest root partition: no filesystem UUID")
	}
	img := fmt.Sprintf("%s@@%d", disk, esp.Start)
	out, err := exec.Command("mtype", "-i", img, "::/loader/entries/minint-pe.conf").CombinedOutput()
	if err != nil {
		t.Fatalf("mtype the PE's loader entry: %v\n%s", err, out)
	}
	if want := "minint.staged=UUID=" + rfs.UUID; !strings.Contains(string(out), want) {
		t.Errorf("PE loader entry lacks %s:\n%s", want, out)
	}
	out, err = exec.Command("mdir", "-b", "-i", img, "::/minint-pe").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "vmlinuz") || !strings.Contains(string(out), "initramfs.img") {
		t.Errorf("PE files on the ESP: %v\n%s", err, out)
	}
}

// replaceCheckSyslinux reads a BIOS guest's disk after `minint stage`:
// syslinux.cfg on the boot partition keeps its DEFAULT and gained the PE's
// label with minint.staged=UUID=<root filesystem>, and both copies of
// syslinux's auxiliary data vector at the end of ldlinux.sys hold the
// boot-once record for that label.
func replaceCheckSyslinux(t *testing.T, disk string) {
	t.Helper()
	fh, tbl, err := guestTable(t, disk)
	if err != nil || tbl == nil || tbl.Type != "mbr" || len(tbl.Partitions) < 2 {
		t.Fatalf("BIOS guest disk: table %+v, %v", tbl, err)
	}
	boot, root := tbl.Partitions[0], tbl.Partitions[1]
	rfs := diskops.ProbeFilesystem(fh, root.Start, root.Size)
	if rfs == nil || rfs.UUID == "" {
		t.Fatal("BIOS guest root partition: no filesystem UUID")
	}
	img := fmt.Sprintf("%s@@%d", disk, boot.Start)
	cfg, err := exec.Command("mtype", "-i", img, "::/syslinux/syslinux.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("mtype syslinux.cfg: %v\n%s", err, cfg)
	}
	c := string(cfg)
	if !strings.HasPrefix(c, "DEFAULT ") || strings.HasPrefix(c, "DEFAULT minint-pe") || strings.Count(c, "LABEL minint-pe") != 1 ||
		!strings.Contains(c, "APPEND minint.done=reboot minint.staged=UUID="+rfs.UUID+"\n") {
		t.Errorf("syslinux.cfg after stage: want the old DEFAULT and one minint-pe label with minint.staged=UUID=%s:\n%s", rfs.UUID, c)
	}
	out, err := exec.Command("mdir", "-b", "-i", img, "::/minint-pe").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "vmlinuz") || !strings.Contains(string(out), "initramfs.img") {
		t.Errorf("PE files on the boot partition: %v\n%s", err, out)
	}
	ldl := filepath.Join(t.TempDir(), "ldlinux.sys")
	if out, err := exec.Command("mcopy", "-i", img, "::/syslinux/ldlinux.sys", ldl).CombinedOutput(); err != nil {
		t.Fatalf("mcopy ldlinux.sys: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(ldl)
	if len(b) < 1024 {
		t.Fatalf("ldlinux.sys is %d bytes", len(b))
	}
	for i, adv := range [][]byte{b[len(b)-1024 : len(b)-512], b[len(b)-512:]} {
		// ADV: magic, checksum, records (tag, length, bytes), magic.
		if binary.LittleEndian.Uint32(adv) != 0x5a2d2fa5 || binary.LittleEndian.Uint32(adv[508:]) != 0xdd28bf64 {
			t.Errorf("ADV copy %d: bad magic", i)
			continue
		}
		var once string
		for p := 8; p+2 <= 508 && adv[p] != 0; p += 2 + int(adv[p+1]) {
			if adv[p] == 1 {
				once = string(adv[p+2 : p+2+int(adv[p+1])])
			}
		}
		if once != "minint-pe" {
			t.Errorf("ADV copy %d: boot-once %q, want minint-pe", i, once)
		}
	}
}

// TestReplaceIncompleteStore: a store missing one object, or whose index
// is gone (what an interrupted push leaves), is refused by pull with an
// error naming what is missing, and leaves nothing a restore would
// accept. The same netstore.Pull runs in the PE's pull-state step.
func TestReplaceIncompleteStore(t *testing.T) {
	t.Parallel()
	f := setup(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: stage captures every user's files")
	}
	root, www := t.TempDir(), t.TempDir()
	for p, c := range map[string]string{
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
		"etc/group":           "root:x:0:\nbob:x:1001:\n",
		"home/bob/a.txt":      "alpha\n",
		"home/bob/b/c.txt":    "charlie\n",
		"home/bob/b/big.data": strings.Repeat("minint ", 100000),
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	ng := testnginx.Start(t, www, testnginx.Options{WebDAV: true})
	url := ng.URL + "/states/pc9"
	pub, key := stateKeyFiles(t, t.TempDir())
	if _, err := run(root, f.minint, "stage", "--root", root, "--capture-only", "--state-store", url, "--state-key", key, "--yes"); err != nil {
		t.Fatal(err)
	}
	var objs []string
	filepath.WalkDir(filepath.Join(www, "states/pc9/objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			objs = append(objs, p)
		}
		return nil
	})
	if len(objs) < 3 {
		t.Fatalf("store objects %v, want one per distinct file", objs)
	}
	// The complete store pulls.
	if _, err := run(root, f.minint, "state", "pull", "--key", pub, url, filepath.Join(t.TempDir(), "ok")); err != nil {
		t.Fatal(err)
	}
	// One object gone.
	if err := os.Remove(objs[1]); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "state")
	_, err := run(root, f.minint, "state", "pull", "--key", pub, url, local)
	if err == nil || !strings.Contains(err.Error(), "object "+filepath.Base(objs[1])+" is missing") {
		t.Fatalf("pull of a store missing an object: %v", err)
	}
	if _, err := os.Stat(filepath.Join(local, "index")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused pull left an index: %v", err)
	}
	target := t.TempDir()
	for _, p := range []string{"etc/passwd", "etc/group"} {
		os.MkdirAll(filepath.Join(target, "etc"), 0o755)
		b, _ := os.ReadFile(filepath.Join(root, p))
		os.WriteFile(filepath.Join(target, p), b, 0o644)
	}
	if _, err := run(root, f.minint, "state", "restore", "--root", target, "--key", pub, local); err == nil || !strings.Contains(err.Error(), "index") {
		t.Errorf("restore of the store of a refused pull: %v, want a refusal naming the missing index", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(target, "home")); len(ents) != 0 {
		t.Errorf("something was restored: %v", ents)
	}
	// An interrupted push deletes the old index first and writes the new
	// one last: a store without an index is refused too.
	if err := os.Remove(filepath.Join(www, "states/pc9/index")); err != nil {
		t.Fatal(err)
	}
	_, err = run(root, f.minint, "state", "pull", "--key", pub, url, filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "has no index") {
		t.Fatalf("pull of a store without index: %v", err)
	}
}

// stateKeyFiles writes a state key pair (as minint keygen does) into dir
// and returns the .pub and .key paths.
func stateKeyFiles(t *testing.T, dir string) (pub, key string) {
	t.Helper()
	pubB, keyB, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, key = filepath.Join(dir, "state.pub"), filepath.Join(dir, "state.key")
	if err := os.WriteFile(pub, pubB, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyB, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub, key
}

// readLine is a one-line file's content without its newline.
func readLine(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
