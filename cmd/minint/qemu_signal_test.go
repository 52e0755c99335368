package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestQEMUDiesWithMinint: `minint qemu` must not orphan its guest, whether
// it is asked to stop (SIGTERM, SIGHUP: it kills QEMU and exits) or killed
// outright (SIGKILL: the kernel kills QEMU, see internal/child). A fake
// qemu-system-x86_64 on PATH writes its pid and sleeps; this process, as
// subreaper, inherits it when minint is gone and sees how it ended.
func TestQEMUDiesWithMinint(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "qemu.pid")
			fake := fmt.Sprintf("#!/bin/sh\necho $$ > %s.tmp && mv %s.tmp %s\nexec sleep 1000\n", pidFile, pidFile, pidFile)
			if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			kernel := filepath.Join(dir, "vmlinuz")
			os.WriteFile(kernel, []byte("not a kernel"), 0o644)
			cmd := exec.Command(self, "qemu", "--kernel", kernel, "--until", "exit", "--log", "", "--timeout", "1h", "--quiet")
			cmd.Env = append(os.Environ(), "MININT_TEST_AS_MININT=1", "PATH="+dir+":"+os.Getenv("PATH"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var pid int
			for deadline := time.Now().Add(time.Minute); pid == 0; {
				if b, err := os.ReadFile(pidFile); err == nil {
					pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				} else if time.Now().After(deadline) {
					t.Fatalf("the fake QEMU did not start within a minute:\n%s", stderr.String())
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var exit *exec.ExitError
			if sig != syscall.SIGKILL && (!errors.As(err, &exit) || exit.ExitCode() != 1) {
				t.Errorf("after %v: %v, want exit status 1\n%s", sig, err, stderr.String())
			}
			done := make(chan error, 1)
			go func() {
				var ws unix.WaitStatus
				_, err := unix.Wait4(pid, &ws, 0, nil)
				if err == nil && (!ws.Signaled() || ws.Signal() != unix.SIGKILL) {
					err = fmt.Errorf("QEMU ended with %v, want SIGKILL", ws)
				} else if err == unix.ECHILD {
					// minint stopped and reaped it before exiting.
					if err = unix.Kill(pid, 0); err == unix.ESRCH {
						err = nil
					} else {
						err = fmt.Errorf("QEMU (pid %d) is still there: %v", pid, err)
					}
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(time.Minute): // a bound, not a measurement
				unix.Kill(pid, unix.SIGKILL)
				t.Fatalf("QEMU outlived minint's %v", sig)
			}
		})
	}
}
