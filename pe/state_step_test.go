package pe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
	m, err := state.Capture(context.Background(), old, share, state.Spec{Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	url, pub, _, _ := testPkg(t, false)
	fd := newFakeDisk(t)
	seq := seqFor(t, url, fmt.Sprintf("  - type: pull-state\n    from: %s\n", share))
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
	seq2 := seqFor(t, url, fmt.Sprintf("  - type: pull-state\n    from: %s\n", share))
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
