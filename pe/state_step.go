package pe

import (
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/pe/answer"
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
