package pe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/pe/upload"
	"github.com/minint/minint/wim"
)

// CaptureImage captures an installed reference system into a WIM and puts
// it on a WebDAV server or a second disk. The source disk is mounted
// read-only (no journal replay) and generalized only in what the image
// stores, unless in-place is set.
//
//   - type: capture-image
//     source: {os: debian}            # capture.RootRule: disk, partition, uuid, label, os; default: the only system
//     name: "Debian reference"        # default: OS name and version
//     description: ""
//     compression: lzx                # none, xpress, lzx
//     exclusions: ["/proc/*", ...]    # replaces capture.DefaultExclusions (absent or empty: the defaults)
//     extra-exclusions: ["/srv/cache/*"]
//     generalize: {logs: false}       # each operation defaults to on
//     in-place: false                 # true: generalize the reference disk itself
//     check: true                     # verify the WIM before it goes anywhere
//     work-dir: /tmp                  # where a WIM for a URL destination is built
//     destination:
//     url: http://10.0.2.2:8080/images/ref.wim   # PUT to .partial, read back, MOVE
//     overwrite: false
//     # or a disk: {disk: {removable: true}, partition: 1, path: /images/ref.wim, split-size: 4000M}
type CaptureImage struct {
	StepBase        `yaml:",inline"`
	Source          capture.RootRule   `yaml:"source"`
	ImageName       string             `yaml:"image-name"`
	Description     string             `yaml:"description"`
	Compression     string             `yaml:"compression"`
	Exclusions      []string           `yaml:"exclusions"`
	ExtraExclusions []string           `yaml:"extra-exclusions"`
	Generalize      generalize.Options `yaml:"generalize"`
	InPlace         bool               `yaml:"in-place"`
	Check           bool               `yaml:"check"`
	WorkDir         string             `yaml:"work-dir"`
	Destination     CaptureDestination `yaml:"destination"`
	Timeout         Duration           `yaml:"timeout"`
}

// CaptureDestination is where the captured WIM goes: a URL, or a path on
// a partition of a disk chosen by rule.
type CaptureDestination struct {
	URL       string        `yaml:"url" json:"url,omitempty"`
	Overwrite bool          `yaml:"overwrite" json:"overwrite,omitempty"`
	Disk      *diskops.Rule `yaml:"disk" json:"disk,omitempty"`
	Partition int           `yaml:"partition" json:"partition,omitempty"`
	Path      string        `yaml:"path" json:"path,omitempty"`
	// SplitSize cuts the WIM into .swm parts no larger than this (FAT32
	// holds files < 4 GiB).
	SplitSize Size `yaml:"split-size" json:"split_size,omitempty"`
}

func newCaptureImage() Step {
	return &CaptureImage{Generalize: generalize.DefaultOptions(), Check: true}
}

func (s *CaptureImage) check(m *ast.MappingNode) error {
	if s.Compression == "" {
		s.Compression = "lzx"
	}
	if c, err := wim.ParseCompression(s.Compression); err != nil || c == wim.CompressionLZMS {
		return nodeErr(field(m, "compression"), "compression %q: want none, xpress or lzx", s.Compression)
	}
	if s.Source.Disk != nil {
		if err := s.Source.Disk.Validate(); err != nil {
			return nodeErr(field(m, "source"), "%v", err)
		}
	}
	for _, e := range append(append([]string{}, s.Exclusions...), s.ExtraExclusions...) {
		if e == "" || strings.ContainsRune(e, '\n') {
			return nodeErr(field(m, "exclusions"), "exclusion %q: want one pattern such as /var/cache/*", e)
		}
	}
	if s.WorkDir == "" {
		s.WorkDir = "/tmp"
	}
	if !path.IsAbs(s.WorkDir) {
		return nodeErr(field(m, "work-dir"), "work-dir %q must be absolute", s.WorkDir)
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(6 * time.Hour)
	}
	d := &s.Destination
	dn := field(m, "destination")
	switch {
	case !has(m, "destination"):
		return nodeErr(m, "capture-image needs destination: {url: http://…/NAME.wim} or {disk: RULE, partition: N, path: /NAME.wim}")
	case d.URL != "" && d.Disk != nil:
		return nodeErr(dn, "destination: url and disk exclude each other")
	case d.URL != "":
		if err := checkURL(dn, d.URL); err != nil {
			return err
		}
		if strings.HasSuffix(d.URL, "/") {
			return nodeErr(dn, "destination url %q must name the file, not a folder", d.URL)
		}
		if d.SplitSize != 0 || d.Path != "" || d.Partition != 0 {
			return nodeErr(dn, "split-size, path and partition are for disk destinations")
		}
	case d.Disk != nil:
		if err := d.Disk.Validate(); err != nil {
			return nodeErr(dn, "%v", err)
		}
		if !path.IsAbs(d.Path) || path.Clean(d.Path) != d.Path || d.Path == "/" {
			return nodeErr(dn, "destination path %q must be an absolute, clean file path", d.Path)
		}
		if d.Partition < 0 {
			return nodeErr(dn, "partition %d: partitions are numbered from 1", d.Partition)
		}
		if d.SplitSize != 0 && d.SplitSize < 1<<20 {
			return nodeErr(dn, "split-size %s is too small (at least 1M)", d.SplitSize)
		}
	default:
		return nodeErr(dn, "destination needs url or disk")
	}
	return nil
}

