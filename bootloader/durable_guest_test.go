package bootloader

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/minint/minint/internal/disktest"
)

// checkDurableCut reads the scratch disk after peguest cut the power (no
// sync) right after committing durable.txt with internal/durable on a vfat
// and an ext4 partition and then writing unsynced.txt without syncing:
// durable.txt must hold the committed content on both, and unsynced.txt
// must not, which shows that the cut really lost what was not synced.
func checkDurableCut(t *testing.T, scratch, console string) {
	t.Helper()
	m := regexp.MustCompile(`PEGUEST: DURABLE COMMITTED sha256=([0-9a-f]{64})`).FindStringSubmatch(console)
	if m == nil {
		t.Errorf("the guest did not finish the durable checks:\n%s", tail(console, 3000))
		return
	}
	want := m[1]
	parts := regexp.MustCompile(`PEGUEST: DURABLE (vfat|ext4) start=(\d+) size=(\d+)`).FindAllStringSubmatch(console, -1)
	if len(parts) != 2 {
		t.Fatalf("durable partitions: %q", parts)
	}
	for _, p := range parts {
		start, _ := strconv.ParseInt(p[2], 10, 64)
		size, _ := strconv.ParseInt(p[3], 10, 64)
		var read func(name string) ([]byte, error)
		switch p[1] {
		case "vfat":
			read = func(name string) ([]byte, error) {
				out := filepath.Join(t.TempDir(), name)
				if b, err := exec.Command("mcopy", "-n", "-i", scratch+"@@"+fmt.Sprint(start), "::/"+name, out).CombinedOutput(); err != nil {
					return nil, fmt.Errorf("mcopy: %v: %s", err, b)
				}
				return os.ReadFile(out)
			}
		case "ext4":
			img := disktest.Extract(t, scratch, "ext4", start, size)
			// Replays the journal, as mounting would; 1 means it fixed
			// something, which an unclean stop may leave.
			if b, err := exec.Command("e2fsck", "-fy", img).CombinedOutput(); err != nil {
				if e, ok := err.(*exec.ExitError); !ok || e.ExitCode() > 1 {
					t.Fatalf("e2fsck: %v\n%s", err, b)
				}
			}
			read = func(name string) ([]byte, error) {
				out := filepath.Join(t.TempDir(), name)
				disktest.Run(t, "debugfs", "-R", "dump /"+name+" "+out, img)
				return os.ReadFile(out)
			}
		}
		got, err := read("durable.txt")
		if err != nil {
			t.Errorf("%s: durable.txt after the power cut: %v", p[1], err)
		} else if sum := fmt.Sprintf("%x", sha256.Sum256(got)); sum != want {
			t.Errorf("%s: durable.txt after the power cut: %d bytes, sha256 %s, want the committed %s", p[1], len(got), sum, want)
		}
		if got, err := read("unsynced.txt"); err == nil && fmt.Sprintf("%x", sha256.Sum256(got)) == want {
			t.Errorf("%s: unsynced.txt survived the power cut whole: the cut did not lose unsynced data, so it proves nothing", p[1])
		}
	}
}
