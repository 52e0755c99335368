package pe

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/netconf"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/pe/fetch"
	"github.com/minint/minint/pe/journal"
	"github.com/minint/minint/sequence"
	"golang.org/x/sys/unix"
)

// Env is everything Run needs from the PE around it.
type Env struct {
	Backend   Backend
	Inventory Inventory
	// Vars are the kernel command line's minint.var.NAME=VALUE: they set
	// the sequence's variables (over its rules and defaults, see
	// sequence.Bind) and conditions read them as var.NAME.
	Vars map[string]string
	// Boot is how the PE was started: "medium", "network" or "staged" (a fact).
	Boot string
	// PublicKey checks package manifests; nil refuses every package.
	PublicKey ed25519.PublicKey
	// MediumDir is where the boot medium is mounted (for medium: sources).
	MediumDir string
	// SetupBinary is minint-setup inside the PE, copied to the target by
	// the setup step.
	SetupBinary string
	// Console receives the human progress display; Events receives JSON
	// lines (both may be nil). When the sequence has a status-url, events
	// are also POSTed there.
	Console, Events io.Writer
	// Machine names this machine to the sequence's status-url (see
	// progress.Machine); Deploy fills it from the hardware inventory.
	Machine progress.Machine
	// HTTP is the client for every request of the sequence (fetches,
	// uploads, state stores, status posts): timeouts, idle limit,
	// retries (nil: httpx's defaults).
	HTTP *httpx.Client
	// Network applies the sequence's network: configuration (the PE's
	// hw.Configure) before the first step; nil when the sequence has
	// none to apply here.
	Network func(ctx context.Context, cfg netconf.Config) error
	// DryRun prints the plan; only requirements and select-disk run (they
	// change nothing).
	DryRun bool
	// Redo runs again, from its first fetch, a sequence whose journal
	// says every step finished (see distrust). Without it such a run
	// does nothing and says that it ended in an earlier boot. It also
	// lets partition rewrite a disk that carries the sequence's layout
	// and an installed system without its journal (see deployedBefore),
	// or a hibernated system (see hibernated), which are otherwise
	// refused.
	Redo bool
	// LogDir receives the log of a failed run when there is no staging
	// folder yet (default os.TempDir()).
	LogDir string
	// Staging forces the staging folder (tests; normally the mount step
	// sets it to TARGET/minint).
	Staging string
	// Staged is the file system UUID from minint.staged=UUID=…: the PE
	// was staged onto that root by `minint stage`, which a mount step
	// with existing: true mounts (see refresh.go).
	Staged string

	// hook, when set (tests), is called at points of a step's life; an
	// error it returns simulates a crash at that point.
	hook func(step, point string) error
	// bench: see DeployOptions.Bench.
	bench BenchFloor
}

// Inventory is what the requirements step checks and conditions see.
type Inventory struct {
	// Vendor, Model, Serial and UUID (SMBIOS) and MACs (NICs with a
	// link first) are what a sequence's rules match and ${machine.KEY}
	// reads.
	Vendor, Model, Serial, UUID string
	MACs                        []string
	Firmware                    string // bios or uefi
	// SecureBoot: the firmware enforces Secure Boot, so what bootfiles
	// installs must be a signed chain.
	SecureBoot bool
	Arch       string
	Memory     int64
	CPUs       int
	Disks      []DiskInfo
	NICs       []string // interface names, loopback excluded
	PCI        []string // "vvvv:dddd", lower-case hex
}

// DiskInfo is one disk as far as requirements care.
type DiskInfo struct {
	Path       string
	Size       int64
	BootMedium bool
}

// ErrStep wraps the error of a failed step.
var ErrStep = errors.New("step failed")

// State is what later steps need from earlier ones; it is kept in the
// journal so that a resumed run knows it.
type State struct {
	Disk   *TargetDisk `json:"disk,omitempty"`
	Parts  []Part      `json:"parts,omitempty"`
	Target string      `json:"target,omitempty"`
	// Image is never journaled: a resumed run fetches again (see
	// distrust), and the manifest entry with its checksum table stays
	// out of every journal write.
	Image       *ImageRef          `json:"-"`
	Setup       bool               `json:"setup,omitempty"`
	BootEntries []answer.BootEntry `json:"boot_entries,omitempty"`
	Layout      string             `json:"layout,omitempty"` // name of the partition step that ran
	Extra       map[string]string  `json:"extra,omitempty"`
	// Staged: the root is an existing system being refreshed in place;
	// Pinned: its PE is the persistent boot default (clean to bootfiles).
	Staged bool `json:"staged,omitempty"`
	Pinned bool `json:"pinned,omitempty"`
	// Vars are the values the sequence's variables had when the run
	// began: a resumed run must have the same (see adopt).
	Vars    map[string]string `json:"vars,omitempty"`
	unmount []func() error
}

