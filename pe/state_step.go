package pe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/state"
	"github.com/minint/minint/state/netstore"
)

func (r *runner) pullState(s *sequence.PullState) error {
	dir := filepath.Join(r.st.Target, strings.TrimPrefix(answer.Dir, "/"), "state")
	t := r.rep.Start("pull-state", 0, "bytes")
	m, err := netstore.Pull(r.ctx, s.From, dir, netstore.Options{Client: r.http, Progress: t.Add})
	t.Finish(err)
	if err != nil {
		return err
	}
	r.rep.Printf("  %d entries, %d bytes of user state in %s", len(m.Entries), m.Bytes, dir)
	return nil
}

func (r *runner) captureState(s *sequence.CaptureState) error {
	if r.st.Target == "" {
		return errors.New("capture-state: no root mounted")
	}
	if _, err := os.Lstat(r.stagingPath(cleaningMarker)); err == nil {
		// A journal lost or restarted after clean began must not replace
		// the state captured from the intact system with a capture of
		// the emptied one.
		return fmt.Errorf("capture-state: %s says the root was already (partly) cleaned; the state captured before is kept and not captured again", r.stagingPath(cleaningMarker))
	}
	dir := filepath.Join(r.st.Target, strings.TrimPrefix(answer.Dir, "/"), "state")
	spec := state.Spec{NoHomes: s.NoHomes, RootHome: s.RootHome, Paths: s.Paths, Exclude: s.Exclude}
	if !s.NoHomes && !s.RootHome && len(s.Paths) == 0 && len(s.Exclude) == 0 {
		if old, err := state.ReadManifest(dir); err == nil {
			spec = old.Spec.Spec()
			r.rep.Printf("  using the spec of the capture from %s", old.Created)
		}
	}
	t := r.rep.Start("capture-state", 0, "bytes")
	spec.Progress = t.Add
	m, st, err := state.CaptureStat(r.ctx, r.st.Target, dir, spec)
	t.Finish(err)
	if err != nil {
		return err
	}
	r.rep.Printf("  %d entries, %d bytes (%d files linked, %d copied)", len(m.Entries), m.Bytes, st.Linked, st.Copied)
	return nil
}
