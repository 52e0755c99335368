package sequence

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/sign"
)

// PullState (type pull-state) copies a user-state store, captured on
// another machine with `minint stage --capture-only --state-store URL`,
// into the target's /minint/state for a later setup step with
// restore-state: the first boot runs before any network is up, so the PE
// fetches. The store's index must be signed by one of keys (the state
// keys stage signs with, `minint stage --state-key`): anyone who can
// write the store's location could otherwise hand this machine accounts
// and files. Every object is checked against its SHA-256 and a store
// without its index (an interrupted upload) is refused. A resumed run
// fetches only what is missing. The setup step's restore-state trusts
// the same keys.
//
//	steps:
//	  - type: pull-state
//	    from: http://server/states/pc-17
//	    keys: [RWQarGru80GFAMX1kMiDeCGFtdAU7JdmkyGf8GOuIZOZGxe8YDVqTbcn]   # the key line of state.pub
type PullState struct {
	StepBase `yaml:",inline"`
	From     string   `yaml:"from"`
	Keys     []string `yaml:"keys"`
}

// PublicKeys parses Keys (check has accepted them).
func (s *PullState) PublicKeys() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, k := range s.Keys {
		if pub, err := sign.ParsePublicKey([]byte(k)); err == nil {
			out = append(out, pub)
		}
	}
	return out
}

func (s *PullState) check(m *ast.MappingNode) error {
	if s.From == "" {
		return nodeErr(m, "pull-state needs from: (an http(s) URL or a directory)")
	}
	if len(s.Keys) == 0 {
		return nodeErr(m, "pull-state needs keys: (the .pub line of the state key the store was signed with, minint keygen): an unsigned store is refused")
	}
	for i, k := range s.Keys {
		if _, err := sign.ParsePublicKey([]byte(k)); err != nil {
			return nodeErr(field(m, "keys"), "pull-state keys[%d]: %v", i, err)
		}
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
// The PE signs the store with a key it makes for this capture alone and
// hands its public half to the setup step's restore-state, with paths and
// /root (root-home) as the paths restore-state may write beyond homes.
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