// ImageRef is a verified image: a local file (staged, or on the boot
// medium) or an HTTP URL read chunk by verified chunk.
type ImageRef struct {
	Path  string         `json:"path,omitempty"`
	URL   string         `json:"url,omitempty"`
	Entry manifest.Entry `json:"entry"`
	Index int            `json:"index"`
	// Verified: the local file matched the manifest whole before the fetch
	// step was done (staged, or hashed on the medium). Otherwise (an image
	// on the medium with chunk hashes, fetched right before apply-image)
	// apply-image verifies it as it reads it and checks the rest before it
	// is done (manifest.ChunkReader).
	Verified bool `json:"verified,omitempty"`
}

type runner struct {
	ctx     context.Context
	seq     *sequence.Sequence
	env     *Env
	rep     *progress.Reporter
	log     *bytes.Buffer
	poster  *statusPoster
	jr      *journal.Journal
	st      *State
	staging string
	http    *httpx.Client // env.HTTP, logging its retries
	client  *fetch.Client
	// pending is a fetch whose download goes on while apply-image reads
	// it (pipeline.go).
	pending *pipeline
	// origin identifies the staging of a refresh (see mountExisting).
	origin string
	// changed: a step that writes outside the staging folder started
	// (now or, per the journal, in an earlier boot).
	changed bool
	// done: the sequence's end was reported (sequenceDone).
	done bool
	// continued are the steps that failed with continue-on-error.
	continued []string
	// earlier: the journal says every step finished in an earlier boot,
	// and this run redoes none of them (see distrust).
	earlier bool
}

// Run executes seq, with its variables bound for this machine first
// (Env.Inventory, Env.Vars; see sequence.Bind). When a journal of the same
// sequence exists on the target (found after select-disk, before
// partitioning), finished steps are skipped and the run resumes at the
// first unfinished one. On failure the log is saved to the staging folder
// (or LogDir) and uploaded to the status URL when there is one; the
// returned error names the step. A step that fails with continue-on-error
// does not fail the run: the sequence's done event and last line name it.
func Run(ctx context.Context, seq *sequence.Sequence, env *Env) (err error) {
	r := &runner{ctx: ctx, seq: seq, env: env, log: &bytes.Buffer{}, st: &State{}}
	human := io.Writer(r.log)
	if env.Console != nil {
		human = io.MultiWriter(env.Console, r.log)
	}
	events := []io.Writer{r.log}
	if env.Events != nil {
		events = append(events, env.Events)
	}
	r.http = &httpx.Client{}
	if env.HTTP != nil {
		*r.http = *env.HTTP
	}
	if seq.StatusURL != "" && !env.DryRun {
		r.poster = newStatusPoster(seq.StatusURL, r.http, env.Machine)
		defer r.poster.Close()
		events = append(events, r.poster)
	}
	r.rep = progress.New(human, io.MultiWriter(events...))
	r.http.Log = func(f string, a ...any) { r.rep.Printf(f, a...) }
	r.client = &fetch.Client{Client: *r.http}
	r.jr = &journal.Journal{Sequence: seq.Digest, Name: seq.Name, Created: time.Now().UTC()}
	defer r.unmountAll()
	defer r.abandon() // first: the download writes under the mount
	// Variables are put in before any step (and before a journal is
	// adopted: it must have been started with the same values), so that
	// a value missing on this machine stops the run before anything is
	// written.
	if err := r.bind(); err != nil {
		r.rep.Emit(progress.Event{Kind: "sequence", State: "failed", Error: err.Error()})
		r.rep.Printf("\nFAILED: %v", err)
		r.saveLog()
		return err
	}
	seq = r.seq
	if env.Staging != "" {
		if err := r.adopt(env.Staging); err != nil {
			return err
		}
	}
	name := seq.Name
	if name == "" {
		name = "task sequence"
	}
	if env.DryRun {
		r.rep.Printf("Plan for %s (dry run: no disk is touched):", name)
	} else {
		r.rep.Printf("Running %s (%s)", name, plural.Count(len(seq.Steps), "step"))
	}
	var stepNames, stepTypes []string
	for _, st := range seq.Steps {
		stepNames, stepTypes = append(stepNames, st.Base().Name), append(stepTypes, st.Base().Type)
	}
	r.rep.Emit(progress.Event{Kind: "sequence", State: "start", Msg: name, Data: map[string]any{"steps": len(seq.Steps), "digest": seq.Digest, "dry_run": env.DryRun,
		"step_names": stepNames, "step_types": stepTypes}})
	if seq.Network != nil && !env.DryRun {
		if env.Network == nil {
			err := fmt.Errorf("%w: the sequence has a network: configuration and this environment cannot apply it", ErrStep)
			r.rep.Emit(progress.Event{Kind: "sequence", State: "failed", Error: err.Error()})
			return err
		}
		if err := env.Network(ctx, *seq.Network); err != nil {
			err = fmt.Errorf("network: configuration: %w", err)
			r.rep.Emit(progress.Event{Kind: "sequence", State: "failed", Error: err.Error()})
			r.rep.Printf("\nFAILED: %v", err)
			return err
		}
	}
	for i, st := range seq.Steps {
		if err := r.step(i, st); err != nil {
			b := st.Base()
			err = fmt.Errorf("%w: %q (%s, line %d): %w", ErrStep, b.Name, b.Type, b.Line, err)
			if r.changed {
				err = changedError{err}
			} else if r.st.Staged && !env.DryRun {
				r.rep.Printf("nothing outside %s was changed: the installed system is intact", answer.Dir)
				r.rep.Emit(progress.Event{Kind: "refresh", State: "intact"})
			}
			r.rep.Emit(progress.Event{Kind: "sequence", State: "failed", Error: err.Error()})
			r.rep.Printf("\nFAILED: %v", err)
			r.saveLog()
			return err
		}
	}
	r.sequenceDone()
	return nil
}

