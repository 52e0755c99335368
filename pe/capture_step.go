package pe

import (
	"context"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/pe/upload"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/wim"
)

// CaptureRequest is what the capture-image step asks of a CaptureBackend.
type CaptureRequest struct {
	Step *sequence.CaptureImage
	// Phase starts a progress task ("capture", "check", "upload"); the
	// returned functions report progress and the end of the phase.
	Phase func(name, unit string) (progress func(done, total int64), finish func(error))
	Log   func(format string, a ...any)
	// HTTP uploads the image (nil: httpx's defaults).
	HTTP *httpx.Client
}

// CaptureReport says what was captured and where it went.
type CaptureReport struct {
	Source      string                      `json:"source"`
	System      *capture.System             `json:"system"`
	Plan        *generalize.Plan            `json:"generalize"`
	Files       []string                    `json:"files"` // URL, or paths on the destination partition
	Size        int64                       `json:"size"`
	SHA256      string                      `json:"sha256,omitempty"`
	Fields      map[string]string           `json:"fields"`
	Upload      *upload.Result              `json:"upload,omitempty"`
	Destination sequence.CaptureDestination `json:"destination"`
}

// CaptureBackend is implemented by backends that can capture (the real
// SystemBackend); the engine refuses capture-image on others.
type CaptureBackend interface {
	Capture(ctx context.Context, req CaptureRequest) (*CaptureReport, error)
}

func (r *runner) capture(s *sequence.CaptureImage) error {
	cb, ok := r.env.Backend.(CaptureBackend)
	if !ok {
		return errors.New("this backend cannot capture images")
	}
	ctx, cancel := context.WithTimeout(r.ctx, time.Duration(s.Timeout))
	defer cancel()
	rep, err := cb.Capture(ctx, CaptureRequest{
		Step: s,
		Phase: func(name, unit string) (func(done, total int64), func(error)) {
			t := r.rep.Start(name, 0, unit)
			return t.Callback(), t.Finish
		},
		Log:  func(f string, a ...any) { r.rep.Printf("  "+f, a...) },
		HTTP: r.http,
	})
	if err != nil {
		return err
	}
	r.rep.Printf("  captured %s: %s", rep.Source, rep.Plan.Summary())
	r.rep.Printf("  image stored at %s (%s)", strings.Join(rep.Files, ", "), bytesize.Size(rep.Size).Human())
	r.rep.Emit(progress.Event{Kind: "capture", State: "done", Msg: strings.Join(rep.Files, " "), Data: map[string]any{"report": rep}})
	return nil
}

// Capture finds the installed system, captures it and delivers the WIM.
func (b *SystemBackend) Capture(ctx context.Context, req CaptureRequest) (*CaptureReport, error) {
	disks, err := diskops.Discover(ctx, b.Discover)
	if err != nil {
		return nil, err
	}
	return captureFromDisks(ctx, disks, req)
}

// captureFromDisks chooses the source and destination among disks and
// captures.
func captureFromDisks(ctx context.Context, disks []*diskops.Disk, req CaptureRequest) (*CaptureReport, error) {
	s := req.Step
	logf := req.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cands, err := capture.FindInstalledRoots(ctx, disks, capture.FindOptions{Log: logf})
	if err != nil {
		return nil, err
	}
	c, err := capture.SelectRoot(cands, s.Source)
	if err != nil {
		return nil, err
	}
	logf("source: %s", c)
	var dest *diskops.Disk
	if s.Destination.Disk != nil {
		if dest, err = diskops.Select(disks, *s.Destination.Disk); err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		if dest.Path == c.DiskPath {
			return nil, fmt.Errorf("destination %s is the reference disk itself: refusing to write to it", dest.Path)
		}
	}
	return captureTo(ctx, c, dest, disks, req)
}

