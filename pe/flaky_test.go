package pe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/pe/journal"
	"github.com/minint/minint/sequence"
)

// flakyRun runs src (steps only) with a staging folder of its own, so
// that the journal is written from the first step; it returns the
// staging folder, the console and the events.
func flakyRun(t *testing.T, ctx context.Context, staging, src string) (error, string, []progress.Event) {
	t.Helper()
	seq, err := sequence.Parse("flaky.yaml", []byte(head+src))
	if err != nil {
		t.Fatal(err)
	}
	env, evb := testEnv(t, newFakeDisk(t), nil)
	env.Staging = staging
	var console bytes.Buffer
	env.Console = &console
	if ctx == nil {
		ctx = context.Background()
	}
	err = Run(ctx, seq, env)
	var evs []progress.Event
	for _, l := range strings.Split(strings.TrimSpace(evb.String()), "\n") {
		var e progress.Event
		if perr := json.Unmarshal([]byte(l), &e); perr != nil {
			t.Fatalf("event %q: %v", l, perr)
		}
		evs = append(evs, e)
	}
	return err, console.String(), evs
}

func loadJournal(t *testing.T, staging string) *journal.Journal {
	t.Helper()
	j, err := journal.Load(filepath.Join(staging, journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestStepTimeout(t *testing.T) {
	staging := t.TempDir()
	// The shell's child holds the output pipe: the timeout must kill the
	// process group, not only the shell.
	err, console, _ := flakyRun(t, nil, staging, `  - type: run
    name: hang
    shell: "sleep 600; echo woke"
    timeout: 300ms
`)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrStep) || !strings.Contains(err.Error(), `"hang" (run, line 3): timed out after 300ms`) {
		t.Fatalf("error %v: want the hang step timed out after 300ms", err)
	}
	if strings.Contains(console, "| woke") {
		t.Error("the command went on after its timeout")
	}
	if rec := loadJournal(t, staging).Step("hang"); rec == nil || rec.Status != journal.Failed || !strings.Contains(rec.Error, "timed out after 300ms") {
		t.Errorf("journal record %+v", rec)
	}
}

// TestTimeoutThenRetry: a try that timed out is retried like a failed one.
func TestTimeoutThenRetry(t *testing.T) {
	staging := t.TempDir()
	err, _, _ := flakyRun(t, nil, staging, `  - type: run
    name: slow-once
    shell: 'if [ -e "$MININT_STAGING/tried" ]; then exit 0; fi; touch "$MININT_STAGING/tried"; sleep 600'
    timeout: 300ms
    retries: 1
    retry-delay: 1ms
`)
	if err != nil {
		t.Fatal(err)
	}
	if rec := loadJournal(t, staging).Step("slow-once"); rec.Status != journal.Done || rec.Attempts != 2 {
		t.Errorf("journal record %+v: want done after 2 attempts", rec)
	}
}

func TestRetrySucceedsOnSecondTry(t *testing.T) {
	staging := t.TempDir()
	err, console, evs := flakyRun(t, nil, staging, `  - type: run
    name: flaky
    shell: 'echo try >> "$MININT_STAGING/tries"; [ $(wc -l < "$MININT_STAGING/tries") -ge 2 ]'
    retries: 3
    retry-delay: 1ms
  - type: run
    name: after
    shell: 'echo after >> "$MININT_STAGING/tries"'
`)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "tries")); string(b) != "try\ntry\nafter\n" {
		t.Errorf("tries %q: want two tries, then the next step", b)
	}
	rec := loadJournal(t, staging).Step("flaky")
	if rec.Status != journal.Done || rec.Attempts != 2 || rec.Error != "" {
		t.Errorf("journal record %+v: want done after 2 attempts, no error", rec)
	}
	var retries []progress.Event
	for _, e := range evs {
		if e.Kind == "step" && e.State == "retry" {
			retries = append(retries, e)
		}
	}
	if len(retries) != 1 || retries[0].Op != "flaky" || retries[0].Data["try"] != float64(1) || retries[0].Data["tries"] != float64(4) || !strings.Contains(retries[0].Error, "exit status 1") {
		t.Errorf("retry events %+v", retries)
	}
	if !strings.Contains(console, "try 1 of 4 failed: ") || !strings.Contains(console, "trying again in 1ms") {
		t.Errorf("console:\n%s", console)
	}
}

func TestRetriesExhausted(t *testing.T) {
	staging := t.TempDir()
	err, _, _ := flakyRun(t, nil, staging, `  - type: run
    name: broken
    shell: 'echo try >> "$MININT_STAGING/tries"; exit 7'
    retries: 2
    retry-delay: 1ms
`)
	if err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("error %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "tries")); string(b) != "try\ntry\ntry\n" {
		t.Errorf("tries %q: want 1 + 2 retries", b)
	}
	if rec := loadJournal(t, staging).Step("broken"); rec.Status != journal.Failed || rec.Attempts != 3 {
		t.Errorf("journal record %+v", rec)
	}
}