// sequenceDone reports the end of the sequence, once: a last step that
// reboots or powers off reports it before it does. A step continued after
// its failure is named in the event and the last line.
func (r *runner) sequenceDone() {
	if r.done {
		return
	}
	r.done = true
	name := r.seq.Name
	if name == "" {
		name = "task sequence"
	}
	done := progress.Event{Kind: "sequence", State: "done", Msg: name, Data: map[string]any{}}
	if len(r.continued) > 0 {
		done.Data["continued"] = r.continued
	}
	if r.earlier {
		done.Data["earlier_boot"] = true
	}
	r.rep.Emit(done)
	if r.env.DryRun {
		return
	}
	msg := name + ": done"
	if r.earlier {
		msg = name + ": finished in an earlier boot, by the journal on the target disk"
	}
	if len(r.continued) > 0 {
		msg += fmt.Sprintf(", but %s failed and %s continued: %s", plural.Count(len(r.continued), "step"), map[bool]string{true: "was", false: "were"}[len(r.continued) == 1], strings.Join(r.continued, ", "))
	}
	if r.earlier {
		// Said plainly: the journal lies on the target disk, so a
		// machine never deployed with this sequence may carry one that
		// says it was.
		msg += ". Nothing was done now. If this machine was not deployed with this sequence before, that journal is someone else's: boot with minint.redo=1 to run the sequence again from its first fetch."
	}
	r.rep.Printf("%s", msg)
}

// bind puts the machine's values in for the sequence's variables
// (sequence.Bind) and says which it used and why.
func (r *runner) bind() error {
	inv := r.env.Inventory
	m := sequence.Machine{Vendor: inv.Vendor, Model: inv.Model, Serial: inv.Serial, UUID: inv.UUID, MACs: inv.MACs}
	bound, bd, err := r.seq.Bind(m, r.env.Vars)
	if err != nil {
		return fmt.Errorf("%w: variables: %w", ErrStep, err)
	}
	r.seq, r.st.Vars = bound, bd.Values
	if len(bd.Values) > 0 {
		var vs []string
		for _, k := range slices.Sorted(maps.Keys(bd.Values)) {
			vs = append(vs, fmt.Sprintf("%s=%s (%s)", k, bd.Values[k], bd.From[k]))
		}
		r.rep.Printf("variables: %s", strings.Join(vs, ", "))
		r.rep.Emit(progress.Event{Kind: "sequence", State: "variables", Data: map[string]any{"values": bd.Values, "from": bd.From}})
	}
	return nil
}

func varsString(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	var p []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p = append(p, k+"="+m[k])
	}
	return strings.Join(p, ", ")
}

// tries runs a step within its timeout, and again after a failure as its
// retries allow (sequence.RetryTypes: steps that a retry cannot make
// worse), waiting RetryWait between tries. Every try is a Started record
// in the journal with the last failure: a power cut during the retries
// leaves the step to be redone at the next boot like any started step.
func (r *runner) tries(st sequence.Step, ev func(state, msg string, err error, kv ...any)) error {
	b := st.Base()
	retries := b.Retries
	if _, ok := st.(*sequence.Fetch); ok || r.env.DryRun {
		retries = 0 // fetch spends its retries on each request
	}
	for try := 1; ; try++ {
		err := r.timed(st)
		if err == nil || try > retries || r.ctx.Err() != nil {
			return err
		}
		r.record(b, journal.Started, err)
		if err := r.save(); err != nil {
			return err
		}
		wait := b.RetryWait(try)
		r.rep.Printf("  try %d of %d failed: %v; trying again in %s", try, retries+1, err, wait)
		ev("retry", fmt.Sprintf("try %d of %d failed; again in %s", try, retries+1, wait), err, "try", try, "tries", retries+1, "wait_s", wait.Seconds())
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to try again after: %v)", r.ctx.Err(), err)
		case <-t.C:
		}
	}
}

// ErrTimeout is wrapped by the error of a step that ran out of time.
var ErrTimeout = errors.New("timed out")