func (s *CaptureImage) Describe() string {
	src := "the installed system"
	if s.Source != (capture.RootRule{}) {
		src += fmt.Sprintf(" matching %+v", s.Source)
	}
	g := "generalized on a snapshot view"
	switch {
	case s.Generalize.None():
		g = "not generalized"
	case s.InPlace:
		g = "generalized IN PLACE (the reference disk is changed)"
	}
	dest := s.Destination.URL
	if dest == "" {
		dest = fmt.Sprintf("%s on disk %s partition %d", s.Destination.Path, s.Destination.Disk, s.Destination.Partition)
	}
	return fmt.Sprintf("capture %s (%s, %s) to %s", src, g, s.Compression, dest)
}

// CaptureRequest is what the capture-image step asks of a CaptureBackend.
type CaptureRequest struct {
	Step *CaptureImage
	// Phase starts a progress task ("capture", "check", "upload"); the
	// returned functions report progress and the end of the phase.
	Phase func(name, unit string) (progress func(done, total int64), finish func(error))
	Log   func(format string, a ...any)
}

// CaptureReport says what was captured and where it went.
type CaptureReport struct {
	Source      string             `json:"source"`
	System      *capture.System    `json:"system"`
	Plan        *generalize.Plan   `json:"generalize"`
	Files       []string           `json:"files"` // URL, or paths on the destination partition
	Size        int64              `json:"size"`
	SHA256      string             `json:"sha256,omitempty"`
	Fields      map[string]string  `json:"fields"`
	Upload      *upload.Result     `json:"upload,omitempty"`
	Destination CaptureDestination `json:"destination"`
}

// CaptureBackend is implemented by backends that can capture (the real
// SystemBackend); the engine refuses capture-image on others.
type CaptureBackend interface {
	Capture(ctx context.Context, req CaptureRequest) (*CaptureReport, error)
}

