package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/qemu"
)

// imageB is the second sample OS (variant B) packaged with the fixture's
// key: what a refresh replaces image A with.
type imageB struct {
	pkg, tree string
}

var (
	bOnce sync.Once
	bImg  *imageB
	bErr  error
)

// buildB makes (once per test binary; the root is cached like A's) the
// sample root of variant B, captures and signs it.
func (f *fixture) buildB(t *testing.T) *imageB {
	t.Helper()
	bOnce.Do(func() {
		script, err := os.ReadFile(filepath.Join(f.repo, "scripts/make-sample-rootfs.sh"))
		if err != nil {
			bErr = err
			return
		}
		kver, _ := os.ReadFile("/proc/sys/kernel/osrelease")
		vmlinuz, _ := filepath.Glob("/boot/vmlinuz-*")
		h := sha256.Sum256([]byte(fmt.Sprintf("%s\n%s\n%v\nB", script, kver, vmlinuz)))
		root := filepath.Join(f.cache, "e2e", "rootfs-B-"+hex.EncodeToString(h[:8]))
		if _, err := os.Stat(filepath.Join(root, "etc/minint-sample/tree-digest.sh")); err != nil {
			tmp := root + ".tmp"
			os.RemoveAll(tmp)
			if _, err := run(f.repo, "bash", "scripts/make-sample-rootfs.sh", tmp, "B"); err != nil {
				bErr = err
				return
			}
			if bErr = os.Rename(tmp, root); bErr != nil {
				return
			}
		}
		out, err := run(f.repo, filepath.Join(root, "etc/minint-sample/tree-digest.sh"), root)
		if err != nil {
			bErr = err
			return
		}
		b := &imageB{pkg: filepath.Join(f.work, "pkgB"), tree: strings.TrimSpace(out)}
		os.MkdirAll(b.pkg, 0o755)
		if _, bErr = run(f.work, f.minint, "wim", "capture", "--compress", "lzx", root, filepath.Join(b.pkg, "sample.wim")); bErr != nil {
			return
		}
		if _, bErr = run(f.work, f.minint, "package", "create", "--key", f.key, "--name", "sample-os-B", b.pkg); bErr != nil {
			return
		}
		bImg = b
	})
	if bErr != nil {
		t.Fatal(bErr)
	}
	if bImg.tree == f.tree {
		t.Fatal("images A and B have the same tree digest: the refresh could not be told from no refresh")
	}
	return bImg
}

// refreshSequence is the PE's sequence for an in-place refresh (staged by
// `minint stage`, read by the PE from /minint/pe/sequence.yaml).
func refreshSequence(manifest, firmware string) string {
	return fmt.Sprintf(`version: 1
name: e2e-refresh
steps:
  - type: requirements
    min-memory: 256MiB
    firmware: [%s]
  - type: mount
    existing: true
  - type: capture-state
  - type: fetch
    manifest: %s
  - type: clean
  - type: apply-image
  - type: setup
    hostname: e2e-host
    # where the sample OS looks for setup's result once /minint is gone
    restore-state: {log-dir: /var/lib/minint}
  - type: bootfiles
    cmdline: console=ttyS0
  - type: reboot
`, firmware, manifest)
}

