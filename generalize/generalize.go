// Package generalize removes what makes an installed Linux system one
// particular machine (machine ID, SSH host keys, DHCP leases, shell
// histories, logs, cloud-init instance state, persistent network rules,
// random seeds) before it is captured as a reference image.
//
// The normal use never touches the source: Scan finds what to change and
// returns a Plan, and Plan.Filter makes a WIM capture store the generalized
// view (files left out or stored empty) of a read-only mounted system. The
// alternative, an overlayfs with a tmpfs upper layer, was not chosen: it
// needs a mount and root, copies every truncated log up into RAM, and one
// more mount to unwind on every error; the filter needs nothing and cannot
// write to the source by construction. Plan.ApplyInPlace exists for the
// explicit "modify the reference disk" case.
//
// Scanning never follows symbolic links: a link in the source points into
// the source's own namespace, not the PE's.
package generalize

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minint/minint/wim"
)

// Action is what happens to one path.
type Action string

const (
	// Empty keeps the file (owner, mode) with no content: /etc/machine-id
	// must exist and be empty for systemd to make a new ID at first boot.
	Empty Action = "empty"
	// Truncate keeps a log file with no content, so services that expect
	// it (and its permissions) still find it.
	Truncate Action = "truncate"
	// Delete removes the path (a directory with everything in it).
	Delete Action = "delete"
)

// Options switches each operation; DefaultOptions turns them all on.
type Options struct {
	MachineID    bool `yaml:"machine-id" json:"machine-id"`
	SSHHostKeys  bool `yaml:"ssh-host-keys" json:"ssh-host-keys"`
	DHCPLeases   bool `yaml:"dhcp-leases" json:"dhcp-leases"`
	ShellHistory bool `yaml:"shell-history" json:"shell-history"`
	Logs         bool `yaml:"logs" json:"logs"`
	CloudInit    bool `yaml:"cloud-init" json:"cloud-init"`
	NetRules     bool `yaml:"net-rules" json:"net-rules"`
	RandomSeed   bool `yaml:"random-seed" json:"random-seed"`
}

// DefaultOptions enables every operation.
func DefaultOptions() Options {
	return Options{true, true, true, true, true, true, true, true}
}

// None reports whether no operation is enabled.
func (o Options) None() bool { return o == Options{} }

// Change is one planned change.
type Change struct {
	Path   string `json:"path"` // in the system, "/etc/machine-id"
	Action Action `json:"action"`
	Reason string `json:"reason"`
	Size   int64  `json:"size"` // bytes of content dropped (regular files)
}

// Plan lists the changes for one system, sorted by path.
type Plan struct {
	Changes []Change `json:"changes"`
}

// rule matches paths by a slash-separated pattern, each element matched
// with path.Match against directory entries. A trailing "/**" matches
// every regular file below the directory before it.
type rule struct {
	pattern string
	action  Action
	reason  string
	// onlyRegular limits the rule to regular files (empty/truncate).
	onlyRegular bool
}

func rules(o Options) []rule {
	var r []rule
	add := func(on bool, action Action, reason string, patterns ...string) {
		if !on {
			return
		}
		for _, p := range patterns {
			r = append(r, rule{pattern: p, action: action, reason: reason, onlyRegular: action != Delete})
		}
	}
	add(o.MachineID, Empty, "machine ID: a new one is made at first boot",
		"/etc/machine-id", "/var/lib/dbus/machine-id")
	add(o.SSHHostKeys, Delete, "SSH host key: each machine needs its own",
		"/etc/ssh/ssh_host_*")
	add(o.DHCPLeases, Delete, "DHCP lease of the reference machine",
		"/var/lib/dhcp/*", "/var/lib/dhclient/*", "/var/lib/NetworkManager/*lease*",
		"/var/lib/systemd/network/*lease*", "/run/systemd/netif/leases/*")
	add(o.ShellHistory, Delete, "shell history",
		"/root/.*_history", "/root/.history", "/home/*/.*_history", "/home/*/.history",
		"/root/.lesshst", "/home/*/.lesshst", "/root/.viminfo", "/home/*/.viminfo")
	// Journal files and rotated logs are deleted (an emptied journal file
	// is a corrupt one); plain logs are kept empty.
	add(o.Logs, Delete, "systemd journal of the reference machine", "/var/log/journal/*/*.journal", "/var/log/journal/*/*.journal~")
	add(o.Logs, Truncate, "log of the reference machine", "/var/log/**")
	add(o.CloudInit, Delete, "cloud-init instance state: cloud-init runs again at first boot",
		"/var/lib/cloud/instances/*", "/var/lib/cloud/instance", "/var/lib/cloud/sem/*", "/var/lib/cloud/data/*")
	add(o.NetRules, Delete, "network interface names bound to the reference machine's MAC addresses",
		"/etc/udev/rules.d/70-persistent-net.rules", "/etc/udev/rules.d/75-persistent-net-generator.rules")
	add(o.RandomSeed, Delete, "random seed: clones must not share it",
		"/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed", "/var/lib/random-seed")
	return r
}

