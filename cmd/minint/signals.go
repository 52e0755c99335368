package main

import (
	"context"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// terminatingSignals are the signals whose default action ends minint
// (SIGQUIT aside: it keeps Go's goroutine dump). Caught, they cancel the
// command's context instead, so that it stops its children (QEMU), removes
// what it was writing and restores the terminal. SIGPIPE comes only from
// a closed stdout or stderr. What cannot be caught (SIGKILL) still takes
// the children along: package internal/child starts them with a parent
// death signal.
var terminatingSignals = []os.Signal{os.Interrupt, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM}

// signalContext is cancelled by any of terminatingSignals.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), terminatingSignals...)
}