// timed runs one try of a step, cancelled after its timeout. fetch keeps
// its own bound (see sequence.Fetch): a pipelined download outlives the
// step, and its context must too.
func (r *runner) timed(st sequence.Step) error {
	b := st.Base()
	if _, ok := st.(*sequence.Fetch); ok || b.Timeout == 0 {
		err := r.exec(st)
		if err != nil && b.Timeout > 0 && errors.Is(err, context.DeadlineExceeded) && r.ctx.Err() == nil {
			err = fmt.Errorf("%w after %s: %v", ErrTimeout, b.Timeout, err)
		}
		return err
	}
	parent := r.ctx
	ctx, cancel := context.WithTimeout(parent, time.Duration(b.Timeout))
	defer cancel()
	r.ctx = ctx
	err := r.exec(st)
	r.ctx = parent
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
		return fmt.Errorf("%w after %s: %v", ErrTimeout, b.Timeout, err)
	}
	return err
}

// always-run steps establish runtime state and change nothing on disk, so
// a resumed run repeats them instead of trusting the journal.
func alwaysRun(st sequence.Step) bool {
	switch st.(type) {
	case *sequence.Requirements, *sequence.SelectDisk, *sequence.Mount:
		return true
	}
	return false
}

func (r *runner) facts() sequence.FactMap {
	// Only what is known goes in: a condition on an unknown fact is an
	// error at run time (and "decided at run time" in a plan), never a
	// silent false.
	inv := r.env.Inventory
	f := sequence.FactMap{}
	set := func(k, v string, known bool) {
		if known {
			f[k] = v
		}
	}
	set("firmware", inv.Firmware, inv.Firmware != "")
	set("secure-boot", map[bool]string{true: "on", false: "off"}[inv.SecureBoot], inv.Firmware != "")
	set("arch", inv.Arch, inv.Arch != "")
	set("memory", strconv.FormatInt(inv.Memory, 10), inv.Memory > 0)
	set("cpus", strconv.Itoa(inv.CPUs), inv.CPUs > 0)
	set("boot", r.env.Boot, r.env.Boot != "")
	if r.st.Disk != nil {
		f["disk"] = r.st.Disk.Path
		f["disk-size"] = strconv.FormatInt(r.st.Disk.Size, 10)
	}
	for k, v := range r.st.Vars {
		f["var."+k] = v
	}
	return f
}

func (r *runner) hook(step, point string) error {
	if r.env.hook == nil {
		return nil
	}
	return r.env.hook(step, point)
}

func (r *runner) step(i int, st sequence.Step) error {
	b := st.Base()
	n := len(r.seq.Steps)
	ev := func(state, msg string, err error, kv ...any) {
		e := progress.Event{Kind: "step", Op: b.Name, State: state, Msg: msg, Data: map[string]any{"type": b.Type, "index": i + 1, "count": n}}
		for j := 0; j+1 < len(kv); j += 2 {
			e.Data[kv[j].(string)] = kv[j+1]
		}
		if err != nil {
			e.Error = err.Error()
		}
		r.rep.Emit(e)
	}
	// Only the apply-image right after a pipelined fetch runs alongside
	// its download; everything else waits for it to be verified.
	if _, apply := st.(*sequence.ApplyImage); !apply {
		if err := r.settle(); err != nil {
			return err
		}
	}
	p := sequence.Decide(st, r.facts())
	switch p.Decision {
	case sequence.AtRunTime:
		if !r.env.DryRun {
			return p.Err
		}
		r.rep.Printf("[%d/%d] %s", i+1, n, p)
		ev("plan", st.Describe(), nil)
		return nil
	case sequence.Skip:
		if err := r.settle(); err != nil {
			return err
		}
		r.rep.Printf("[%d/%d] %s", i+1, n, p)
		ev("skipped", b.When.Src, nil)
		if !r.env.DryRun {
			r.record(b, journal.Skipped, nil)
			return r.save()
		}
		return nil
	}
	if r.env.DryRun {
		// Requirements and select-disk change nothing: a dry run on the
		// machine runs them, to show what it would find.
		switch st.(type) {
		case *sequence.Requirements, *sequence.SelectDisk:
		default:
			r.rep.Printf("[%d/%d] %s", i+1, n, p)
			ev("plan", st.Describe(), nil)
			return nil
		}
	}
	if rec := r.jr.Step(b.Name); rec.Ended() && !alwaysRun(st) {
		if err := r.settle(); err != nil {
			return err
		}
		if rec.Status == journal.Continued {
			r.rep.Printf("[%d/%d] %s: failed in an earlier boot and was continued (journal): %s", i+1, n, b.Name, rec.Error)
			r.continued = append(r.continued, b.Name)
			ev("continued", "earlier boot", errors.New(rec.Error))
			return nil
		}
		r.rep.Printf("[%d/%d] %s: already done (journal)", i+1, n, b.Name)
		ev("skipped", "already done", nil)
		return nil
	}
	r.rep.Printf("[%d/%d] %s", i+1, n, p)
	if !readOnlyTypes[b.Type] {
		r.changed = true
	}
	ev("start", st.Describe(), nil)
	if err := r.hook(b.Name, "before"); err != nil {
		return err
	}
	r.record(b, journal.Started, nil)
	if err := r.save(); err != nil {
		return err
	}
	start, cpu0 := time.Now(), cpuNow()
	err := r.tries(st, ev)
	if err == nil && r.pendingFor(b) {
		return nil // recorded done (or failed) by settle
	}
	if err != nil && b.ContinueOnError && r.ctx.Err() == nil {
		// Only steps nothing later depends on may go on (sequence's
		// ContinueTypes); the journal keeps the failure as finished.
		r.rep.Printf("  FAILED, continuing (continue-on-error): %v", err)
		ev("continued", "", err)
		r.record(b, journal.Continued, err)
		r.continued = append(r.continued, b.Name)
		return r.save()
	}
	if err == nil {
		err = r.hook(b.Name, "after")
	}
	if err != nil {
		ev("failed", "", err)
		r.record(b, journal.Failed, err)
		r.save()
		return err
	}
	r.record(b, journal.Done, nil)
	if err := r.save(); err != nil {
		return err
	}
	cpu := cpuNow().since(cpu0)
	ev("done", fmt.Sprintf("%.1fs", time.Since(start).Seconds()), nil,
		"cpu_user_s", cpu.user.Seconds(), "cpu_sys_s", cpu.sys.Seconds(), "context_switches", cpu.switches)
	if p, ok := st.(*sequence.Power); ok && !r.env.DryRun {
		if i == n-1 {
			// The machine goes away with this step: the sequence is
			// done now, not after it.
			r.sequenceDone()
		}
		if r.poster != nil {
			// The status URL must hear it before the queue is lost.
			r.poster.Flush(10 * time.Second)
		}
		// Recorded as done first: the next boot must not reboot again.
		return r.env.Backend.Power(r.ctx, p.Type)
	}
	return nil
}