var rotated = func(name string) bool {
	// syslog.1, syslog.2.gz, dpkg.log.3.xz, messages-20240101
	for _, ext := range []string{".gz", ".xz", ".zst", ".bz2"} {
		name = strings.TrimSuffix(name, ext)
	}
	i := strings.LastIndexAny(name, ".-")
	if i < 0 || i == len(name)-1 {
		return false
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Scan finds what to change in the system whose root directory is root.
// It only reads. A path matched by several rules gets the first rule's
// action (deleting wins over truncating a journal file, say).
func Scan(root string, o Options) (*Plan, error) {
	seen := map[string]bool{}
	p := &Plan{}
	for _, r := range rules(o) {
		matches, err := match(root, r)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			if seen[m.Path] {
				continue
			}
			seen[m.Path] = true
			p.Changes = append(p.Changes, m)
		}
	}
	sort.Slice(p.Changes, func(i, j int) bool { return p.Changes[i].Path < p.Changes[j].Path })
	return p, nil
}

func match(root string, r rule) ([]Change, error) {
	elems := strings.Split(strings.TrimPrefix(r.pattern, "/"), "/")
	recursive := elems[len(elems)-1] == "**"
	if recursive {
		elems = elems[:len(elems)-1]
	}
	var out []Change
	var walk func(sys string, rest []string) error
	walk = func(sys string, rest []string) error {
		host := filepath.Join(root, filepath.FromSlash(sys))
		if len(rest) == 0 {
			fi, err := os.Lstat(host)
			if err != nil {
				return nil
			}
			if recursive {
				return walkTree(host, sys, r, &out)
			}
			if r.onlyRegular && !fi.Mode().IsRegular() {
				return nil
			}
			out = append(out, change(sys, fi, r))
			return nil
		}
		fi, err := os.Lstat(host)
		if err != nil || !fi.IsDir() {
			return nil // missing, or a symlink: never followed
		}
		names, err := readDirNames(host)
		if err != nil {
			return err
		}
		for _, n := range names {
			ok, _ := path.Match(rest[0], n)
			if !ok || (strings.HasPrefix(n, ".") && !strings.HasPrefix(rest[0], ".")) {
				continue
			}
			if err := walk(path.Join(sys, n), rest[1:]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("/", elems); err != nil {
		return nil, err
	}
	return out, nil
}

// walkTree adds every regular file below a directory (no symlinks followed).
func walkTree(host, sys string, r rule, out *[]Change) error {
	fi, err := os.Lstat(host)
	if err != nil || !fi.IsDir() {
		return nil
	}
	names, err := readDirNames(host)
	if err != nil {
		return err
	}
	for _, n := range names {
		h, s := filepath.Join(host, n), path.Join(sys, n)
		fi, err := os.Lstat(h)
		if err != nil {
			continue
		}
		switch {
		case fi.IsDir():
			if err := walkTree(h, s, r, out); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			c := change(s, fi, r)
			if rotated(n) {
				c.Action, c.Reason = Delete, "rotated log of the reference machine"
			}
			*out = append(*out, c)
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("generalize: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("generalize: reading %s: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

func change(sys string, fi fs.FileInfo, r rule) Change {
	c := Change{Path: sys, Action: r.action, Reason: r.reason}
	if fi.Mode().IsRegular() {
		c.Size = fi.Size()
	}
	return c
}

// Filter returns a wim.ImageOptions.Filter that captures the generalized
// view: deleted paths left out, emptied and truncated files stored empty.
// Paths are image paths ("/etc/machine-id"), the tree captured being the
// system's root.
func (p *Plan) Filter() func(string, fs.FileMode) wim.CaptureAction {
	m := make(map[string]Action, len(p.Changes))
	for _, c := range p.Changes {
		m[c.Path] = c.Action
	}
	return func(path string, mode fs.FileMode) wim.CaptureAction {
		switch m[path] {
		case Delete:
			return wim.CaptureOmit
		case Empty, Truncate:
			if mode.IsRegular() {
				return wim.CaptureEmpty
			}
		}
		return wim.CaptureKeep
	}
}

// ApplyInPlace makes the changes in the tree at root itself: for the
// explicit choice of generalizing the reference disk. Paths found by Scan
// are re-checked (no symlink on the way, files still regular) before each
// change; what could not be done is reported together at the end.
func (p *Plan) ApplyInPlace(root string) error {
	var errs []error
	for _, c := range p.Changes {
		if err := applyOne(root, c); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", c.Action, c.Path, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("generalize: %w", errors.Join(errs...))
	}
	return nil
}

func applyOne(root string, c Change) error {
	// Every parent must be a real directory, so nothing outside root is
	// reached through a link planted in the system.
	dir := root
	elems := strings.Split(strings.TrimPrefix(c.Path, "/"), "/")
	for _, e := range elems[:len(elems)-1] {
		dir = filepath.Join(dir, e)
		fi, err := os.Lstat(dir)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory (symlink?)", dir)
		}
	}
	host := filepath.Join(dir, elems[len(elems)-1])
	switch c.Action {
	case Delete:
		err := os.RemoveAll(host) // RemoveAll does not follow symlinks
		return err
	case Empty, Truncate:
		fd, err := unix.Open(host, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &os.PathError{Op: "open", Path: host, Err: err}
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("%s is not a regular file", host)
		}
		if err := unix.Ftruncate(fd, 0); err != nil {
			return &os.PathError{Op: "truncate", Path: host, Err: err}
		}
		return nil
	}
	return fmt.Errorf("unknown action %q", c.Action)
}

// Summary counts the changes per action, for a one-line report.
func (p *Plan) Summary() string {
	n := map[Action]int{}
	var bytes int64
	for _, c := range p.Changes {
		n[c.Action]++
		bytes += c.Size
	}
	return fmt.Sprintf("%d emptied, %d truncated, %d deleted (%d bytes dropped)", n[Empty], n[Truncate], n[Delete], bytes)
}

// Report is the plan as text, one change a line ("delete /etc/ssh/ssh_host_rsa_key: SSH host key ...").
func (p *Plan) Report() string {
	var b strings.Builder
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "%s %s: %s\n", c.Action, c.Path, c.Reason)
	}
	return b.String()
}
