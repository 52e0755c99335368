package e2e

import (
	"context"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/qemu"
)

// TestConsoleScreens checks what a technician reads on the machine, during
// a deployment and after a failure. The PE draws its page on the VGA
// screen and, with minint.serial=screen, the same page on the serial
// console, where the test reads its text; QEMU's screendump takes a
// picture of the VGA screen at the same moments. MININT_UPDATE_DOCS=1
// stores the pictures as docs/screen-deploy.png and docs/screen-failure.png.
func TestConsoleScreens(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// The deployment's frames must catch the apply running with a rate,
	// which takes a second of it: the apply reads the package as it
	// arrives, and a server that sends 2 MiB/s makes the 13 MiB package
	// last several seconds however fast the machine runs the decoder
	// (unthrottled, the whole apply could end within 2 s, between two
	// frames that show its rate).
	port := nginx(t, f.work, "limit_rate 2m;")
	dir := filepath.Join(f.work, "console-seq")
	os.MkdirAll(dir, 0o755)
	good := filepath.Join(dir, "good.yaml")
	// No reboot at the end: the PE reports done and powers off.
	os.WriteFile(good, []byte(strings.Replace(sequence(fmt.Sprintf("http://10.0.2.2:%d/pkg/manifest.json", port), ""), "  - type: reboot\n", "", 1)), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(sequence(fmt.Sprintf("http://10.0.2.2:%d/pkg/no-such-manifest.json", port), "")), 0o644)
	for _, s := range []string{good, bad} {
		if _, err := run(dir, f.minint, "package", "sign", "--key", f.key, s); err != nil {
			t.Fatal(err)
		}
	}
	pictures := t.TempDir()
	if os.Getenv("MININT_UPDATE_DOCS") == "1" {
		pictures = filepath.Join(f.repo, "docs")
	}
	kernel, initrd := filepath.Join(f.peDir, "vmlinuz"), peInitramfs(t, f)
	boot := func(t *testing.T, seq string, stdin io.Reader) *qemu.VM {
		return startVM(t, qemu.Options{Kernel: kernel, Initrd: initrd, Screen: true, Stdin: stdin,
			Append: fmt.Sprintf("console=tty0 console=ttyS0,115200 quiet minint.done=poweroff minint.serial=screen minint.events=serial minint.failwait=600 minint.sequence=http://10.0.2.2:%d/console-seq/%s", port, seq),
			Disks:  []qemu.Disk{{Size: 512 << 20}}, Mem: "512M", Timeout: 10 * time.Minute, WorkDir: t.TempDir()})
	}

	t.Run("deployment", func(t *testing.T) {
		t.Parallel()
		v := boot(t, "good.yaml", nil)
		ctx := context.Background()
		// A frame of the pipelined deployment with the download's rate
		// and time left, and the apply under it. (The apply of this
		// small image waits for the last chunk, where the WIM keeps its
		// metadata and so its size, then takes well under a second.)
		fr, err := v.WaitFrame(ctx, regexp.MustCompile(`(?m)^fetch sample\.wim \[#*\.*\] +[1-9]\d?%\n +[0-9.]+ MiB of [0-9.]+ MiB, [0-9.]+ MiB/s, .* left.*\n^apply image 1 `))
		if err != nil {
			t.Fatal(err)
		}
		shot(t, v, filepath.Join(pictures, "screen-deploy.png"))
		text := fr.Text()
		t.Logf("screen during the download and apply:\n%s", text)
		for _, re := range []string{
			`^minint PE [0-9a-f]{24}   kernel 6\.`, `Machine   QEMU`, `Network   eth0 +52:54:00:12:34:56  10\.0\.2\.15/24`,
			`Task sequence e2e`, `ok  1\. requirements`, `--  3\. partition-(uefi|bios) +skipped`, `(ok|>>) +\d+\. fetch`, `>> +\d+\. apply-image +running`,
			`MiB of [0-9.]+ MiB, [0-9.]+ MiB/s, .* left, .* elapsed`,
			`^apply image 1 .*[0-9.]+ MiB`,
		} {
			if !regexp.MustCompile(`(?m)` + re).MatchString(text) {
				t.Errorf("screen lacks %s", re)
			}
		}
		checkPage(t, fr)
		if _, err := v.Verdict(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("failure", func(t *testing.T) {
		t.Parallel()
		// An *os.File: exec hands it to QEMU as is, whereas an io.Pipe
		// would keep cmd.Wait (and so QEMU's exit) waiting for its end.
		keys, typ, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer typ.Close()
		defer keys.Close()
		v := boot(t, "bad.yaml", keys)
		ctx := context.Background()
		fr, err := v.WaitFrame(ctx, regexp.MustCompile(`(?s)FAILED: .*\[p\] power off +\(power off in \d+ s\)`))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the VGA page is redrawn on the same change
		shot(t, v, filepath.Join(pictures, "screen-failure.png"))
		text := fr.Text()
		t.Logf("screen after the failure:\n%s", text)
		for _, re := range []string{
			`!! +\d+\. fetch +failed`, `FAILED: task sequence: .*fetch`, `no-such-manifest\.json`,
			`What to do: The server does not have the file`, `Log: /run/minint/pe\.log`, `\[s\] shell +\[r\] retry +\[b\] reboot +\[p\] power off`,
		} {
			if !regexp.MustCompile(`(?ms)` + re).MatchString(text) {
				t.Errorf("failure screen lacks %s", re)
			}
		}
		checkPage(t, fr)
		// The keyboard: r retries (the sequence starts again, and fails
		// again), then p powers off.
		starts := func() int {
			n := 0
			for _, e := range v.Events() {
				if e.Kind == "sequence" && e.State == "start" {
					n++
				}
			}
			return n
		}
		before := starts()
		typ.Write([]byte("r"))
		deadline := time.Now().Add(3 * time.Minute)
		for starts() == before && time.Now().Before(deadline) {
			time.Sleep(time.Second)
		}
		if starts() == before {
			t.Fatal("r did not retry the sequence")
		}
		// The menu again (a frame drawn after the retry began).
		frames := len(v.Frames())
		menu := regexp.MustCompile(`(?s)FAILED: .*\(power off in \d+ s\)`)
		for again := false; !again; {
			if time.Now().After(deadline) {
				t.Fatal("no failure menu after the retry")
			}
			fs := v.Frames()
			for _, fr := range fs[frames:] {
				again = again || (menu.MatchString(fr.Text()) && !strings.Contains(fr.Text(), ">> "))
			}
			frames = len(fs)
			time.Sleep(500 * time.Millisecond)
		}
		typ.Write([]byte("p"))
		select {
		case <-v.Exited():
		case <-time.After(60 * time.Second):
			t.Fatal("p did not power off")
		}
	})
}

// checkPage: no raw JSON in a page, nothing wider than the screen.
func checkPage(t *testing.T, fr qemu.Frame) {
	t.Helper()
	for _, l := range fr.Lines {
		if strings.Contains(l, `{"`) {
			t.Errorf("raw JSON on the screen: %q", l)
		}
		if len([]rune(l)) > 80 {
			t.Errorf("line wider than 80 columns: %q", l)
		}
	}
}

// shot takes a screenshot and checks it is a picture of text (not one
// colour).
func shot(t *testing.T, v *qemu.VM, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Screenshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r, g, bl}] = true
		}
	}
	if b.Dx() < 640 || len(colours) < 2 {
		t.Errorf("screenshot %s: %v, %d colours: not a screen of text", path, b, len(colours))
	}
	t.Logf("screenshot %s (%dx%d)", path, b.Dx(), b.Dy())
}
