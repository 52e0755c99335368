package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minint/minint/internal/progress"
	"github.com/spf13/cobra"
)

// outputFlags are --json-events and -q/--quiet, which every command that
// reports progress has.
type outputFlags struct {
	cmd    *cobra.Command
	events string
	quiet  bool
}

// addOutputFlags adds --json-events (eventsWhat says what the events carry,
// e.g. "progress") and -q/--quiet (quietUsage says what it leaves out).
func addOutputFlags(c *cobra.Command, eventsWhat, quietUsage string) *outputFlags {
	o := &outputFlags{cmd: c}
	c.Flags().StringVar(&o.events, "json-events", "", "write "+eventsWhat+" as JSON lines to `FILE` (- for stdout)")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, quietUsage)
	return o
}

// output is where a running command writes. Results (tables, "wrote …")
// go to Out; progress and notes for people go through the Reporter to
// stderr, or nowhere with --quiet; events go through the Reporter to
// --json-events. With --json-events - the events own stdout and Out is
// stderr, so that a program reading stdout sees only JSON lines.
type output struct {
	*progress.Reporter
	Out    io.Writer // results
	Err    io.Writer // errors, warnings and questions: stderr
	Log    io.Writer // notes for people: stderr, nil with --quiet
	events io.Writer
	close  func() error
}

// open opens the --json-events destination; Close closes it.
func (o *outputFlags) open() (*output, error) {
	out := &output{Out: o.cmd.OutOrStdout(), Err: o.cmd.ErrOrStderr(), close: func() error { return nil }}
	switch o.events {
	case "":
	case "-":
		out.events, out.Out = out.Out, out.Err
	default:
		f, err := os.Create(o.events)
		if err != nil {
			return nil, fmt.Errorf("--json-events: %w", err)
		}
		out.events, out.close = f, f.Close
	}
	if !o.quiet {
		out.Log = out.Err
	}
	out.Reporter = progress.New(out.Log, out.events)
	return out, nil
}

// start opens the output (see open) and a context that the terminating
// signals cancel (signalContext): what a command that writes and can be
// interrupted begins with. end stops both.
func (o *outputFlags) start() (out *output, ctx context.Context, end func(), err error) {
	if out, err = o.open(); err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := signalContext()
	return out, ctx, func() { stop(); out.Close() }, nil
}

// eventsOnStdout reports whether --json-events - was given.
func (o *outputFlags) eventsOnStdout() bool { return o.events == "-" }

// Events is the --json-events destination, nil without one.
func (out *output) Events() io.Writer { return out.events }

// Warnf tells people about something that went wrong but did not stop the
// command; --quiet does not silence it.
func (out *output) Warnf(format string, a ...any) {
	fmt.Fprintf(out.Err, "warning: "+format+"\n", a...)
}

// Close closes the events file.
func (out *output) Close() error { return out.close() }

// yesFlag adds -y/--yes to a command that destroys data.
func yesFlag(c *cobra.Command) *bool {
	return c.Flags().BoolP("yes", "y", false, "do not ask for confirmation")
}

// confirm asks before a destructive operation, showing what will be lost.
// Without a terminal it refuses: scripts must say --yes.
func confirm(c *cobra.Command, yes bool, what string) error {
	if yes {
		return nil
	}
	in := c.InOrStdin()
	if f, ok := in.(*os.File); !ok || !progress.IsTerminal(f) {
		return fmt.Errorf("refusing to %s without confirmation: stdin is not a terminal; add --yes", what)
	}
	fmt.Fprintf(c.ErrOrStderr(), "This will %s.\nType yes to continue: ", what)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("not confirmed; nothing was changed")
	}
	return nil
}