// refreshHook is the hook the sample OS runs at every boot; $T/phase (on
// the hook disk, which no refresh touches) says where the test is:
//
//	0 on A: create users and files, snapshot them, stage the refresh named
//	  in $T/first (bad.yaml: its package URL is missing; or good.yaml)
//	  and reboot;
//	1 back on A (the PE failed before changing anything): compare the
//	  files with the snapshot, then stage the real refresh (good.yaml);
//	  on B: compare again, report.
const refreshHook = `T=$MININT_T
phase=$(cat $T/phase 2>/dev/null || echo 0)
. /etc/os-release
report() { # users' homes against the snapshots of phase 0
  ra=0; rb=0
  $T/guesttool diff $T/alice.snap /home/alice > $T/diff-alice-$VERSION_ID.txt 2>&1 || ra=$?
  $T/guesttool diff $T/bob.snap /home/bob > $T/diff-bob-$VERSION_ID.txt 2>&1 || rb=$?
  head -n 20 $T/diff-alice-$VERSION_ID.txt $T/diff-bob-$VERSION_ID.txt
  printf '{"event":"%s","version":"%s","diff_alice":%d,"diff_bob":%d,"alice_uid":"%s","bob_uid":"%s","from_a":%d,"staging":"%s","logs":%d,"log_files":"%s"}\n' \
    "$1" "$VERSION_ID" $ra $rb "$(id -u alice)" "$(id -u bob)" "$(ls /opt/from-a 2>/dev/null | wc -l)" \
    "$(ls -A /minint 2>/dev/null | tr '\n' ' ')" "$(ls /var/lib/minint 2>/dev/null | wc -l)" "$(ls /var/lib/minint 2>/dev/null | tr '\n' ' ')"
}
stage() {
  printf '{"event":"refresh-stage","seq":"%s"}\n' "$1"
  $T/minint stage --kernel $T/vmlinuz --initramfs $T/initramfs --sequence $T/$1 \
    --cmdline "console=ttyS0 minint.done=reboot minint.events=serial minint.failwait=0" --yes --json-events -
  printf '{"event":"refresh-stage-failed","rc":%d}\n' $?
}
if [ "$phase" = 0 ]; then
  # busybox-static has no adduser: an account is three lines and a home.
  echo 'bob:x:1001:1001:Bob:/home/bob:/bin/sh' >> /etc/passwd
  echo 'bob:x:1001:' >> /etc/group
  echo 'bob:!:19000:0:99999:7:::' >> /etc/shadow
  mkdir -p /home/bob && chown 1001:1001 /home/bob && chmod 750 /home/bob
  $T/guesttool populate /home/alice 1 && $T/guesttool populate /home/bob 2 || echo '{"event":"refresh-populate-failed"}'
  dd if=/dev/urandom of=/home/alice/big.bin bs=1M count=24 2>/dev/null
  chown alice /home/alice/big.bin
  mkdir -p /opt && echo "only in image A" > /opt/from-a
  $T/guesttool snapshot /home/alice $T/alice.snap
  $T/guesttool snapshot /home/bob $T/bob.snap
  printf '{"event":"refresh-populated","alice_uid":"%s","bob_uid":"%s"}\n' "$(id -u alice)" "$(id -u bob)"
  echo 1 > $T/phase; sync
  stage $(cat $T/first)
elif [ "$VERSION_ID" = B ]; then
  report refresh-done
else
  report refresh-back
  stage good.yaml
fi
`

// refreshVM starts the guest from its disk (with the ISO as fallback CD
// when iso is set) and the hook disk. vars, when set, are the OVMF
// variables to start from, so that a machine restarted after a power cut
// keeps its NVRAM.
// refreshPopulated waits for the hook's report that image A is deployed
// and has its users and files, and returns it with the users' uids.
func refreshPopulated(t *testing.T, v *qemu.VM) (qemu.Event, refreshUIDs) {
	t.Helper()
	pop := refreshWait(t, v, 0, "image A deployed and populated", 10*time.Minute, kindIs("refresh-populated"))
	var uids refreshUIDs
	if json.Unmarshal(pop.Raw, &uids); uids.Alice == "" || uids.Bob == "" {
		t.Fatalf("users in image A: %s", pop.Raw)
	}
	return pop, uids
}

type refreshUIDs struct {
	Alice string `json:"alice_uid"`
	Bob   string `json:"bob_uid"`
}

func refreshVM(t *testing.T, firmware, iso, disk, vars string, hook qemu.Disk) (*qemu.VM, string) {
	t.Helper()
	work := t.TempDir()
	v := startVM(t, qemu.Options{ISO: iso, Firmware: firmware, Mem: "512M", OVMFVars: vars,
		Disks:     []qemu.Disk{{Path: disk, Size: 512 << 20, Boot: true}, hook},
		DiskFirst: true, AllowReboot: true, WorkDir: work, Timeout: 20 * time.Minute})
	return v, filepath.Join(work, "OVMF_VARS.fd")
}