// captureTo runs the capture of candidate c to the step's destination
// (dest is the chosen disk for a disk destination).
func captureTo(ctx context.Context, c *capture.Candidate, dest *diskops.Disk, disks []*diskops.Disk, req CaptureRequest) (*CaptureReport, error) {
	s := req.Step
	logf := req.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	phase := req.Phase
	if phase == nil {
		phase = func(string, string) (func(int64, int64), func(error)) { return nil, func(error) {} }
	}
	srcDir, err := os.MkdirTemp("", "minint-source-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(srcDir)
	sys, unmount, err := mountSystem(c, srcDir, s.InPlace, disks, logf)
	if err != nil {
		return nil, err
	}
	defer unmount()
	comp, _ := wim.ParseCompression(s.Compression)
	excl := s.Exclusions
	if len(excl) == 0 {
		excl = capture.DefaultExclusions
	}
	excl = append(append([]string{}, excl...), s.ExtraExclusions...)
	opts := capture.Options{
		Name: s.ImageName, Description: s.Description, Compression: comp,
		Exclusions: excl, Generalize: s.Generalize, InPlace: s.InPlace, System: sys,
	}
	rep := &CaptureReport{Source: c.String(), System: sys, Destination: s.Destination}

	work, destDir, done, err := workFile(dest, s)
	if err != nil {
		return nil, err
	}
	defer done()

	prog, finish := phase("capture", "bytes")
	opts.Progress = prog
	res, err := capture.Image(ctx, srcDir, work, opts)
	finish(err)
	if err != nil {
		return nil, captureError(err, s, dest, c, sys)
	}
	rep.Plan, rep.Fields, rep.Size = res.Plan, res.Fields, res.Size
	if s.Check {
		_, finish := phase("check", "")
		err := capture.Check(ctx, work)
		finish(err)
		if err != nil {
			return nil, err
		}
	}
	switch {
	case s.Destination.URL != "":
		prog, finish := phase("upload", "bytes")
		up, err := upload.File(ctx, work, s.Destination.URL, upload.Options{Client: req.HTTP, Overwrite: s.Destination.Overwrite, Progress: prog, Log: logf})
		finish(err)
		if err != nil {
			return nil, err
		}
		rep.Upload, rep.SHA256, rep.Files = up, up.SHA256, []string{up.URL}
	case dest != nil:
		files, err := placeOnDisk(ctx, work, filepath.Join(destDir, s.Destination.Path), s.Destination, s.Check)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			rep.Files = append(rep.Files, fmt.Sprintf("%s:%s", partName(dest, s.Destination.Partition), strings.TrimPrefix(f, destDir)))
		}
	}
	return rep, nil
}

// mountSystem mounts the reference system c at dir, read-only unless
// inPlace, and returns what Inspect found there and the function that
// unmounts it all.
func mountSystem(c *capture.Candidate, dir string, inPlace bool, disks []*diskops.Disk, logf func(string, ...any)) (*capture.System, func(), error) {
	var m *diskops.Mounted
	var err error
	if inPlace {
		m, err = c.Mount(dir, diskops.MountOptions{})
	} else {
		m, err = c.MountReadOnly(dir)
	}
	if err != nil {
		return nil, nil, err
	}
	mounts := []*diskops.Mounted{m}
	unmount := func() { // the last mounted first
		for i := len(mounts) - 1; i >= 0; i-- {
			mounts[i].Close()
		}
	}
	sys, err := capture.Inspect(dir)
	if err != nil {
		unmount()
		return nil, nil, err
	}
	// A separate /boot holds the kernels the image needs: it is mounted
	// (read-only) in its place and captured with the root. The ESP is not:
	// a deployment writes its own boot loader.
	for _, bm := range sys.SeparateBoot {
		if bm.Mount != "/boot" {
			logf("not captured: %s (the deployment makes its own)", bm)
			continue
		}
		bc, err := capture.FindFilesystem(disks, bm.Source)
		if err != nil {
			unmount()
			return nil, nil, fmt.Errorf("the system mounts %s: %w", bm, err)
		}
		bmnt, err := bc.MountReadOnly(filepath.Join(dir, "boot"))
		if err != nil {
			unmount()
			return nil, nil, err
		}
		mounts = append(mounts, bmnt)
		logf("captured with it: %s from %s", bm.Mount, bc.DiskPath)
		if sys, err = capture.Inspect(dir); err != nil {
			unmount()
			return nil, nil, err
		}
	}
	return sys, unmount, nil
}

