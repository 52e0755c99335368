package pe

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/state"
	"github.com/minint/minint/state/netstore"
)

func (r *runner) pullState(s *sequence.PullState) error {
	dir := filepath.Join(r.st.Target, strings.TrimPrefix(answer.Dir, "/"), "state")
	t := r.rep.Start("pull-state", 0, "bytes")
	m, err := netstore.Pull(r.ctx, s.From, dir, netstore.Options{Client: r.http, Progress: t.Add, Keys: s.PublicKeys()})
	t.Finish(err)
	if err != nil {
		return err
	}
	// The capture a pull-state brought is what restore-state restores:
	// a key left by an earlier capture-state must not vouch for it.
	if err := os.Remove(r.stagingPath(captureKeyFile)); err != nil && !os.IsNotExist(err) {
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
	// The store is signed with a key made for this capture: its private
	// half never leaves memory, its public half is what setup's
	// restore-state will trust (stateTrust). It is written before the
	// capture, so a store this capture signed always has its key there.
	pubFile, privFile, err := sign.GenerateKey()
	if err != nil {
		return err
	}
	if spec.Key, err = sign.ParsePrivateKey(privFile); err != nil {
		return err
	}
	if err := durable.WriteFile(r.stagingPath(captureKeyFile), pubFile, 0o644); err != nil {
		return err
	}
	t := r.rep.Start("capture-state", 0, "bytes")
	spec.Progress = t.Add
	m, st, err := state.CaptureStat(r.ctx, r.st.Target, dir, spec)
	t.Finish(err)
	if err != nil {
		return err
	}
	r.rep.Printf("  %d entries, %d bytes (%d files linked, %d copied), signed with the capture's key %s", len(m.Entries), m.Bytes, st.Linked, st.Copied, sign.KeyID(spec.Key.Public().(ed25519.PublicKey)))
	return nil
}

// captureKeyFile, in the staging folder, holds the public key of the PE's
// last capture-state.
const captureKeyFile = "state-capture.pub"

// stateTrust completes a setup step's restore-state with what the
// sequence vouches for: the keys of its pull-state steps and of the PE's
// own capture, and the paths its capture-state steps took (plus /root
// for root-home). Nothing comes from the store itself.
func (r *runner) stateTrust(rs *answer.RestoreState) (*answer.RestoreState, error) {
	out := *rs
	out.Keys = slices.Clone(rs.Keys)
	out.Paths = slices.Clone(rs.Paths)
	addPath := func(p string) {
		if !slices.Contains(out.Paths, p) {
			out.Paths = append(out.Paths, p)
		}
	}
	for _, st := range r.seq.Steps {
		switch s := st.(type) {
		case *sequence.PullState:
			out.Keys = append(out.Keys, s.Keys...)
		case *sequence.CaptureState:
			for _, p := range s.Paths {
				addPath(path.Clean(p))
			}
			if s.RootHome {
				addPath("/root")
			}
		}
	}
	b, err := bounded.ReadFile(r.stagingPath(captureKeyFile), sign.MaxSize)
	switch {
	case err == nil:
		out.Keys = append(out.Keys, strings.TrimSpace(string(b)))
	case !os.IsNotExist(err):
		return nil, err
	}
	return &out, nil
}

// stateKeys are the keys stateTrust hands to restore-state, parsed.
func (r *runner) stateKeys() ([]ed25519.PublicKey, error) {
	rs, err := r.stateTrust(&answer.RestoreState{})
	if err != nil {
		return nil, err
	}
	return rs.PublicKeys()
}
