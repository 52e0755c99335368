// Package capture turns an installed reference system into a WIM from the
// PE: it finds the installed root filesystem among the discovered disks,
// mounts it so that nothing can write to it, describes it (OS, kernels),
// captures its generalized view and records all of that in the image's XML.
package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minint/minint/diskops"
)

var (
	// ErrNoRoot: no partition holds an installed system.
	ErrNoRoot = errors.New("no installed system found")
	// ErrAmbiguous: several do and nothing chose one.
	ErrAmbiguous = errors.New("several installed systems found")
)

// System is what an installed root filesystem says about itself.
type System struct {
	OSID       string   `json:"os_id"`                 // os-release ID: debian
	OSName     string   `json:"os_name"`               // NAME: Debian GNU/Linux
	OSVersion  string   `json:"os_version,omitempty"`  // VERSION_ID: 12
	PrettyName string   `json:"pretty_name,omitempty"` // PRETTY_NAME
	Kernels    []string `json:"kernels,omitempty"`     // versions with /boot/vmlinuz-<v>, sorted
	Init       string   `json:"init"`                  // the init found: /sbin/init, /usr/lib/systemd/systemd
	// SeparateBoot lists what /etc/fstab mounts on /boot, /boot/efi or
	// /efi from other file systems, which the root alone lacks.
	SeparateBoot []BootMount `json:"separate_boot,omitempty"`
	UsedBytes    int64       `json:"used_bytes,omitempty"`
}

// Inspect reads the facts of the system whose root is mounted at root. A
// directory without /etc/os-release and an init is not a system (ErrNoRoot).
func Inspect(root string) (*System, error) {
	rel, err := readOSRelease(root)
	if err != nil {
		return nil, fmt.Errorf("capture: %s: %w (no readable etc/os-release)", root, ErrNoRoot)
	}
	s := &System{OSID: rel["ID"], OSName: rel["NAME"], OSVersion: rel["VERSION_ID"], PrettyName: rel["PRETTY_NAME"]}
	if s.OSName == "" {
		s.OSName = "Linux"
	}
	for _, p := range []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init", "/usr/sbin/init"} {
		// Lstat: /sbin/init is often a symlink to systemd, absolute, which
		// must not be resolved in the PE's own tree.
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && !fi.IsDir() {
			s.Init = p
			break
		}
	}
	if s.Init == "" {
		return nil, fmt.Errorf("capture: %s: %w (os-release but no /sbin/init or systemd)", root, ErrNoRoot)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "boot")); err == nil {
		for _, e := range ents {
			if v, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok && v != "" {
				s.Kernels = append(s.Kernels, v)
			}
		}
		sort.Strings(s.Kernels)
	}
	s.SeparateBoot = fstabBoot(root)
	var st unix.Statfs_t
	if unix.Statfs(root, &st) == nil {
		s.UsedBytes = int64(st.Blocks-st.Bfree) * int64(st.Bsize)
	}
	return s, nil
}

// readOSRelease parses etc/os-release (or usr/lib/os-release, which it
// usually links to; a link is followed only inside root).
func readOSRelease(root string) (map[string]string, error) {
	var data []byte
	var err error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		full := filepath.Join(root, p)
		if fi, e := os.Lstat(full); e == nil && fi.Mode()&os.ModeSymlink != 0 {
			t, _ := os.Readlink(full)
			if filepath.IsAbs(t) {
				full = filepath.Join(root, t)
			} else {
				full = filepath.Join(filepath.Dir(full), t)
			}
			if !strings.HasPrefix(full, filepath.Clean(root)+"/") {
				continue
			}
		}
		if data, err = os.ReadFile(full); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return parseOSRelease(data), nil
}

// parseOSRelease reads os-release(5) text: KEY=value lines, values
// optionally quoted with shell escapes; comments and malformed lines are
// skipped.
func parseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" || strings.HasPrefix(l, "#") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
		}
		m[k] = v
	}
	return m
}

// BootMount is an fstab entry for a boot file system.
type BootMount struct {
	Mount  string `json:"mount"`  // /boot
	Source string `json:"source"` // UUID=..., LABEL=..., /dev/sda1
}

func (b BootMount) String() string { return b.Mount + " (" + b.Source + ")" }

func fstabBoot(root string) []BootMount {
	b, err := os.ReadFile(filepath.Join(root, "etc/fstab"))
	if err != nil {
		return nil
	}
	var out []BootMount
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") && (f[1] == "/boot" || f[1] == "/boot/efi" || f[1] == "/efi") {
			out = append(out, BootMount{Mount: f[1], Source: f[0]})
		}
	}
	return out
}

