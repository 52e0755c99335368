package child

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain: with CHILD_TEST_HELPER=1 the test binary is a parent that
// starts `sleep` with Start, prints its pid and waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("CHILD_TEST_HELPER") == "1" {
		helper()
	}
	os.Exit(m.Run())
}

func helper() {
	// Start from a goroutine locked to its thread, which then returns
	// still locked: the runtime ends that thread. Had the fork happened
	// on it, the parent death signal would kill the child now.
	// (The main thread is never ended, only parked: keep it for main.)
	runtime.LockOSThread()
	res := make(chan string)
	go func() {
		runtime.LockOSThread()
		cmd := exec.Command("sleep", "1000")
		if err := Start(cmd); err != nil {
			res <- "error " + err.Error()
			return
		}
		res <- fmt.Sprintf("%d %d", cmd.Process.Pid, unix.Gettid())
	}()
	r := <-res
	var pid, tid int
	if _, err := fmt.Sscan(r, &pid, &tid); err != nil {
		fmt.Println(r)
		os.Exit(1)
	}
	// Wait for that thread to be gone before reporting.
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); os.IsNotExist(err) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(pid)
	for {
		time.Sleep(time.Hour) // until killed (a select{} would be a detected deadlock)
	}
}

// state is the process state letter of pid (R, S, Z...).
func state(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

// TestChildDiesWithParent SIGKILLs a parent (nothing it could catch) and
// checks that its child, started with Start, is killed too.
func TestChildDiesWithParent(t *testing.T) {
	// As subreaper this process inherits the orphan and can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), "CHILD_TEST_HELPER=1")
	parent.Stderr = os.Stderr
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		parent.Process.Kill()
		t.Fatalf("helper said %q (%v)", line, err)
	}
	// (Racy in the failing direction only: a child killed by the thread's
	// end may not be dead yet.)
	if s := state(pid); s == "" || s == "Z" {
		t.Errorf("the child died with the thread that started it (state %q)", s)
	}
	parent.Process.Kill()
	parent.Wait()
	done := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		done <- ws
	}()
	select {
	case ws := <-done:
		if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Errorf("the child ended with %v, want SIGKILL", ws)
		}
	case <-time.After(time.Minute): // a bound, not a measurement
		unix.Kill(pid, unix.SIGKILL)
		t.Fatal("the child outlived its SIGKILLed parent")
	}
}