// powerCut takes a copy of the journal when the run emits an event of a
// state and cancels the run: the journal copy is what a power cut at that
// point leaves on disk.
type powerCut struct {
	state, journal string
	cancel         func()
	saved          []byte
}

func (c *powerCut) Write(p []byte) (int, error) {
	var e progress.Event
	if json.Unmarshal(bytes.TrimSpace(p), &e) == nil && e.State == c.state && c.saved == nil {
		c.saved, _ = os.ReadFile(c.journal)
		c.cancel()
	}
	return len(p), nil
}

// TestPowerCutDuringRetries: power lost while waiting to try again leaves
// the step started in the journal, with the failure so far and the tries
// counted; the next boot redoes it.
func TestPowerCutDuringRetries(t *testing.T) {
	staging := t.TempDir()
	src := head + `  - type: run
    name: flaky
    shell: 'echo try >> "$MININT_STAGING/tries"; [ $(wc -l < "$MININT_STAGING/tries") -ge 2 ]'
    retries: 3
    retry-delay: 1h
`
	seq, err := sequence.Parse("flaky.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	env, _ := testEnv(t, newFakeDisk(t), nil)
	env.Staging = staging
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jpath := filepath.Join(staging, journal.FileName)
	cut := &powerCut{state: "retry", journal: jpath, cancel: cancel}
	env.Events = cut
	if err := Run(ctx, seq, env); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want the run cancelled while waiting", err)
	}
	if err := os.WriteFile(jpath, cut.saved, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := loadJournal(t, staging).Step("flaky")
	if rec.Status != journal.Started || rec.Attempts != 2 || !strings.Contains(rec.Error, "exit status 1") {
		t.Errorf("journal record at the cut %+v: want started, the failure of try 1, attempts 2", rec)
	}
	env2, _ := testEnv(t, newFakeDisk(t), nil)
	env2.Staging = staging
	if err := Run(context.Background(), seq, env2); err != nil {
		t.Fatal(err)
	}
	if rec := loadJournal(t, staging).Step("flaky"); rec.Status != journal.Done || rec.Attempts != 3 {
		t.Errorf("journal record after the next boot %+v: want done at attempt 3", rec)
	}
}

func TestContinueOnError(t *testing.T) {
	staging := t.TempDir()
	steps := `  - type: run
    name: optional
    shell: 'echo optional >> "$MININT_STAGING/ran"; exit 3'
    continue-on-error: true
  - type: run
    name: next
    shell: 'echo next >> "$MININT_STAGING/ran"'
`
	err, console, evs := flakyRun(t, nil, staging, steps)
	if err != nil {
		t.Fatalf("a continued failure failed the run: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "ran")); string(b) != "optional\nnext\n" {
		t.Errorf("ran %q", b)
	}
	rec := loadJournal(t, staging).Step("optional")
	if rec.Status != journal.Continued || !strings.Contains(rec.Error, "exit status 3") {
		t.Errorf("journal record %+v", rec)
	}
	var continued, done bool
	for _, e := range evs {
		continued = continued || e.Kind == "step" && e.Op == "optional" && e.State == "continued" && strings.Contains(e.Error, "exit status 3")
		if e.Kind == "sequence" && e.State == "done" {
			names, _ := e.Data["continued"].([]any)
			done = len(names) == 1 && names[0] == "optional"
		}
	}
	if !continued || !done {
		t.Errorf("events (continued %v, done with it %v):\n%+v", continued, done, evs)
	}
	if !strings.Contains(console, "done, but 1 step failed and was continued: optional") {
		t.Errorf("console:\n%s", console)
	}
	// The next boot (the journal says both finished) redoes neither, and
	// still says which step failed.
	err, console, _ = flakyRun(t, nil, staging, steps)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "ran")); string(b) != "optional\nnext\n" {
		t.Errorf("ran %q after a second boot: a finished step was redone", b)
	}
	if !strings.Contains(console, "optional: failed in an earlier boot and was continued (journal): ") || !strings.Contains(console, "failed and was continued: optional") {
		t.Errorf("console of the second boot:\n%s", console)
	}
}

// TestFetchTimeout: fetch keeps its own bound (a pipelined download
// outlives the step), and says so the same way.
func TestFetchTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	defer srv.Close()
	defer close(block)
	_, pub, _, _ := testPkg(t, false)
	seq, err := sequence.Parse("f.yaml", []byte(head+"  - type: fetch\n    manifest: "+srv.URL+"/m.json\n    mode: stream\n    timeout: 300ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	env, _ := testEnv(t, newFakeDisk(t), pub)
	err = Run(context.Background(), seq, env)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("error %v", err)
	}
}
