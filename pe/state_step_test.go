package pe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/state"
)

// TestPullState: a pull-state step brings a captured store into the
// target's /minint/state, checked; a store without its index fails the run.
func TestPullState(t *testing.T) {
	old := t.TempDir()
	os.MkdirAll(filepath.Join(old, "etc"), 0o755)
	os.WriteFile(filepath.Join(old, "etc/passwd"), []byte("ann:x:1000:1000::/home/ann:/bin/sh\n"), 0o644)
	os.MkdirAll(filepath.Join(old, "home/ann"), 0o755)
	os.WriteFile(filepath.Join(old, "home/ann/doc"), []byte("hello\n"), 0o644)
	share := filepath.Join(t.TempDir(), "pc-17")
	statePub, statePriv, _ := sign.GenerateKey()
	key, _ := sign.ParsePrivateKey(statePriv)
	m, err := state.Capture(context.Background(), old, share, state.Spec{Copy: true, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	url, pub, _, _ := testPkg(t, false)
	pullStep := func(keyLine []byte) string {
		return fmt.Sprintf("  - type: pull-state\n    from: %s\n    keys: [%q]\n", share, strings.TrimSpace(string(keyLine)))
	}
	// A store signed by a key the sequence does not name is refused.
	otherPub, _, _ := sign.GenerateKey()
	fd0 := newFakeDisk(t)
	env0, _ := testEnv(t, fd0, pub)
	if err := Run(context.Background(), seqFor(t, url, pullStep(otherPub)), env0); !errors.Is(err, state.ErrUnsigned) {
		t.Fatalf("Run with a store signed by another key = %v, want ErrUnsigned", err)
	}
	fd := newFakeDisk(t)
	seq := seqFor(t, url, pullStep(statePub))
	env, _ := testEnv(t, fd, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	got, err := state.ReadManifest(filepath.Join(fd.dir, "fs-root/minint/state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Verify(context.Background(), filepath.Join(fd.dir, "fs-root/minint/state"), got); err != nil || len(got.Entries) != len(m.Entries) {
		t.Fatalf("pulled store: %v, %d entries want %d", err, len(got.Entries), len(m.Entries))
	}

	os.Remove(filepath.Join(share, state.IndexName))
	fd2 := newFakeDisk(t)
	seq2 := seqFor(t, url, pullStep(statePub))
	env2, _ := testEnv(t, fd2, pub)
	if err := Run(context.Background(), seq2, env2); !errors.Is(err, state.ErrIncomplete) {
		t.Fatalf("Run with an incomplete store = %v, want ErrIncomplete", err)
	}
}

// TestCaptureStateStep: capture-state in the PE records the target's user
// state into its /minint/state.
func TestCaptureStateStep(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	extra := `  - type: run
    name: old-system
    in-target: false
    shell: mkdir -p "$MININT_TARGET/etc" "$MININT_TARGET/home/ann" && echo 'ann:x:1000:1000::/home/ann:/bin/sh' > "$MININT_TARGET/etc/passwd" && echo hi > "$MININT_TARGET/home/ann/doc"
  - type: capture-state
`
	seq := seqFor(t, url, extra)
	env, _ := testEnv(t, fd, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	m, err := state.ReadManifest(filepath.Join(fd.dir, "fs-root/minint/state"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range m.Entries {
		found = found || e.Path == "home/ann/doc"
	}
	if !found || len(m.Accounts.Passwd) != 1 {
		t.Errorf("manifest %+v", m)
	}
}

// TestSetupTrustsOwnCapture: the setup step hands restore-state the key
// the PE's capture-state signed with and the paths the sequence captured,
// and with them the store verifies; nothing comes from the store itself.
func TestSetupTrustsOwnCapture(t *testing.T) {
	url, pub, _, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	extra := `  - type: run
    name: old-system
    in-target: false
    shell: mkdir -p "$MININT_TARGET/etc/ssh" "$MININT_TARGET/home/ann" && echo 'ann:x:1000:1000::/home/ann:/bin/sh' > "$MININT_TARGET/etc/passwd" && echo hi > "$MININT_TARGET/home/ann/doc"
  - type: capture-state
    root-home: true
    paths: [/etc/ssh/]
`
	seq := seqFor(t, url, extra)
	for _, st := range seq.Steps {
		if s, ok := st.(*sequence.Setup); ok {
			s.RestoreState = &answer.RestoreState{Paths: []string{"/srv/data"}}
		}
	}
	env, _ := testEnv(t, fd, pub)
	if err := Run(context.Background(), seq, env); err != nil {
		t.Fatal(err)
	}
	cfg, err := answer.ReadConfig(filepath.Join(fd.dir, "fs-root", answer.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	rs := cfg.Answer.RestoreState
	if rs == nil || len(rs.Keys) != 1 || !slices.Equal(rs.Paths, []string{"/srv/data", "/etc/ssh", "/root"}) {
		t.Fatalf("restore-state in setup.json: %+v", rs)
	}
	keys, err := rs.PublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := state.ReadSigned(filepath.Join(fd.dir, "fs-root/minint/state"), keys); err != nil {
		t.Fatalf("the PE's capture does not verify with the key handed to setup: %v", err)
	}
}
