package stage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrPostponed is returned by Countdown.Wait when the user postponed; the
// caller exits without changes and whatever scheduled stage runs it again.
var ErrPostponed = errors.New("postponed by the user")

// Countdown is the warning before a refresh. The user may type "now" to go
// at once or "postpone" to stop; postponing is refused when a mandatory
// deadline falls within the countdown (the countdown is then cut to end
// at the deadline). Non-interactive runs only print and wait.
type Countdown struct {
	Duration    time.Duration
	MandatoryAt time.Time // zero: none
	Interactive bool
	In          io.Reader // the user's answers, one per line
	Out         io.Writer
	// Tick is how often the time left is printed (default: every minute,
	// every 10 s in the last minute).
	Tick time.Duration
	// What is announced (default "this system will be refreshed").
	What string
	// Postpone, when set, is how long a postponement lasts: the countdown
	// then starts again (at MandatoryAt at the latest) instead of Wait
	// returning ErrPostponed, so a user can put a refresh off but not
	// cancel it.
	Postpone time.Duration
}

// Wait runs the countdown; nil means go ahead.
func (c Countdown) Wait(ctx context.Context) error {
	// One reader of the answers for every round: a second one would
	// race the first for the user's lines.
	lines := make(chan string)
	if c.Interactive && c.In != nil {
		go func() {
			s := bufio.NewScanner(c.In)
			for s.Scan() {
				select {
				case lines <- strings.ToLower(strings.TrimSpace(s.Text())):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for {
		err := c.round(ctx, lines)
		if !errors.Is(err, ErrPostponed) || c.Postpone <= 0 {
			return err
		}
		until := time.Now().Add(c.Postpone)
		if !c.MandatoryAt.IsZero() && c.MandatoryAt.Before(until) {
			until = c.MandatoryAt
		}
		if c.Out != nil {
			fmt.Fprintf(c.Out, "minint: postponed until %s\n", until.Format(time.RFC3339))
		}
		t := time.NewTimer(time.Until(until))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// round is one countdown: nil to go ahead, ErrPostponed, or ctx's error.
func (c Countdown) round(ctx context.Context, lines <-chan string) error {
	now := time.Now()
	end := now.Add(c.Duration)
	mandatory := !c.MandatoryAt.IsZero() && !c.MandatoryAt.After(end)
	if mandatory {
		end = c.MandatoryAt
	}
	out := c.Out
	if out == nil {
		out = io.Discard
	}
	what := c.What
	if what == "" {
		what = "this system will be refreshed"
	}
	if !end.After(now) {
		fmt.Fprintf(out, "minint: %s now\n", what)
		return nil
	}
	prompt := `type "now" to start at once`
	if !mandatory {
		prompt += ` or "postpone" to do it later`
	} else {
		prompt += fmt.Sprintf("; mandatory at %s, cannot be postponed", c.MandatoryAt.Format(time.RFC3339))
	}
	deadline := time.NewTimer(time.Until(end))
	defer deadline.Stop()
	for {
		left := time.Until(end).Round(time.Second)
		fmt.Fprintf(out, "minint: %s in %s", what, left)
		if c.Interactive {
			fmt.Fprintf(out, " (%s)", prompt)
		}
		fmt.Fprintln(out)
		tick := c.Tick
		if tick == 0 {
			tick = time.Minute
			if left <= time.Minute {
				tick = 10 * time.Second
			}
		}
		t := time.NewTimer(tick)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-deadline.C:
			t.Stop()
			fmt.Fprintf(out, "minint: %s now\n", what)
			return nil
		case l := <-lines:
			t.Stop()
			switch l {
			case "now", "n", "install", "i":
				fmt.Fprintln(out, "minint: starting now")
				return nil
			case "postpone", "p", "later":
				if mandatory {
					fmt.Fprintln(out, "minint: this is mandatory and cannot be postponed")
					continue
				}
				fmt.Fprintln(out, "minint: postponed")
				return ErrPostponed
			default:
				fmt.Fprintf(out, "minint: %q? %s\n", l, prompt)
			}
		case <-t.C:
		}
	}
}
