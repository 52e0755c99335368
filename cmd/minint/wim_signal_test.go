package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minint/minint/wim"
)

// TestWimCaptureInterrupted: Ctrl-C, SIGTERM, SIGHUP or a closed output
// pipe during `minint wim capture` stops the capture, leaves no WIM under
// the requested name and no temporary file, and fails. (Before, a
// half-written WIM stayed under the name and `wim verify` called it OK.)
func TestWimCaptureInterrupted(t *testing.T) {
	if args := os.Getenv("MININT_WIM_MAIN"); args != "" {
		os.Exit(runMain(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	if testing.Short() {
		t.Skip("captures tens of MB")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// Compressible text that takes LZX on one thread several seconds.
	words := strings.Fields("the quick brown fox jumps over a lazy dog while minint applies images to disks")
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 8 {
		var b bytes.Buffer
		for b.Len() < 8<<20+1000*i { // sizes differ: no hashing pass first
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(" \n"[r.IntN(2)])
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE} {
		t.Run(sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.wim")
			args := []string{"wim", "capture", src, out, "--compress=lzx", "--threads=1"}
			if sig == syscall.SIGPIPE {
				args = append(args, "--json-events=-")
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestWimCaptureInterrupted$")
			cmd.Env = append(os.Environ(), "MININT_WIM_MAIN="+strings.Join(args, "\n"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// Wait until the WIM is being written, well into the data.
			deadline := time.Now().Add(time.Minute)
			for {
				tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".x.wim.*.tmp"))
				if len(tmps) == 1 {
					if fi, err := os.Stat(tmps[0]); err == nil && fi.Size() > 1<<20 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("the capture did not start writing within a minute\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if sig == syscall.SIGPIPE {
				// The reader of the events goes away: the next event
				// is written to a closed pipe.
				if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
					t.Fatal(err)
				}
				stdout.Close()
			} else if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("after %v: %v, want exit status 1\n%s", sig, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "canceled") {
				t.Errorf("after %v, the error does not say the capture was cancelled:\n%s", sig, stderr.String())
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 0 {
				t.Errorf("after %v, the capture left %v", sig, left)
			}
			if code, _, _ := wimRun(t, "verify", out); code == 0 {
				t.Errorf("verify of the interrupted capture passed")
			}
		})
	}
}

// TestWimCLIRefusesIncomplete: what an interrupted writer leaves behind is
// refused by every reading verb, as wimlib-imagex refuses it.
func TestWimCLIRefusesIncomplete(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20) // past the writer's buffer, so the file has content
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := wim.Create(filepath.Join(dir, "x.wim"), wim.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.AddImage(t.Context(), src, wim.ImageOptions{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".x.wim.*.tmp"))
	if len(tmps) != 1 {
		t.Fatalf("temporary files: %v", tmps)
	}
	for _, args := range [][]string{
		{"verify", tmps[0]}, {"info", tmps[0]}, {"dir", tmps[0]}, {"apply", tmps[0], filepath.Join(dir, "out")},
	} {
		if code, _, stderr := wimRun(t, args...); code != 1 || !strings.Contains(stderr, "incomplete WIM") {
			t.Errorf("minint wim %s: exit %d, want 1 and an incomplete WIM\n%s", args[0], code, stderr)
		}
	}
}
