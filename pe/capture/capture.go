package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/minint/minint/generalize"
	"github.com/minint/minint/wim"
)

// DefaultExclusions leave out what is not part of an installed system:
// kernel and runtime file systems (their mount points stay, empty), temp
// files, swap files and minint's own staging folder.
var DefaultExclusions = []string{
	"/proc/*", "/sys/*", "/dev/*", "/run/*", "/tmp/*", "/var/tmp/*",
	"/swapfile", "/swap.img", "/minint",
}

// Options describe one capture.
type Options struct {
	Name, Description string
	Compression       wim.Compression
	ChunkSize         int
	Threads           int
	// Exclusions are wimlib capture-config patterns; nil means
	// DefaultExclusions (an empty non-nil slice excludes nothing).
	Exclusions []string
	// Generalize selects the operations; all off captures as is.
	Generalize generalize.Options
	// InPlace applies the generalization to root itself (it must be
	// mounted read-write) instead of only to what the image stores.
	InPlace bool
	// Check reads the finished WIM back and verifies every hash.
	Check bool
	// System is the source's facts for the image XML (nil: Inspect(root)).
	System *System
	// Progress gets bytes of file data stored and the total.
	Progress func(done, total int64)
	// Now stamps the capture time (zero: time.Now()).
	Now time.Time
}

// Result is what Image made.
type Result struct {
	Path   string            `json:"path"`
	Size   int64             `json:"size"`
	System *System           `json:"system"`
	Plan   *generalize.Plan  `json:"generalize"`
	Fields map[string]string `json:"fields"`
}

// Image captures the system mounted at root into a new WIM at out, as one
// image whose XML records the OS, kernels, capture time and the generalize
// report (MININT/... fields). Unless InPlace, root is only read. On error,
// and when ctx is cancelled, no file is left at out.
func Image(ctx context.Context, root, out string, o Options) (*Result, error) {
	sys := o.System
	if sys == nil {
		var err error
		if sys, err = Inspect(root); err != nil {
			return nil, err
		}
	}
	plan, err := generalize.Scan(root, o.Generalize)
	if err != nil {
		return nil, err
	}
	mode := "snapshot"
	switch {
	case o.Generalize.None():
		mode = "off"
	case o.InPlace:
		mode = "in-place"
		if err := plan.ApplyInPlace(root); err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
	}
	excl := o.Exclusions
	if excl == nil {
		excl = DefaultExclusions
	}
	cfg, err := wim.ParseCaptureConfig(strings.NewReader("[ExclusionList]\n" + strings.Join(excl, "\n") + "\n"))
	if err != nil {
		return nil, fmt.Errorf("capture: exclusions: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	fields := map[string]string{
		"MININT/OS_ID":              sys.OSID,
		"MININT/OS_NAME":            sys.OSName,
		"MININT/OS_VERSION":         sys.OSVersion,
		"MININT/PRETTY_NAME":        sys.PrettyName,
		"MININT/KERNELS":            strings.Join(sys.Kernels, " "),
		"MININT/CAPTURE_TIME":       now.UTC().Format(time.RFC3339),
		"MININT/GENERALIZE/MODE":    mode,
		"MININT/GENERALIZE/SUMMARY": plan.Summary(),
		"MININT/GENERALIZE/REPORT":  strings.TrimSpace(plan.Report()),
		"MININT/EXCLUSIONS":         strings.Join(excl, " "),
	}
	for k, v := range fields {
		if v == "" {
			delete(fields, k) // empty elements are not written
		}
	}
	name := o.Name
	if name == "" {
		name = strings.TrimSpace(sys.OSName + " " + sys.OSVersion)
	}
	desc := o.Description
	if desc == "" {
		desc = fmt.Sprintf("%s captured %s", sys.PrettyName, now.UTC().Format(time.RFC3339))
	}
	w, err := wim.Create(out, wim.WriterOptions{Compression: o.Compression, ChunkSize: o.ChunkSize, Threads: o.Threads})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	iopt := wim.ImageOptions{Name: name, Description: desc, Config: cfg, Fields: fields, Progress: o.Progress}
	if mode == "snapshot" {
		iopt.Filter = plan.Filter()
	}
	err = w.AddImage(ctx, root, iopt)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// wim.Create wrote to a temporary file, which Close removed:
		// out is as it was.
		return nil, fmt.Errorf("capture: %s: %w", out, err)
	}
	if o.Check {
		if err := Check(ctx, out); err != nil {
			os.Remove(out)
			return nil, err
		}
	}
	fi, err := os.Stat(out)
	if err != nil {
		return nil, err
	}
	return &Result{Path: out, Size: fi.Size(), System: sys, Plan: plan, Fields: fields}, nil
}

// Check verifies every hash of a WIM (or split set) on disk.
func Check(ctx context.Context, path string) error {
	r, err := wim.OpenReader(path)
	if err != nil {
		return fmt.Errorf("capture: checking %s: %w", path, err)
	}
	defer r.Close()
	if err := r.Verify(ctx, wim.VerifyOptions{}); err != nil {
		return fmt.Errorf("capture: checking %s: %w", path, err)
	}
	if r.Info().ImageCount < 1 {
		return fmt.Errorf("capture: checking %s: %w", path, errors.New("no image"))
	}
	return nil
}