func (r *runner) record(b *sequence.StepBase, status string, err error) {
	rec := journal.Record{Name: b.Name, Type: b.Type, Status: status, Started: time.Now().UTC()}
	if old := r.jr.Step(b.Name); old != nil {
		rec.Attempts = old.Attempts
		if status != journal.Started {
			rec.Started = old.Started
		}
	}
	if status == journal.Started {
		rec.Attempts++
	} else {
		rec.Finished = time.Now().UTC()
	}
	if err != nil {
		rec.Error = err.Error()
	}
	r.jr.Set(rec)
}

// save writes the journal when there is a staging folder to write it to;
// before the target is mounted the journal lives in memory only (nothing
// destructive has a record worth keeping until the disk holds one).
func (r *runner) save() error {
	if r.staging == "" || r.env.DryRun {
		return nil
	}
	b, err := json.Marshal(r.st)
	if err != nil {
		return err
	}
	r.jr.State = b
	if err := journal.Save(filepath.Join(r.staging, journal.FileName), r.jr); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// adopt makes dir the staging folder, taking over a journal of the same
// sequence found there.
func (r *runner) adopt(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.staging = dir
	j, err := journal.Load(filepath.Join(dir, journal.FileName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return r.save()
	case err != nil:
		return err
	case j.Sequence != r.seq.Digest:
		r.rep.Printf("the journal in %s belongs to another sequence; starting over", dir)
		return r.save()
	case r.origin != "" && j.Origin != r.origin:
		r.rep.Printf("the journal in %s is from an earlier staging; starting over", dir)
		return r.save()
	}
	keep := r.st
	var st State
	if len(j.State) > 0 {
		if err := json.Unmarshal(j.State, &st); err != nil {
			return fmt.Errorf("journal state: %w", err)
		}
	}
	if !maps.Equal(st.Vars, keep.Vars) {
		// Steps done in an earlier boot used those values: finishing
		// with others would leave a machine half one, half the other.
		return fmt.Errorf("the journal in %s was started with other variables (%s): refusing to finish it with %s; boot with the same minint.var.… values, or start over (remove %s)",
			dir, varsString(st.Vars), varsString(keep.Vars), filepath.Join(dir, journal.FileName))
	}
	st.unmount = keep.unmount
	if keep.Disk != nil {
		st.Disk = keep.Disk
	}
	if keep.Target != "" {
		st.Target = keep.Target
	}
	r.st = &st
	j.Boots++
	r.jr = j
	if again := r.distrust(j); len(again) > 0 {
		r.rep.Printf("the journal is on the target disk, which others could have written: %s run again (the package is verified again, a download continues from the chunks that still match)", strings.Join(again, ", "))
	}
	var done []string
	for _, s := range j.Steps {
		if s.Status == journal.Done {
			done = append(done, s.Name)
		}
		if s.Status != journal.Skipped && !readOnlyTypes[s.Type] {
			r.changed = true
		}
	}
	r.rep.Printf("resuming from the journal in %s (boot %d; done: %s)", dir, j.Boots, strings.Join(done, ", "))
	r.rep.Emit(progress.Event{Kind: "sequence", State: "resume", Data: map[string]any{"done": done, "boots": j.Boots}})
	return r.save()
}

// finished reports whether j records every step of seq as finished: the
// sequence ended in an earlier boot, and a PE booted again (a network boot
// that comes back to it) does nothing rather than install again.
func finished(seq *sequence.Sequence, j *journal.Journal) bool {
	for _, st := range seq.Steps {
		if rec := j.Step(st.Base().Name); !rec.Ended() && (rec == nil || rec.Status != journal.Skipped) {
			return false
		}
	}
	return true
}

// distrust marks as started again the finished steps of a resumed journal
// that install what the run deploys: from the first fetch step on. The
// journal lies on the target disk, where whoever ran a system on it could
// have written one for this very sequence (its digest is public): it may
// say where to resume, but vouch for nothing. So the package is verified
// again against its signed manifest, the target cleaned and applied
// again, setup and boot files written again; what the steps before the
// fetch did (partitions, file systems, a refresh's captured state, which
// is signed) is checked by the steps that use it. A power step recorded
// as done moves the start past it: that boot saw the steps before it
// through, and doing them again would power off again. A finished journal
// (see finished) redoes nothing, and the run says so (earlier), unless
// Env.Redo asks for everything from the first fetch on, power steps
// included. It returns the steps to run again.
func (r *runner) distrust(j *journal.Journal) []string {
	ended := finished(r.seq, j)
	if ended && !r.env.Redo {
		r.earlier = true
		return nil
	}
	from := -1 // the first fetch after the last power step done
	for i, st := range r.seq.Steps {
		switch st.(type) {
		case *sequence.Power:
			if !ended && j.Step(st.Base().Name).Ended() {
				from = -1
			}
		case *sequence.Fetch:
			if from < 0 {
				from = i
			}
		}
	}
	if from < 0 {
		return nil
	}
	var again []string
	for _, st := range r.seq.Steps[from:] {
		if rec := j.Step(st.Base().Name); rec.Ended() {
			rec.Status, rec.Finished, rec.Error = journal.Started, time.Time{}, ""
			again = append(again, rec.Name)
		}
	}
	return again
}

func (r *runner) exec(st sequence.Step) error {
	switch s := st.(type) {
	case *sequence.Requirements:
		return r.requirements(s)
	case *sequence.SelectDisk:
		d, err := r.env.Backend.SelectDisk(r.ctx, s.Disk)
		if err != nil {
			return err
		}
		r.st.Disk = &d
		r.rep.Printf("  target disk: %s", d.Desc)
		return nil
	case *sequence.Partition:
		return r.partition(s)
	case *sequence.Format:
		// Never format under a mount (a resumed run may have mounted the
		// root to read the journal).
		r.unmountAll()
		parts, err := r.env.Backend.Format(r.ctx, *r.st.Disk, r.st.Parts, s.Only)
		if err != nil {
			return err
		}
		r.st.Parts = parts
		// The staging folder and journal exist right after formatting, so
		// that from here on a power cut loses at most the current step.
		if _, ok := rootPart(parts); ok && r.hasMountStep() {
			return r.mountRoot(r.targetDir())
		}
		return nil
	case *sequence.Mount:
		return r.mount(s)
	case *sequence.Fetch:
		return r.fetch(s)
	case *sequence.ApplyImage:
		return r.apply(s)
	case *sequence.Setup:
		return r.setup(s)
	case *sequence.PullState:
		return r.pullState(s)
	case *sequence.CaptureState:
		return r.captureState(s)
	case *sequence.BootFiles:
		return r.bootfiles(s)
	case *sequence.Command:
		return r.run(s)
	case *sequence.Power:
		unixSync()
		return nil
	case *sequence.CaptureImage:
		return r.capture(s)
	case *sequence.Clean:
		return r.clean(s)
	}
	return fmt.Errorf("step type %s has no implementation", st.Base().Type)
}

func (r *runner) requirements(s *sequence.Requirements) error {
	inv := r.env.Inventory
	var unmet []string
	if s.MinMemory > 0 && inv.Memory < int64(s.MinMemory) {
		unmet = append(unmet, fmt.Sprintf("memory: %s, need at least %s", bytesize.Size(inv.Memory).Human(), s.MinMemory.Explain()))
	}
	if s.MinCPUs > 0 && inv.CPUs < s.MinCPUs {
		unmet = append(unmet, fmt.Sprintf("cpus: %d, need at least %d", inv.CPUs, s.MinCPUs))
	}
	if s.MinDisk > 0 {
		var best int64
		for _, d := range inv.Disks {
			if !d.BootMedium && d.Size > best {
				best = d.Size
			}
		}
		if best < int64(s.MinDisk) {
			unmet = append(unmet, fmt.Sprintf("disk: largest candidate is %s, need at least %s", bytesize.Size(best).Human(), s.MinDisk.Explain()))
		}
	}
	if len(s.Firmware) > 0 {
		found := false
		for _, f := range s.Firmware {
			found = found || f == inv.Firmware
		}
		if !found {
			unmet = append(unmet, fmt.Sprintf("firmware: %s, need %s", inv.Firmware, strings.Join(s.Firmware, " or ")))
		}
	}
	for _, d := range s.Devices {
		switch {
		case d == "net":
			if len(inv.NICs) == 0 {
				unmet = append(unmet, "devices: no network interface")
			}
		case d == "disk":
			n := 0
			for _, x := range inv.Disks {
				if !x.BootMedium {
					n++
				}
			}
			if n == 0 {
				unmet = append(unmet, "devices: no disk besides the boot medium")
			}
		case strings.HasPrefix(d, "/dev/"):
			if _, err := os.Stat(d); err != nil {
				unmet = append(unmet, fmt.Sprintf("devices: %s missing", d))
			}
		case strings.HasPrefix(d, "pci:"):
			want := strings.ToLower(strings.TrimPrefix(d, "pci:"))
			found := false
			for _, p := range inv.PCI {
				found = found || p == want
			}
			if !found {
				unmet = append(unmet, fmt.Sprintf("devices: no PCI device %s", want))
			}
		}
	}
	for _, u := range unmet {
		r.rep.Printf("  UNMET %s", u)
	}
	if len(unmet) > 0 {
		r.rep.Emit(progress.Event{Kind: "requirements", State: "failed", Data: map[string]any{"unmet": unmet}})
		return fmt.Errorf("requirements not met (nothing was written):\n  %s", strings.Join(unmet, "\n  "))
	}
	r.rep.Printf("  all requirements met")
	return nil
}

func (r *runner) unmountAll() {
	r.abandon()
	for i := len(r.st.unmount) - 1; i >= 0; i-- {
		r.st.unmount[i]()
	}
	r.st.unmount = nil
	r.st.Target = ""
	r.staging = ""
}

func (r *runner) hasMountStep() bool {
	for _, st := range r.seq.Steps {
		if _, ok := st.(*sequence.Mount); ok {
			return true
		}
	}
	return false
}

// targetDir is where the mount step will mount the root: the first mount
// step's target.
func (r *runner) targetDir() string {
	for _, st := range r.seq.Steps {
		if m, ok := st.(*sequence.Mount); ok {
			return m.Target
		}
	}
	return "/mnt/target"
}

func (r *runner) partition(s *sequence.Partition) error {
	if r.st.Disk == nil {
		return errors.New("no target disk selected")
	}
	// A disk that already carries this layout may hold our journal: a
	// PE booted again after a power cut finds it here, before repartitioning
	// would destroy it. Or it may hold a system deployed before, or one
	// that is hibernated.
	if r.staging == "" {
		if parts, ok := r.env.Backend.Existing(r.ctx, *r.st.Disk, &s.Layout); ok {
			hib, hibernated := hibernatedPart(parts)
			if hibernated && !r.env.Redo {
				return r.hibernated(hib)
			}
			ours, system := false, ""
			if !hibernated { // with Redo a hibernated disk starts over, unlooked at
				ours, system = r.look(&s.Layout, parts)
			}
			if ours {
				found, err := r.probeJournal(parts, &s.Layout)
				if err != nil {
					return err
				}
				if rec := r.jr.Step(s.Name); found && rec != nil && rec.Status == journal.Done {
					r.rep.Printf("  the disk already carries this layout and journal: partitioning skipped")
					return nil
				}
			} else if system != "" && !r.env.Redo {
				return r.deployedBefore(parts[sequence.RootPartition(&s.Layout)], system)
			}
		}
	}
	parts, err := r.env.Backend.Partition(r.ctx, *r.st.Disk, &s.Layout)
	if err != nil {
		return err
	}
	r.st.Parts = parts
	r.st.Layout = s.Name
	return nil
}

// ErrHibernated: partition found the memory image of a hibernated system
// on a disk that carries the sequence's layout (see hibernated).
var ErrHibernated = errors.New("refusing to touch a disk whose system is hibernated")

// hibernated is the refusal to look at a disk with the sequence's layout
// whose swap partition holds a hibernated system's memory image. That
// system's file systems are as its memory holds them: a look mounts the
// root, which replays its log, and adopting a journal there writes to
// it, and either corrupts the file systems when the system resumes. A
// machine that boots the network first comes to the PE on its way back
// from hibernation too. minint.redo=1 deploys the disk again from its
// partitions on, journal or not: format writes the swap area again, so
// that the new system cannot resume the old one's memory image.
func (r *runner) hibernated(p Part) error {
	return fmt.Errorf("%w: %s partition %d holds the memory image of a hibernated system, and mounting its file systems now, even to look, would damage them when it resumes. Nothing was changed. Start the system from its disk and shut it down instead of hibernating, or boot with minint.redo=1 to deploy this disk again, erasing it",
		ErrHibernated, r.st.Disk.Path, p.Number)
}

// hibernatedPart returns the first of parts that holds a hibernated
// system's memory image.
func hibernatedPart(parts []Part) (Part, bool) {
	for _, p := range parts {
		if p.Hibernated {
			return p, true
		}
	}
	return Part{}, false
}

// ErrDeployed: partition found a system on a disk that carries the
// sequence's own layout but not its journal (see deployedBefore).
var ErrDeployed = errors.New("refusing to partition a disk that holds a system deployed before")

// look sees, read-only, what the root partition of a disk that already
// carries layout l holds: a journal of this sequence (ours: the run
// resumes there, and only then is the disk mounted read-write), or else
// an installed system, named as its os-release names it. A look must not
// change what it looks at: a disk that is not ours may be refused next.
func (r *runner) look(l *diskops.Layout, parts []Part) (ours bool, system string) {
	i := sequence.RootPartition(l)
	if i < 0 || i >= len(parts) {
		return false, ""
	}
	r.env.Backend.Look(r.ctx, *r.st.Disk, parts[i], func(root string) error {
		j, err := journal.Load(filepath.Join(root, strings.TrimPrefix(answer.Dir, "/"), journal.FileName))
		if ours = err == nil && j.Sequence == r.seq.Digest; ours {
			return nil
		}
		if sys, err := capture.Inspect(root); err == nil {
			system = sys.PrettyName
			if system == "" {
				system = sys.OSName
			}
		}
		return nil
	})
	return ours, system
}

// deployedBefore is the refusal to partition a disk that carries the
// sequence's layout with an installed system on its root partition (root)
// and no journal of this sequence. That is what a deployment with this
// layout leaves once the system has started, when its first boot
// restored a user state: minint-setup then removes /minint, journal
// included (other first boots keep it, and the finished journal makes a
// PE do nothing). A PE that comes to this disk again, most often because
// the network is first in the machine's boot order, must not destroy the
// system and its users' data; without a server that remembers each
// machine, the PE cannot tell that visit from a wanted reinstallation, so
// it refuses, and minint.redo=1 (Env.Redo) says to deploy again. A disk
// with another layout, or with this layout and nothing installed yet (a
// power cut between partition and mount, before the journal exists), is
// partitioned as the sequence says. (An MBR table has no partition names,
// so there "this layout" is as many partitions: an older system that
// happens to match is refused too, which is the safe side of the doubt.)
func (r *runner) deployedBefore(root Part, system string) error {
	return fmt.Errorf("%w: %s already has this sequence's partitions, and partition %d holds an installed system (%s) but no journal: most likely a system deployed there that has started since (a first boot that restores a user state removes the journal), then booted into the PE again (is the network first in its boot order?). Nothing was changed. Boot with minint.redo=1 to deploy it again, or boot it from its disk",
		ErrDeployed, r.st.Disk.Path, root.Number, system)
}

func (r *runner) probeJournal(parts []Part, l *diskops.Layout) (bool, error) {
	i := sequence.RootPartition(l)
	if i < 0 || i >= len(parts) {
		return false, nil
	}
	dir := r.targetDir()
	un, err := r.env.Backend.Mount(r.ctx, parts[i], dir)
	if err != nil {
		return false, nil // not mountable: not ours
	}
	stage := filepath.Join(dir, strings.TrimPrefix(answer.Dir, "/"))
	j, err := journal.Load(filepath.Join(stage, journal.FileName))
	if err != nil || j.Sequence != r.seq.Digest {
		un()
		return false, nil
	}
	r.st.unmount = append(r.st.unmount, un)
	r.st.Target = dir
	disk := r.st.Disk
	if err := r.adopt(stage); err != nil {
		return false, err
	}
	r.st.Disk = disk
	r.st.Target = dir
	// Device names may differ from the last boot's: what the disk says
	// now wins over what the journal remembers, which only fills gaps.
	for i := range parts {
		for _, old := range r.st.Parts {
			if old.Number == parts[i].Number && parts[i].FSUUID == "" {
				parts[i].FSUUID = old.FSUUID
			}
		}
	}
	r.st.Parts = parts
	return true, r.save()
}

// cpuUse is the CPU time the PE and its finished children have used, and
// how often the PE's threads gave up or lost their CPU. A step's done
// event carries its share, so that a benchmark (or a slow field run) tells
// a step that computes from one that waits, and a pipelined download's
// cost from the apply's (it is counted in the apply-image step it runs
// beside).
type cpuUse struct {
	user, sys time.Duration
	switches  int64
}

func cpuNow() cpuUse {
	var u cpuUse
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) != nil {
			continue
		}
		u.user += time.Duration(ru.Utime.Nano())
		u.sys += time.Duration(ru.Stime.Nano())
		if who == unix.RUSAGE_SELF {
			u.switches = ru.Nvcsw + ru.Nivcsw
		}
	}
	return u
}

func (u cpuUse) since(v cpuUse) cpuUse {
	return cpuUse{u.user - v.user, u.sys - v.sys, u.switches - v.switches}
}