// refreshWait waits for the first event that arrived after from and
// matches; a failure (PE, setup, stage) other than the one matched ends
// the test.
func refreshWait(t *testing.T, v *qemu.VM, from time.Duration, what string, d time.Duration, match func(qemu.Event) bool) qemu.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ev, err := v.WaitEvent(ctx, what, func(e qemu.Event) bool {
		if e.At <= from {
			return false
		}
		return match(e) || (e.Kind == "pe" && e.State == "failed") || (e.Kind == "setup" && e.State == "failed") || e.Kind == "refresh-stage-failed"
	})
	if err != nil {
		t.Fatal(err)
	}
	if !match(ev) {
		t.Fatalf("waiting for %s: %s", what, ev.Raw)
	}
	return ev
}

type refreshReport struct {
	Version   string `json:"version"`
	DiffAlice int    `json:"diff_alice"`
	DiffBob   int    `json:"diff_bob"`
	AliceUID  string `json:"alice_uid"`
	BobUID    string `json:"bob_uid"`
	FromA     int    `json:"from_a"`
	Staging   string `json:"staging"`
	Logs      int    `json:"logs"`
}

func kindIs(kind string) func(qemu.Event) bool {
	return func(e qemu.Event) bool { return e.Kind == kind }
}

// TestRefresh is the in-place refresh of issue 7 on a UEFI machine: image
// A deployed by the new-computer flow gets users and files; a first
// `minint stage` names a package that does not exist, so the PE fails
// before changing anything and reboots into A, where every file is as it
// was; a second one refreshes to image B. B must be exactly B's tree, the
// users' files identical to before (content, owner, mode, xattrs, links),
// nothing else of A left, /minint gone but the logs kept, and the PE's
// boot entry removed from the ESP.
func TestRefresh(t *testing.T) {
	t.Parallel()
	_, b, hook, iso, disk := refreshSetup(t, "bad.yaml", qemu.UEFI)
	v, _ := refreshVM(t, qemu.UEFI, iso, disk, "", hook)

	// A is deployed and populated.
	pop, uids := refreshPopulated(t, v)

	// The first refresh fails at its fetch and the machine comes back as A.
	failed := refreshWait(t, v, pop.At, "the PE's failure on the missing package", 8*time.Minute, func(e qemu.Event) bool { return e.Kind == "pe" && e.State == "failed" })
	if failed.Data["back_to_installed"] != true || !strings.Contains(failed.Error, "fetch") {
		t.Fatalf("PE failure %s: want the fetch's error and a reboot into the installed system", failed.Raw)
	}
	back := refreshWait(t, v, failed.At, "image A again after the failed refresh", 6*time.Minute, kindIs("refresh-back"))
	var rb refreshReport
	json.Unmarshal(back.Raw, &rb)
	if rb.Version != "A" || rb.DiffAlice != 0 || rb.DiffBob != 0 || rb.FromA != 1 {
		t.Fatalf("after the failed refresh: %s; want A with every file unchanged (diffs on the console)", back.Raw)
	}

	// The real refresh.
	second := refreshWait(t, v, back.At, "the second staging", 2*time.Minute, kindIs("refresh-stage"))
	refreshVerifyB(t, v, qemu.UEFI, second.At, b, uids.Alice, uids.Bob, disk)
	steps := map[string]string{}
	for _, e := range v.Events() {
		if e.Kind == "step" && e.Op != "" && e.At > second.At {
			steps[e.Op] = e.State
		}
	}
	for _, s := range []string{"mount", "capture-state", "fetch", "clean", "apply-image", "setup", "bootfiles"} {
		if steps[s] != "done" {
			t.Errorf("refresh step %s: %q, want done (%v)", s, steps[s], steps)
		}
	}
	var pinned, unpinned bool
	for _, e := range v.Events() {
		pinned = pinned || (e.Kind == "refresh" && e.State == "pinned" && e.At > second.At)
		unpinned = unpinned || (e.Kind == "refresh" && e.State == "unpinned" && e.At > second.At)
	}
	if !pinned || !unpinned {
		t.Errorf("refresh events: pinned %v, unpinned %v; want both", pinned, unpinned)
	}
	refreshTimings(t, v.Events(), second.At)
}