// FindFilesystem finds the file system an fstab source names (UUID=,
// LABEL=, PARTUUID=, PARTLABEL= or a /dev path) on the disks. The result
// has no System; MountReadOnly works on it.
func FindFilesystem(disks []*diskops.Disk, source string) (*Candidate, error) {
	key, val, _ := strings.Cut(source, "=")
	var found []*Candidate
	for _, d := range disks {
		if d.BootMedium {
			continue
		}
		for _, p := range d.Partitions() {
			if p.FS == nil {
				continue
			}
			var ok bool
			switch key {
			case "UUID":
				ok = strings.EqualFold(val, p.FS.UUID)
			case "LABEL":
				ok = val == p.FS.Label
			case "PARTUUID":
				ok = strings.EqualFold(val, p.UUID)
			case "PARTLABEL":
				ok = val == p.Name
			default:
				ok = source != "" && source == p.Device
			}
			if ok {
				found = append(found, &Candidate{Disk: d, DiskPath: d.Path, Partition: p.Number, Device: p.Device,
					Offset: p.Start, Size: p.Size, FS: *p.FS})
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("capture: no file system %s on any disk", source)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("capture: %d file systems match %s: %w", len(found), source, ErrAmbiguous)
}

// Candidate is a filesystem holding an installed system.
type Candidate struct {
	Disk      *diskops.Disk      `json:"-"`
	DiskPath  string             `json:"disk"`
	Partition int                `json:"partition,omitempty"` // 0: filesystem on the whole disk
	Device    string             `json:"device,omitempty"`    // partition node when the kernel made one
	Offset    int64              `json:"offset"`
	Size      int64              `json:"size"`
	FS        diskops.Filesystem `json:"fs"`
	System    *System            `json:"system"`
}

func (c *Candidate) String() string {
	where := c.DiskPath
	if c.Partition > 0 {
		where = fmt.Sprintf("%s partition %d", c.DiskPath, c.Partition)
	}
	name := c.System.PrettyName
	if name == "" {
		name = strings.TrimSpace(c.System.OSName + " " + c.System.OSVersion)
	}
	return fmt.Sprintf("%s (%s UUID=%s label=%q): %s, kernels %s", where, c.FS.Type, c.FS.UUID, c.FS.Label, name,
		strings.Join(c.System.Kernels, " "))
}

// rootFS are the filesystems a Linux root is looked for on.
var rootFS = map[string]bool{"ext4": true, "ext3": true, "ext2": true, "xfs": true, "btrfs": true}

// roOptions keep a read-only mount from writing anyway: ext4 and xfs
// replay a dirty journal even when mounted read-only, btrfs its log tree
// (rescue=nologreplay since Linux 5.9; newer kernels refuse the old bare
// "nologreplay" with EINVAL). xfs also gets nouuid: a reference disk
// cloned from a mounted system, or one whose earlier mount is still being
// torn down, has an XFS UUID already in use, which xfs refuses (EINVAL).
var roOptions = map[string]string{"ext4": "noload", "ext3": "noload", "ext2": "", "xfs": "norecovery,nouuid", "btrfs": "rescue=nologreplay"}

// MountReadOnly mounts the candidate at dir so that the disk is not written
// (read-only, no journal replay). Close the result to unmount.
func (c *Candidate) MountReadOnly(dir string) (*diskops.Mounted, error) {
	m, err := c.Mount(dir, diskops.MountOptions{ReadOnly: true, Data: roOptions[c.FS.Type]})
	if err != nil {
		return nil, fmt.Errorf("capture: mounting %s read-only: %w", c.Where(), err)
	}
	return m, nil
}

// Mount mounts the candidate's file system at dir with o's flags and data
// (its type, device and byte range come from c). It loads the file
// system's module first, and a failed mount names a failed load beside it.
func (c *Candidate) Mount(dir string, o diskops.MountOptions) (*diskops.Mounted, error) {
	o.FSType = c.FS.Type
	src := c.Device
	if src == "" {
		src = c.DiskPath
		// A partition without a kernel node goes through a loop device;
		// a file system on the whole disk is mounted as it is (the PE
		// has no loop driver).
		if c.Partition > 0 {
			o.Offset, o.Size = c.Offset, c.Size
		}
	}
	lerr := LoadFilesystem(c.FS.Type)
	m, err := diskops.Mount(src, dir, o)
	if err != nil && lerr != nil {
		err = fmt.Errorf("%w (%v)", err, lerr)
	}
	return m, err
}

// Where names the disk and partition, for messages.
func (c *Candidate) Where() string {
	if c.Partition > 0 {
		return fmt.Sprintf("%s partition %d", c.DiskPath, c.Partition)
	}
	return c.DiskPath
}

// FindOptions tune FindInstalledRoots.
type FindOptions struct {
	// TempDir holds the temporary mount points ("" = os.TempDir()).
	TempDir string
	// Log gets one line per filesystem looked at and why it was skipped.
	Log func(format string, a ...any)
}

// FindInstalledRoots mounts every ext2/3/4, xfs and btrfs filesystem of
// the disks read-only in turn and returns those holding an installed system
// (os-release and an init). The boot medium is skipped. Filesystems that
// fail to mount are logged and skipped: a damaged disk must not hide a good
// one. No candidate at all is ErrNoRoot.
func FindInstalledRoots(ctx context.Context, disks []*diskops.Disk, o FindOptions) ([]*Candidate, error) {
	logf := func(format string, a ...any) {
		if o.Log != nil {
			o.Log(format, a...)
		}
	}
	var looked []string
	var out []*Candidate
	for _, d := range disks {
		if d.BootMedium {
			continue
		}
		var cands []*Candidate
		if d.FS != nil && rootFS[d.FS.Type] {
			cands = append(cands, &Candidate{Disk: d, DiskPath: d.Path, Size: d.Size, FS: *d.FS})
		}
		for _, p := range d.Partitions() {
			if p.FS != nil && rootFS[p.FS.Type] {
				cands = append(cands, &Candidate{Disk: d, DiskPath: d.Path, Partition: p.Number, Device: p.Device,
					Offset: p.Start, Size: p.Size, FS: *p.FS})
			}
		}
		for _, c := range cands {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			looked = append(looked, c.Where()+" ("+c.FS.Type+")")
			sys, err := c.inspect(o.TempDir)
			if err != nil {
				logf("%s: %v", c.Where(), err)
				continue
			}
			c.System = sys
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		if len(looked) == 0 {
			return nil, fmt.Errorf("capture: %w: no ext2/3/4, xfs or btrfs filesystem on any disk", ErrNoRoot)
		}
		return nil, fmt.Errorf("capture: %w: looked at %s", ErrNoRoot, strings.Join(looked, ", "))
	}
	return out, nil
}

func (c *Candidate) inspect(tmp string) (*System, error) {
	dir, err := os.MkdirTemp(tmp, "minint-root-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	m, err := c.MountReadOnly(dir)
	if err != nil {
		return nil, err
	}
	sys, err := Inspect(dir)
	if cerr := m.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("capture: unmounting %s: %w", dir, cerr)
	}
	return sys, err
}

// RootRule picks one installed system. Empty fields match anything; Disk
// narrows by the disk rule of diskops (transport, serial, name, ...).
type RootRule struct {
	Disk      *diskops.Rule `yaml:"disk,omitempty" json:"disk,omitempty"`
	Partition int           `yaml:"partition,omitempty" json:"partition,omitempty"`
	UUID      string        `yaml:"uuid,omitempty" json:"uuid,omitempty"`
	Label     string        `yaml:"label,omitempty" json:"label,omitempty"`
	OS        string        `yaml:"os,omitempty" json:"os,omitempty"` // os-release ID
}

func (r RootRule) matches(c *Candidate) bool {
	return (r.Disk == nil || c.Disk == nil || r.Disk.Matches(c.Disk)) &&
		(r.Partition == 0 || r.Partition == c.Partition) &&
		(r.UUID == "" || strings.EqualFold(r.UUID, c.FS.UUID)) &&
		(r.Label == "" || r.Label == c.FS.Label) &&
		(r.OS == "" || r.OS == c.System.OSID)
}

// SelectRoot returns the one candidate the rule matches; none or several
// is an error listing every candidate, so the operator can write a rule.
func SelectRoot(cands []*Candidate, r RootRule) (*Candidate, error) {
	var m []*Candidate
	for _, c := range cands {
		if r.matches(c) {
			m = append(m, c)
		}
	}
	list := func() string {
		var b strings.Builder
		for _, c := range cands {
			b.WriteString("\n  " + c.String())
		}
		return b.String()
	}
	switch len(m) {
	case 1:
		return m[0], nil
	case 0:
		return nil, fmt.Errorf("capture: %w matching the source rule; candidates:%s", ErrNoRoot, list())
	}
	return nil, fmt.Errorf("capture: %w (%d match; choose with source: {uuid: ...} or {disk: ..., partition: N}):%s",
		ErrAmbiguous, len(m), list())
}
