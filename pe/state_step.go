package pe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/answer"
	"github.com/minint/minint/state"
	"github.com/minint/minint/state/netstore"
)

// PullState (type pull-state) copies a user-state store, captured on
// another machine with `minint stage --capture-only --state-store URL`,
// into the target's /minint/state for a later setup step with
// restore-state: the first boot runs before any network is up, so the PE
// fetches. Every object is checked against its SHA-256 and a store without
// its index (an interrupted upload) is refused. A resumed run fetches only
// what is missing.
//
//   - type: pull-state
//     from: http://server/states/pc-17
type PullState struct {
	StepBase `yaml:",inline"`
	From     string `yaml:"from"`
}

func (s *PullState) check(m *ast.MappingNode) error {
	if s.From == "" {
		return nodeErr(m, "pull-state needs from: (an http(s) URL or a directory)")
	}
	if !netstore.IsRemote(s.From) && !filepath.IsAbs(s.From) {
		return nodeErr(m, "pull-state from %q: give an http(s) URL or an absolute directory", s.From)
	}
	return nil
}

func (s *PullState) Describe() string { return "pull user state from " + s.From }

func (r *runner) pullState(s *PullState) error {
	dir := filepath.Join(r.st.Target, strings.TrimPrefix(answer.Dir, "/"), "state")
	t := r.rep.Start("pull-state", 0, "bytes")
	m, err := netstore.Pull(r.ctx, s.From, dir, netstore.Options{Progress: t.Add})
	t.Finish(err)
	if err != nil {
		return err
	}
	r.rep.Printf("  %d entries, %d bytes of user state in %s", len(m.Entries), m.Bytes, dir)
	return nil
}

// CaptureState (type capture-state) captures user state again in the PE,
// from the mounted old root into its /minint/state, before the clean step.
// `minint stage` captured it while the old system was still running, and
// a program that rewrote a file in place since then changed the hard-linked
// store object too; here nothing else runs, so this capture is the
// consistent one. Without paths/exclude it reuses the spec recorded by
// stage's capture. With hard links on the same filesystem it copies no
// data; a failure leaves the old system untouched (nothing was cleaned).
//
//   - type: capture-state
type CaptureState struct {
	StepBase `yaml:",inline"`
	NoHomes  bool     `yaml:"no-homes"`
	RootHome bool     `yaml:"root-home"`
	Paths    []string `yaml:"paths"`
	Exclude  []string `yaml:"exclude"`
}

func (s *CaptureState) check(m *ast.MappingNode) error {
	for _, p := range s.Paths {
		if !filepath.IsAbs(p) {
			return nodeErr(m, "capture-state path %q is not absolute", p)
		}
	}
	return nil
}

func (s *CaptureState) Describe() string { return "capture user state into /minint/state" }

func (r *runner) captureState(s *CaptureState) error {
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