// workFile is where the WIM is built: next to its final place on a
// destination disk (unless it is to be split), which it mounts at
// destDir, else a new file in work-dir. done removes the file (a WIM
// placed on the disk has been moved by then) and unmounts the disk.
func workFile(dest *diskops.Disk, s *sequence.CaptureImage) (work, destDir string, done func(), err error) {
	var cleanup []func()
	done = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	defer func() {
		if err != nil {
			done()
		}
	}()
	if dest != nil {
		if destDir, err = os.MkdirTemp("", "minint-dest-"); err != nil {
			return "", "", nil, err
		}
		cleanup = append(cleanup, func() { os.Remove(destDir) })
		dm, err := mountDest(dest, s.Destination.Partition, destDir)
		if err != nil {
			return "", "", nil, err
		}
		cleanup = append(cleanup, func() { dm.Close() })
		final := filepath.Join(destDir, s.Destination.Path)
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return "", "", nil, err
		}
		if s.Destination.SplitSize == 0 {
			work = final + ".partial"
		}
	}
	if work == "" {
		if err := os.MkdirAll(s.WorkDir, 0o755); err != nil {
			return "", "", nil, err
		}
		f, err := os.CreateTemp(s.WorkDir, "capture-*.wim")
		if err != nil {
			return "", "", nil, err
		}
		f.Close()
		work = f.Name()
	}
	cleanup = append(cleanup, func() { os.Remove(work) })
	return work, destDir, done, nil
}

// captureError says what a capture's failure to write means for the
// step: which file system is too small, or that it needs a split.
func captureError(err error, s *sequence.CaptureImage, dest *diskops.Disk, c *capture.Candidate, sys *capture.System) error {
	if errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w (the destination file system cannot hold it in one file: set destination split-size, e.g. 4000M for FAT32)", err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		// The path is a temporary mount point: say which disk is full.
		where := "work-dir " + s.WorkDir + " (in the PE's memory unless it is a disk: set work-dir)"
		if dest != nil && s.Destination.SplitSize == 0 {
			where = "destination " + partName(dest, s.Destination.Partition)
		}
		return fmt.Errorf("%w: %s is too small for the image of %s (%s used)", err, where, c.Where(), bytesize.Size(sys.UsedBytes).Human())
	}
	return err
}

func partName(d *diskops.Disk, n int) string {
	if n == 0 {
		return d.Path
	}
	return fmt.Sprintf("%s#%d", d.Path, n)
}

// mountDest mounts partition n of d (0: a file system on the whole disk)
// read-write at dir.
func mountDest(d *diskops.Disk, n int, dir string) (*diskops.Mounted, error) {
	if n == 0 {
		if d.FS == nil {
			return nil, fmt.Errorf("destination %s has no file system on the whole disk: name a partition", d.Path)
		}
		return diskops.Mount(d.Path, dir, diskops.MountOptions{FSType: d.FS.Type})
	}
	for _, p := range d.Partitions() {
		if p.Number != n {
			continue
		}
		if p.FS == nil {
			return nil, fmt.Errorf("destination %s partition %d has no file system", d.Path, n)
		}
		if p.Device != "" {
			return diskops.Mount(p.Device, dir, diskops.MountOptions{FSType: p.FS.Type})
		}
		return diskops.Mount(d.Path, dir, diskops.MountOptions{FSType: p.FS.Type, Offset: p.Start, Size: p.Size})
	}
	return nil, fmt.Errorf("destination %s has no partition %d", d.Path, n)
}

// placeOnDisk moves (or splits) the finished WIM to its final name on the
// mounted destination, synced, so that the final name only ever holds a
// complete, checked image.
func placeOnDisk(ctx context.Context, work, final string, d sequence.CaptureDestination, check bool) ([]string, error) {
	if d.SplitSize == 0 {
		if err := durable.Rename(work, final); err != nil {
			return nil, err
		}
		return []string{final}, nil
	}
	// wim.Split writes the parts under temporary names and renames them,
	// synced, once all are complete.
	swm := strings.TrimSuffix(final, filepath.Ext(final)) + ".swm"
	out, err := wim.Split(ctx, work, swm, int64(d.SplitSize))
	if err != nil {
		return nil, fmt.Errorf("splitting into %s: %w", swm, err)
	}
	if check {
		if err := capture.Check(ctx, swm); err != nil {
			return nil, err
		}
	}
	return out, nil
}