func (r *runner) capture(s *CaptureImage) error {
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
		Log: func(f string, a ...any) { r.rep.Printf("  "+f, a...) },
	})
	if err != nil {
		return err
	}
	r.rep.Printf("  captured %s: %s", rep.Source, rep.Plan.Summary())
	r.rep.Printf("  image stored at %s (%s)", strings.Join(rep.Files, ", "), Size(rep.Size))
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
	var m *diskops.Mounted
	if s.InPlace {
		lerr := capture.LoadFilesystem(c.FS.Type)
		if m, err = diskops.Mount(mountSource(c), srcDir, mountOpts(c, false)); err != nil && lerr != nil {
			err = fmt.Errorf("%w (%v)", err, lerr)
		}
	} else {
		m, err = c.MountReadOnly(srcDir)
	}
	if err != nil {
		return nil, err
	}
	defer m.Close()
	sys, err := capture.Inspect(srcDir)
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("the system mounts %s: %w", bm, err)
		}
		bmnt, err := bc.MountReadOnly(filepath.Join(srcDir, "boot"))
		if err != nil {
			return nil, err
		}
		defer bmnt.Close()
		logf("captured with it: %s from %s", bm.Mount, bc.DiskPath)
		if sys, err = capture.Inspect(srcDir); err != nil {
			return nil, err
		}
	}
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

	// Where the WIM is built: next to its final place on a destination
	// disk (unless it is to be split), else in work-dir.
	var destDir string
	var work string
	if dest != nil {
		destDir, err = os.MkdirTemp("", "minint-dest-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(destDir)
		dm, err := mountDest(dest, s.Destination.Partition, destDir)
		if err != nil {
			return nil, err
		}
		defer dm.Close()
		final := filepath.Join(destDir, s.Destination.Path)
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return nil, err
		}
		if s.Destination.SplitSize == 0 {
			work = final + ".partial"
		}
	}
	if work == "" {
		if err := os.MkdirAll(s.WorkDir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(s.WorkDir, "capture-*.wim")
		if err != nil {
			return nil, err
		}
		f.Close()
		work = f.Name()
	}
	defer os.Remove(work)

	prog, finish := phase("capture", "bytes")
	opts.Progress = prog
	res, err := capture.Image(srcDir, work, opts)
	finish(err)
	if err != nil {
		if errors.Is(err, syscall.EFBIG) {
			return nil, fmt.Errorf("%w (the destination file system cannot hold it in one file: set destination split-size, e.g. 4000M for FAT32)", err)
		}
		if errors.Is(err, syscall.ENOSPC) {
			// The path is a temporary mount point: say which disk is full.
			where := "work-dir " + s.WorkDir + " (in the PE's memory unless it is a disk: set work-dir)"
			if dest != nil && s.Destination.SplitSize == 0 {
				where = "destination " + partName(dest, s.Destination.Partition)
			}
			return nil, fmt.Errorf("%w: %s is too small for the image of %s (%s used)", err, where, c.Where(), Size(sys.UsedBytes))
		}
		return nil, err
	}
	rep.Plan, rep.Fields, rep.Size = res.Plan, res.Fields, res.Size
	if s.Check {
		_, finish := phase("check", "")
		err := capture.Check(work)
		finish(err)
		if err != nil {
			return nil, err
		}
	}
	switch {
	case s.Destination.URL != "":
		prog, finish := phase("upload", "bytes")
		up, err := upload.File(ctx, work, s.Destination.URL, upload.Options{Overwrite: s.Destination.Overwrite, Progress: prog, Log: logf})
		finish(err)
		if err != nil {
			return nil, err
		}
		rep.Upload, rep.SHA256, rep.Files = up, up.SHA256, []string{up.URL}
	case dest != nil:
		files, err := placeOnDisk(work, filepath.Join(destDir, s.Destination.Path), s.Destination, s.Check)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			rep.Files = append(rep.Files, fmt.Sprintf("%s:%s", partName(dest, s.Destination.Partition), strings.TrimPrefix(f, destDir)))
		}
	}
	return rep, nil
}

func partName(d *diskops.Disk, n int) string {
	if n == 0 {
		return d.Path
	}
	return fmt.Sprintf("%s#%d", d.Path, n)
}

func mountSource(c *capture.Candidate) string {
	if c.Device != "" {
		return c.Device
	}
	return c.DiskPath
}

func mountOpts(c *capture.Candidate, ro bool) diskops.MountOptions {
	o := diskops.MountOptions{FSType: c.FS.Type, ReadOnly: ro}
	if c.Device == "" && c.Partition > 0 {
		o.Offset, o.Size = c.Offset, c.Size
	}
	return o
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
func placeOnDisk(work, final string, d CaptureDestination, check bool) ([]string, error) {
	if d.SplitSize == 0 {
		if err := syncFile(work); err != nil {
			return nil, err
		}
		if err := os.Rename(work, final); err != nil {
			return nil, err
		}
		return []string{final}, syncDir(filepath.Dir(final))
	}
	// Parts are written under a temporary stem and renamed at the end.
	swm := strings.TrimSuffix(final, filepath.Ext(final)) + ".swm"
	tmpStem := swm + ".partial.swm"
	parts, err := wim.Split(work, tmpStem, int64(d.SplitSize))
	if err != nil {
		for i := 1; i < 1000; i++ {
			if os.Remove(wim.SplitPartName(tmpStem, i)) != nil {
				break
			}
		}
		return nil, fmt.Errorf("splitting into %s: %w", tmpStem, err)
	}
	var out []string
	for i, p := range parts {
		if err := syncFile(p); err != nil {
			return nil, err
		}
		name := wim.SplitPartName(swm, i+1)
		if err := os.Rename(p, name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	if err := syncDir(filepath.Dir(swm)); err != nil {
		return nil, err
	}
	if check {
		if err := capture.Check(swm); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
