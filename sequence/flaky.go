package sequence

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// A step meets a flaky world (a disk that shows up late, a server that
// restarts, a command that sometimes fails) with four keys every step
// may have, within the limits below:
//
//	steps:
//	  - type: select-disk
//	    disk: {transport: usb}
//	    retries: 5            # try again up to 5 more times …
//	    retry-delay: 10s      # … after 10s, 20s, 40s, … (at most MaxRetryDelay)
//	  - type: run
//	    name: report-inventory
//	    shell: "curl -fsS -d @/tmp/inventory http://10.0.2.2:8080/inventory"
//	    timeout: 2m           # cancelled and failed after 2 minutes
//	    retries: 3
//	    continue-on-error: true   # a failure is logged, the run goes on
//
// timeout: any step. The step is cancelled when it runs longer and fails
// with "timed out after D" (then retries apply). run and fetch default to
// 1h, capture-image to 6h; fetch's bounds the whole fetch, including a
// download that goes on while apply-image reads it.
//
// retries: only steps that a retry cannot make worse and whose failure
// can be the world's rather than the machine's (RetryTypes). A failed
// partition, format, clean, apply-image or bootfiles step means a failing
// disk or a bad image: trying again hides that, and a power cut in the
// middle is already covered (the journal redoes the step at the next
// boot). fetch's retries bound the tries of each request (default 8),
// which resume a download where it stopped: the safe retry for a fetch.
//
// continue-on-error: only steps no later step depends on
// (ContinueTypes). Every other step guards the fail-safe order that
// checkOrder enforces (requirements before anything destructive,
// capture-state before clean, a verified fetch before clean and
// apply-image, setup before bootfiles…): going on after it failed would
// defeat that order.

// MaxRetryDelay caps the doubling wait between a step's tries.
const MaxRetryDelay = 5 * time.Minute

// DefaultRetryDelay is the first wait when retry-delay is not given.
const DefaultRetryDelay = 10 * time.Second

// MaxRetries bounds retries: an unattended run must end.
const MaxRetries = 100

// RetryTypes are the step types that may have retries.
var RetryTypes = map[string]bool{
	"select-disk":   true, // a disk may show up late (USB, SAN)
	"fetch":         true, // per request, see above
	"pull-state":    true,
	"run":           true,
	"capture-image": true, // the upload goes to .partial, then MOVE
}

// ContinueTypes are the step types that may have continue-on-error.
var ContinueTypes = map[string]bool{
	"run":           true,
	"capture-image": true,
}

// RetryWait is the wait before try number try+1 (try counts from 1): the
// step's retry-delay (default DefaultRetryDelay), doubled after each try,
// at most MaxRetryDelay (or retry-delay itself when that is longer).
func (b *StepBase) RetryWait(try int) time.Duration {
	d := time.Duration(b.RetryDelay)
	if d == 0 {
		d = DefaultRetryDelay
	}
	limit := max(MaxRetryDelay, d)
	for i := 1; i < try && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// checkFlaky refuses retries and continue-on-error on steps where they
// would be unsafe (see above).
func checkFlaky(b *StepBase, m *ast.MappingNode) error {
	switch {
	case b.Retries < 0:
		return nodeErr(field(m, "retries"), "retries must not be negative")
	case b.Retries > MaxRetries:
		return nodeErr(field(m, "retries"), "retries %d: at most %d (an unattended run must end)", b.Retries, MaxRetries)
	case has(m, "retries") && b.Retries > 0 && !RetryTypes[b.Type]:
		why := "its failure means a failing disk or a bad image, not a flaky world, and a power cut is already covered by the journal"
		switch b.Type {
		case "requirements":
			why = "it checks the inventory taken at boot, which another try finds the same"
		case "mount", "reboot", "poweroff", "capture-state":
			why = "its failure is not the world's"
		}
		return nodeErr(field(m, "retries"), "retries: a failed %s step is not retried: %s (retries are for %s)", b.Type, why, typeList(RetryTypes))
	case has(m, "retry-delay") && b.Retries == 0:
		return nodeErr(field(m, "retry-delay"), "retry-delay without retries: set retries: N too")
	case has(m, "retry-delay") && b.Type == "fetch":
		return nodeErr(field(m, "retry-delay"), "retry-delay: fetch retries each request with its own backoff")
	case b.ContinueOnError && !ContinueTypes[b.Type]:
		return nodeErr(field(m, "continue-on-error"), "continue-on-error: a failed %s step must stop the run: it guards the fail-safe order later steps rely on (continue-on-error is for %s)", b.Type, typeList(ContinueTypes))
	}
	return nil
}

func typeList(m map[string]bool) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// flakyString describes a step's retry and error policy for plans ("" when
// it has none).
func (b *StepBase) flakyString() string {
	var p []string
	if b.Retries > 0 && b.Type != "fetch" {
		p = append(p, fmt.Sprintf("retries %d", b.Retries))
	}
	if b.ContinueOnError {
		p = append(p, "continue on error")
	}
	return strings.Join(p, ", ")
}
