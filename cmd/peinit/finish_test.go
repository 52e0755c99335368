package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/minint/minint/pe"
	"github.com/minint/minint/pe/boot"
)

// A failed staged refresh reboots into the installed system only when
// nothing outside /minint was changed and minint.done=reboot asked for
// reboots; otherwise the usual rescue shell (or poweroff).
func TestReturnToInstalled(t *testing.T) {
	plain := errors.New("fetch: 404")
	changed := fmt.Errorf("step failed: %w", pe.ErrChanged)
	staged := boot.Options{Done: boot.DoneReboot, Staged: "0a1b2c3d-0000-4000-8000-00000000abcd"}
	for _, c := range []struct {
		name string
		o    boot.Options
		err  error
		want bool
	}{
		{"staged, untouched", staged, plain, true},
		{"staged, changed", staged, changed, false},
		{"not staged", boot.Options{Done: boot.DoneReboot}, plain, false},
		{"staged, shell asked", boot.Options{Done: boot.DoneShell, Staged: staged.Staged}, plain, false},
		{"staged, poweroff asked", boot.Options{Done: boot.DonePoweroff, Staged: staged.Staged}, plain, false},
	} {
		if got := returnToInstalled(c.o, c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