// TestRefreshPowerCut cuts the power (kills QEMU) twice during a refresh:
// right after clean made the PE the boot default (as clean starts
// deleting), and in the middle of apply-image. Each time the machine is
// started again from its disk alone, with its NVRAM: the PE must come up
// by itself, resume from the journal without capturing the emptied root
// (the fetch, clean and apply run again), and reach the same verified end
// state as an uninterrupted refresh.
func TestRefreshPowerCut(t *testing.T) {
	t.Parallel()
	_, b, hook, iso, disk := refreshSetup(t, "good.yaml", qemu.UEFI)
	v, vars := refreshVM(t, qemu.UEFI, iso, disk, "", hook)
	pop, uids := refreshPopulated(t, v)
	refreshWait(t, v, pop.At, "clean pinning the PE", 10*time.Minute, func(e qemu.Event) bool { return e.Kind == "refresh" && e.State == "pinned" })
	v.Kill()
	v.Wait()

	// Cut 1: the disk alone must boot the PE (no CD), which resumes.
	v2, vars2 := refreshVM(t, qemu.UEFI, "", disk, vars, hook)
	res := refreshWait(t, v2, 0, "the PE resuming", 5*time.Minute, func(e qemu.Event) bool { return e.Kind == "sequence" && e.State == "resume" })
	if boots, _ := res.Data["boots"].(float64); boots < 1 {
		t.Errorf("resume event %s: want a journal run before", res.Raw)
	}
	refreshWait(t, v2, res.At, "apply-image under way", 10*time.Minute, func(e qemu.Event) bool {
		return e.Kind == "progress" && strings.HasPrefix(e.Op, "apply") && e.Done > 0
	})
	v2.Kill()
	v2.Wait()
	st := stepStates(v2)
	if st["capture-state"] != "skipped" || st["clean"] != "done" {
		t.Errorf("after the first cut: steps %v; want capture-state skipped (journal), clean redone", st)
	}
	if st["apply-image"] != "start" {
		// TCG timing: the kill landed after apply had finished.
		t.Logf("apply-image was %q when the power went: the second cut hit after it", st["apply-image"])
	}

	// Cut 2, and on to B.
	v3, _ := refreshVM(t, qemu.UEFI, "", disk, vars2, hook)
	res3 := refreshWait(t, v3, 0, "the PE resuming again", 5*time.Minute, func(e qemu.Event) bool { return e.Kind == "sequence" && e.State == "resume" })
	refreshVerifyB(t, v3, qemu.UEFI, res3.At, b, uids.Alice, uids.Bob, disk)
	// From the fetch on, the resumed run does again what the journal
	// says finished (the journal is on the disk: see pe's distrust);
	// the state captured before the fetch is not captured again.
	if st := stepStates(v3); st["clean"] != "done" || st["capture-state"] != "skipped" || st["apply-image"] != "done" {
		t.Errorf("after the second cut: steps %v; want capture-state skipped, clean and apply-image done again", st)
	}
}

// TestRefreshBIOS is the refresh on a BIOS machine with minint's MBR
// layout: stage arms syslinux's boot-once for its PE label; clean makes
// that label syslinux's DEFAULT; bootfiles writes the new system's
// syslinux.cfg and removes the PE's files.
func TestRefreshBIOS(t *testing.T) {
	t.Parallel()
	_, b, hook, iso, disk := refreshSetup(t, "good.yaml", qemu.BIOS)
	v, _ := refreshVM(t, qemu.BIOS, iso, disk, "", hook)
	pop, uids := refreshPopulated(t, v)
	refreshWait(t, v, pop.At, "clean pinning the PE", 10*time.Minute, func(e qemu.Event) bool { return e.Kind == "refresh" && e.State == "pinned" })
	refreshVerifyB(t, v, qemu.BIOS, pop.At, b, uids.Alice, uids.Bob, disk)
}

