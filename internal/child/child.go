// Package child starts the processes minint runs alongside itself (QEMU,
// nginx in tests, a sequence's commands in the PE) so that they die with
// minint, however minint dies: a SIGKILL, an OOM kill or a crash leaves no
// orphaned guest or server behind.
//
// The kernel does it: the child is started with PR_SET_PDEATHSIG set to
// SIGKILL (SysProcAttr.Pdeathsig). That signal fires when the *thread*
// that forked the child exits, not the process, and the Go runtime ends a
// thread when a goroutine locked to it (runtime.LockOSThread) returns
// without unlocking: had the child been forked from such a thread, or
// from one the runtime later hands to such a goroutine, it would be
// killed while minint still runs. So every fork happens on one thread
// that is locked to a goroutine that never returns, and that thread lives
// exactly as long as the process.
package child

import (
	"bytes"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

type request struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	once     sync.Once
	requests = make(chan request)
)

// forker runs on its own locked thread for the life of the process and
// forks every child.
func forker() {
	runtime.LockOSThread() // never unlocked: see the package comment
	for r := range requests {
		r.done <- r.cmd.Start()
	}
}

// Start is cmd.Start for a child that is killed with SIGKILL when this
// process dies. It keeps the other fields of cmd.SysProcAttr.
func Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	once.Do(func() { go forker() })
	done := make(chan error, 1)
	requests <- request{cmd, done}
	return <-done
}

// Run is cmd.Run for a child that dies with this process.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// Output is cmd.Output for a child that dies with this process.
func Output(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	err := Run(cmd)
	return out.Bytes(), err
}

// CombinedOutput is cmd.CombinedOutput for a child that dies with this
// process.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := Run(cmd)
	return out.Bytes(), err
}
