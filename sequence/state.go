package sequence

import (
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// PullState (type pull-state) copies a user-state store, captured on
// another machine with `minint stage --capture-only --state-store URL`,
// into the target's /minint/state for a later setup step with
// restore-state: the first boot runs before any network is up, so the PE
// fetches. Every object is checked against its SHA-256 and a store without
// its index (an interrupted upload) is refused. A resumed run fetches only
// what is missing.
//
//	steps:
//	  - type: pull-state
//	    from: http://server/states/pc-17
type PullState struct {
	StepBase `yaml:",inline"`
	From     string `yaml:"from"`
}

func (s *PullState) check(m *ast.MappingNode) error {
	if s.From == "" {
		return nodeErr(m, "pull-state needs from: (an http(s) URL or a directory)")
	}
	if strings.HasPrefix(s.From, "http://") || strings.HasPrefix(s.From, "https://") {
		return checkURL(field(m, "from"), s.From)
	}
	if !filepath.IsAbs(s.From) {
		return nodeErr(m, "pull-state from %q: give an http(s) URL or an absolute directory", s.From)
	}
	return nil
}

func (s *PullState) Describe() string { return "pull user state from " + s.From }

// CaptureState (type capture-state) captures user state again in the PE,
// from the mounted old root into its /minint/state, before the clean step.
// `minint stage` captured it while the old system was still running, and
// a program that rewrote a file in place since then changed the hard-linked
// store object too; here nothing else runs, so this capture is the
// consistent one. Without paths/exclude it reuses the spec recorded by
// stage's capture. With hard links on the same filesystem it copies no
// data; a failure leaves the old system untouched (nothing was cleaned).
//
//	steps:
//	  - type: capture-state
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
