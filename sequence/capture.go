package sequence

import (
	"bytes"
	"fmt"
	"github.com/minint/minint/bytesize"
	"net/url"
	"path"
	"strings"
	"text/template"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/generalize"
	"github.com/minint/minint/pe/capture"
	"github.com/minint/minint/wim"
)

// captureTemplate is the sequence of a capture PE (minint iso --capture):
// find the one installed system, capture its generalized view and upload
// it. Values are quoted as YAML strings by the template's caller.
var captureTemplate = template.Must(template.New("capture").Parse(`version: 1
name: capture-reference
steps:
  - type: requirements
    min-memory: 256MiB
  - type: capture-image
    compression: {{.Compression}}
    destination:
      url: {{.URL}}
  - type: poweroff
`))

// Capture returns the sequence of a capture PE (`minint iso --capture`),
// validated: it uploads to dest, an http(s) URL of the WIM file.
func Capture(dest, compression string) ([]byte, error) {
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(u.Path, "/") || u.Path == "" {
		return nil, fmt.Errorf("capture destination %q: want an http(s) URL of the WIM file, e.g. http://10.0.2.2:8080/images/ref.wim", dest)
	}
	if compression == "" {
		compression = "lzx"
	}
	var b bytes.Buffer
	q := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
	if err := captureTemplate.Execute(&b, map[string]string{"URL": q(dest), "Compression": q(compression)}); err != nil {
		return nil, err
	}
	if _, err := Parse("capture sequence", b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CaptureImage captures an installed reference system into a WIM and puts
// it on a WebDAV server or a second disk. The source disk is mounted
// read-only (no journal replay) and generalized only in what the image
// stores, unless in-place is set.
//
//	steps:
//	  - type: capture-image
//	    source: {os: debian}            # capture.RootRule: disk, partition, uuid, label, os; default: the only system
//	    image-name: Debian reference    # default: OS name and version
//	    description: ""
//	    compression: lzx                # none, xpress, lzx
//	    extra-exclusions: ["/srv/cache/*"]   # besides capture.DefaultExclusions (exclusions: replaces those)
//	    generalize: {logs: false}       # each operation defaults to on
//	    in-place: false                 # true: generalize the reference disk itself
//	    check: true                     # verify the WIM before it goes anywhere
//	    work-dir: /tmp                  # where a WIM for a URL destination is built
//	    destination:
//	      url: http://10.0.2.2:8080/images/ref.wim   # PUT to .partial, read back, MOVE
//	      overwrite: false
//	  - type: capture-image
//	    name: to-stick
//	    destination: {disk: {removable: true}, partition: 1, path: /images/ref.wim, split-size: 4000M}
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
	SplitSize bytesize.Size `yaml:"split-size" json:"split-size,omitempty"`
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
		if d.SplitSize != 0 && d.SplitSize < bytesize.MiB {
			return nodeErr(dn, "split-size %s is too small: at least %s", d.SplitSize.Explain(), bytesize.MiB.Explain())
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