// refreshVerifyB waits for image B's hook report (events after since)
// and checks the refreshed machine: version B with exactly B's tree,
// setup succeeded, every user file and uid as before, nothing of A left,
// /minint gone but the logs kept, every refresh step done; once the guest
// is off, the ESP has no trace of the PE.
func refreshVerifyB(t *testing.T, v *qemu.VM, firmware string, since time.Duration, b *imageB, aliceUID, bobUID, disk string) {
	t.Helper()
	second := qemu.Event{At: since}
	doneEv := refreshWait(t, v, second.At, "image B's report", 15*time.Minute, kindIs("refresh-done"))
	var rd refreshReport
	json.Unmarshal(doneEv.Raw, &rd)
	if rd.Version != "B" {
		t.Errorf("after the refresh the system is version %q, want B", rd.Version)
	}
	if rd.DiffAlice != 0 || rd.DiffBob != 0 {
		t.Errorf("user files differ after the refresh (alice %d, bob %d): see the console", rd.DiffAlice, rd.DiffBob)
	}
	if rd.AliceUID != aliceUID || rd.BobUID != bobUID {
		t.Errorf("uids after the refresh alice=%s bob=%s, before %s %s", rd.AliceUID, rd.BobUID, aliceUID, bobUID)
	}
	if rd.FromA != 0 {
		t.Error("/opt/from-a survived the refresh")
	}
	if rd.Staging != "" || rd.Logs == 0 {
		t.Errorf("/minint holds %q and /var/lib/minint %d files; want /minint gone, the logs kept", rd.Staging, rd.Logs)
	}
	var sample sampleOS
	for _, e := range v.Events() {
		if e.Kind == "sample-os" && e.At > second.At {
			json.Unmarshal(e.Raw, &sample)
		}
	}
	var res struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal(sample.Setup, &res); sample.Version != "B" || sample.Tree != b.tree || !res.OK {
		t.Errorf("B's report: version %q tree %s (want %s), setup %s", sample.Version, sample.Tree, b.tree, sample.Setup)
	}
	select {
	case <-v.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatal("B did not power off after the hook")
	}
	if firmware == qemu.BIOS {
		refreshCheckSyslinux(t, disk)
	} else {
		refreshCheckESP(t, disk)
	}
}

// refreshSetup builds image B and serves it, writes the refresh
// sequences (checked with `minint sequence check`) and the hook disk whose
// first staging uses first, and returns the new-computer ISO for image A
// and the path of the machine's disk.
func refreshSetup(t *testing.T, first, firmware string) (*fixture, *imageB, qemu.Disk, string, string) {
	t.Helper()
	f := setup(t)
	b := f.buildB(t)
	www := t.TempDir()
	os.MkdirAll(filepath.Join(www, "b"), 0o755)
	for _, n := range []string{"sample.wim", "manifest.json", "manifest.json.sig"} {
		data, err := os.ReadFile(filepath.Join(b.pkg, n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(www, "b", n), data, 0o644)
	}
	port := nginx(t, www)
	dir := t.TempDir()
	files := map[string]string{"minint": f.static(t, "./cmd/minint"), "guesttool": f.static(t, "./e2e/guesttool")}
	for name, seq := range map[string]string{
		"good.yaml": refreshSequence(fmt.Sprintf("http://10.0.2.2:%d/b/manifest.json", port), firmware),
		"bad.yaml":  refreshSequence(fmt.Sprintf("http://10.0.2.2:%d/nowhere/manifest.json", port), firmware),
		"first":     first + "\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(seq), 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".yaml") {
			if _, err := run(dir, f.minint, "sequence", "check", p); err != nil {
				t.Fatal(err)
			}
		}
		files[name] = p
	}
	files["vmlinuz"] = filepath.Join(f.peDir, "vmlinuz")
	ird, _ := filepath.Glob(filepath.Join(f.peDir, "initramfs.cpio*"))
	if len(ird) != 1 {
		t.Fatalf("PE initramfs in %s: %v", f.peDir, ird)
	}
	files["initramfs"] = ird[0]
	hook := hookDisk(t, refreshHook, files)
	iso := f.iso(t, sequence("medium:/minint/image/manifest.json", ""), f.pkg)
	return f, b, hook, iso, filepath.Join(dir, "disk.img")
}

