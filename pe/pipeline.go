package pe

import (
	"context"
	"fmt"
	"github.com/minint/minint/bytesize"
	"path"
	"path/filepath"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/internal/redact"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/pe/fetch"
	"github.com/minint/minint/pe/journal"
	"github.com/minint/minint/sequence"
)

// Pipelined fetch and apply (fetch mode pipeline, the default for HTTP
// when the target has room to stage and the manifest has chunk hashes).
//
// The fetch step verifies the signed manifest, starts downloading the image
// into the staging folder (fetch.Transfer) and returns while the download
// goes on; the apply-image step right after it reads the WIM from the
// growing file. Total time is about the slower of the two instead of
// their sum.
//
// Why this stays fail-closed:
//   - Nothing reads a byte that the signed manifest has not vouched for: the
//     Transfer hands out a chunk only once it is whole on disk and its
//     hash matches the manifest's chunk list, which the ed25519
//     signature covers. A tampered or truncated server makes apply fail;
//     it cannot make apply write anything the image's signer did not
//     ship. The decompressed data is checked on top, against the WIM's
//     SHA-1s or the manifest's XXH64 table (wim.Checksums).
//   - The whole file is still the gate: the fetch step is recorded done
//     only after every chunk of it is on disk and matched (which verifies
//     the whole file, see fetch.Transfer) and the file has its final name,
//     and apply-image waits for that before it reports done. Every other step (bootfiles above all)
//     waits for it before it starts (settle), so a package that fails
//     verification never gets boot files; its failure is the failure of
//     the step that was waiting.
//   - Until then the journal says fetch "started", so a PE booted again
//     after a power cut fetches again: the Transfer rehashes the partial
//     file's chunks, keeps those that match and continues with the rest,
//     and apply-image (also not done) cleans the target and applies again.
//
// The pipeline spans exactly the fetch step and the apply-image step that
// follows it in the sequence; with anything else after fetch the mode is
// stage (auto) or refused (explicit pipeline).
type pipeline struct {
	base   *sequence.StepBase
	index  int // of the fetch step, for its events
	tr     *fetch.Transfer
	task   *progress.Task
	cancel context.CancelFunc
	start  time.Time
	path   string
}

// followedByApply reports whether the step right after the fetch step s
// is apply-image, the only step that reads a download still under way.
func (r *runner) followedByApply(s *sequence.Fetch) (int, bool) {
	for i, st := range r.seq.Steps {
		if st == sequence.Step(s) {
			if i+1 < len(r.seq.Steps) {
				_, ok := r.seq.Steps[i+1].(*sequence.ApplyImage)
				return i, ok
			}
			return i, false
		}
	}
	return -1, false
}

// startPipeline starts the download of e from url into the staging folder
// and leaves it running as r.pending; ctx's deadline (the fetch step's
// time limit) bounds it.
func (r *runner) startPipeline(ctx context.Context, c *fetch.Client, s *sequence.Fetch, url string, e *manifest.Entry, task *progress.Task) (string, error) {
	i, ok := r.followedByApply(s)
	if !ok {
		return "", fmt.Errorf("mode pipeline: the step after %q must be apply-image (the only step that reads a download still under way)", s.Name)
	}
	if r.staging == "" {
		return "", fmt.Errorf("no staging folder to download into (mount the target first)")
	}
	// The download outlives the fetch step's context, not its deadline.
	var pctx context.Context
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		pctx, cancel = context.WithDeadline(r.ctx, dl)
	} else {
		pctx, cancel = context.WithCancel(r.ctx)
	}
	dest := filepath.Join(r.staging, path.Base(e.Path))
	tr, err := c.StartTransfer(pctx, url, dest, e, task.Callback())
	if err != nil {
		cancel()
		return "", err
	}
	if tr.IgnoresRange() && s.Mode == "pipeline" {
		// Asked for the overlap, which needs Range: refuse rather
		// than quietly deliver something else (auto accepts it).
		tr.Close()
		cancel()
		return "", fmt.Errorf("mode pipeline: %s: %w (mode auto or stage downloads it whole)", redact.URL(url), httpx.ErrNoRange)
	}
	if tr.Resumed > 0 {
		r.rep.Printf("  %s of %s already in the staging folder from an earlier try (chunk hashes match)", bytesize.Size(tr.Resumed).Human(), e.Path)
	}
	if tr.IgnoresRange() {
		r.rep.Printf("  the server ignores Range requests: %s downloads whole, in order, and the next step applies it once what it reads has arrived (%s verified before use, all of them before boot files)", e.Path, eachChunk(e))
	} else {
		r.rep.Printf("  %s downloads while the next step applies it (%s verified before use, all of them before boot files)", e.Path, eachChunk(e))
	}
	r.pending = &pipeline{base: s.Base(), index: i, tr: tr, task: task, cancel: cancel, start: time.Now(), path: dest}
	return dest, nil
}

// pendingFor reports whether step b's work goes on in the background.
func (r *runner) pendingFor(b *sequence.StepBase) bool {
	return r.pending != nil && r.pending.base == b
}

// settle waits for a download still under way and records its fetch step
// as done, or failed: every step but the apply-image that reads it calls it
// first.
func (r *runner) settle() error {
	p := r.pending
	if p == nil {
		return nil
	}
	r.pending = nil
	err := p.tr.Wait()
	p.tr.Close()
	p.cancel()
	p.task.Finish(err)
	if err == nil {
		err = r.hook(p.base.Name, "after")
	}
	e := progress.Event{Kind: "step", Op: p.base.Name, Data: map[string]any{"type": p.base.Type, "index": p.index + 1, "count": len(r.seq.Steps)}}
	if err != nil {
		e.State, e.Error = "failed", err.Error()
		r.rep.Emit(e)
		r.record(p.base, journal.Failed, err)
		r.save()
		return fmt.Errorf("the download of step %q failed: %w", p.base.Name, err)
	}
	r.record(p.base, journal.Done, nil)
	if err := r.save(); err != nil {
		return err
	}
	e.State, e.Msg = "done", fmt.Sprintf("%.1fs", time.Since(p.start).Seconds())
	e.Data["range_fetches"] = p.tr.RangeFetches
	e.Data["direct_written_bytes"], e.Data["direct_read_bytes"] = p.tr.DirectIO()
	r.rep.Emit(e)
	r.rep.Printf("  %s: downloaded and verified (every chunk of the file matches the signed manifest)", p.base.Name)
	return nil
}

// abandon stops a download still under way (a failed run, an unmount):
// its partial file stays for the next boot.
func (r *runner) abandon() {
	p := r.pending
	if p == nil {
		return
	}
	r.pending = nil
	p.tr.Close()
	p.cancel()
	p.task.Finish(fmt.Errorf("stopped: %w", fetch.ErrClosed))
}