// refreshCheckESP: after the refresh the ESP's default is the new
// system's entry and the PE's entry and files are gone.
func refreshCheckESP(t *testing.T, disk string) {
	t.Helper()
	_, tbl, err := guestTable(t, disk)
	if err != nil || tbl == nil {
		t.Fatalf("disk table: %v", err)
	}
	var esp *diskops.PartitionInfo
	for i := range tbl.Partitions {
		if tbl.Partitions[i].TypeName == "esp" {
			esp = &tbl.Partitions[i]
		}
	}
	if esp == nil {
		t.Fatal("no ESP")
	}
	img := fmt.Sprintf("%s@@%d", disk, esp.Start)
	conf, err := exec.Command("mtype", "-i", img, "::/loader/loader.conf").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(conf), "default minint.conf") {
		t.Errorf("loader.conf after the refresh: %v\n%s", err, conf)
	}
	out, _ := exec.Command("mdir", "-b", "-i", img, "::/loader/entries").CombinedOutput()
	if strings.Contains(string(out), "minint-pe") {
		t.Errorf("the PE's loader entry is still there:\n%s", out)
	}
	if out, err := exec.Command("mdir", "-b", "-i", img, "::/minint-pe").CombinedOutput(); err == nil {
		t.Errorf("the PE's files are still on the ESP:\n%s", out)
	}
}

// refreshCheckSyslinux: after a BIOS refresh syslinux.cfg on the boot
// partition boots the new system and the PE's label and files are gone.
func refreshCheckSyslinux(t *testing.T, disk string) {
	t.Helper()
	_, tbl, err := guestTable(t, disk)
	if err != nil || tbl == nil || tbl.Type != "mbr" {
		t.Fatalf("disk table %+v: %v", tbl, err)
	}
	img := fmt.Sprintf("%s@@%d", disk, tbl.Partitions[0].Start)
	cfg, err := exec.Command("mtype", "-i", img, "::/syslinux/syslinux.cfg").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(cfg), "DEFAULT minint\n") || strings.Contains(string(cfg), "minint-pe") {
		t.Errorf("syslinux.cfg after the refresh: %v\n%s", err, cfg)
	}
	if out, err := exec.Command("mdir", "-b", "-i", img, "::/minint-pe").CombinedOutput(); err == nil {
		t.Errorf("the PE's files are still on the boot partition:\n%s", out)
	}
}

// refreshTimings logs how long each phase of the refresh took, from the
// events' arrival times (QEMU under TCG: compare ratios, not absolutes).
func refreshTimings(t *testing.T, evs []qemu.Event, stageAt time.Duration) {
	var peBanner, setupStart, setupDone, report time.Duration
	var stageDone time.Duration
	steps := map[string][2]time.Duration{}
	for _, e := range evs {
		if e.At < stageAt {
			continue
		}
		switch {
		case e.Kind == "stage" && e.State == "done" && stageDone == 0:
			stageDone = e.At
		case e.Kind == "banner" && peBanner == 0:
			peBanner = e.At
		case e.Kind == "step" && e.Data["type"] != nil:
			s := steps[e.Op]
			if e.State == "start" && s[0] == 0 {
				s[0] = e.At
			}
			if e.State == "done" {
				s[1] = e.At
			}
			steps[e.Op] = s
		case e.Kind == "setup" && e.State == "start" && setupStart == 0:
			setupStart = e.At
		case e.Kind == "setup" && e.State == "done":
			setupDone = e.At
		case e.Kind == "sample-os" && report == 0 && e.At > setupDone && setupDone > 0:
			report = e.At
		}
	}
	d := func(a, b time.Duration) string {
		if a == 0 || b == 0 || b < a {
			return "?"
		}
		return fmt.Sprintf("%.1f s", (b - a).Seconds())
	}
	lines := []string{
		"stage (capture + PE copy, in the guest): " + d(stageAt, stageDone),
		"reboot to PE banner: " + d(stageDone, peBanner),
		"PE banner to first step: " + d(peBanner, steps["requirements"][0]),
	}
	for _, s := range []string{"mount", "capture-state", "fetch", "clean", "apply-image", "setup", "bootfiles"} {
		lines = append(lines, s+": "+d(steps[s][0], steps[s][1]))
	}
	lines = append(lines, "reboot to first-boot setup: "+d(steps["reboot"][0], setupStart),
		"first-boot setup (restore-state): "+d(setupStart, setupDone),
		"total, stage to B's report: "+d(stageAt, report))
	t.Logf("refresh timings (TCG):\n  %s", strings.Join(lines, "\n  "))
}
