// Package answer is the first-boot answer file: what the PE hands to
// minint-setup in the deployed OS (hostname, users, network, files,
// commands) and the code that applies it to a root file system.
//
// The PE writes it as JSON to /minint/setup.json on the target; the same
// structure is written in YAML inside a sequence's setup step. It has no
// dependency beyond the standard library, x/sys and the project's
// standard-library-only packages (sign, internal/passwd) so that
// minint-setup stays a small static binary.
//
// Apply works in two phases: everything is read, validated and computed
// first, and only then written, so a bad answer file (unknown group, bad
// mode, relative path…) is rejected before anything on the target changes.
// Applying the same answer twice leaves the same result as applying it once.
package answer

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/minint/minint/internal/passwd"
	"github.com/minint/minint/sign"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid answer file")

// Answer is the whole first-boot configuration.
type Answer struct {
	Hostname string      `yaml:"hostname" json:"hostname,omitempty"`
	Users    []User      `yaml:"users" json:"users,omitempty"`
	Network  []Interface `yaml:"network" json:"network,omitempty"`
	Files    []File      `yaml:"files" json:"files,omitempty"`
	// Commands run in order inside the target after everything else; a
	// non-zero exit fails setup. Each is an argv list.
	Commands [][]string `yaml:"commands" json:"commands,omitempty"`
	// RestoreState restores user state captured by `minint stage` (package
	// state) after accounts, hostname, network and files, before commands.
	RestoreState *RestoreState `yaml:"restore-state" json:"restore-state,omitempty"`
}

// RestoreState says where the captured user state is and what to do with
// the staging folder afterwards. The store must be a directory in the
// target: for a network store the PE pulls it there first (the first boot
// runs before any network is up).
type RestoreState struct {
	// Store is the state store directory, absolute inside the target
	// (default /minint/state).
	Store string `yaml:"store" json:"store,omitempty"`
	// Copy copies files out of the store instead of hard-linking them.
	Copy bool `yaml:"copy" json:"copy,omitempty"`
	// Keys are the state public keys (each the one line of a .pub file
	// from minint keygen, "minint-ed25519-public …") the store must be
	// signed with; a store signed by none of them is refused. The PE adds
	// the keys of the sequence's pull-state steps and the key its own
	// capture-state signed with.
	Keys []string `yaml:"keys" json:"keys,omitempty"`
	// Paths are the absolute paths beyond the captured users' homes whose
	// captured contents are restored (those capture-state or stage took
	// with paths:, /root for root-home). Anything else in the store is
	// left out with a warning: the store does not decide where it writes.
	Paths []string `yaml:"paths" json:"paths,omitempty"`
	// KeepStaging keeps Dir after a successful setup. By default, once the
	// state is restored and verified and the result written, Dir is removed
	// except for what is copied to LogDir.
	KeepStaging bool `yaml:"keep-staging" json:"keep-staging,omitempty"`
	// LogDir receives the setup result and the PE's logs before Dir is
	// removed (default /var/log/minint).
	LogDir string `yaml:"log-dir" json:"log-dir,omitempty"`
}

// StoreDir is Store with its default.
func (r *RestoreState) StoreDir() string {
	if r.Store == "" {
		return Dir + "/state"
	}
	return r.Store
}

// PublicKeys parses Keys.
func (r *RestoreState) PublicKeys() ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for i, k := range r.Keys {
		pub, err := sign.ParsePublicKey([]byte(k))
		if err != nil {
			return nil, invalid("restore-state: keys[%d]: %v", i, err)
		}
		out = append(out, pub)
	}
	return out, nil
}

// LogDirOrDefault is LogDir with its default.
func (r *RestoreState) LogDirOrDefault() string {
	if r.LogDir == "" {
		return "/var/log/minint"
	}
	return r.LogDir
}

// User is a local account. Without PasswordHash the password is locked
// ("!"), so the account is reachable through SSHKeys only.
type User struct {
	Name         string   `yaml:"name" json:"name"`
	UID          int      `yaml:"uid" json:"uid,omitempty"` // 0: next free from 1000
	PasswordHash string   `yaml:"password-hash" json:"password-hash,omitempty"`
	Groups       []string `yaml:"groups" json:"groups,omitempty"` // supplementary, must exist
	Shell        string   `yaml:"shell" json:"shell,omitempty"`   // default /bin/sh
	Home         string   `yaml:"home" json:"home,omitempty"`     // default /home/NAME
	Gecos        string   `yaml:"gecos" json:"gecos,omitempty"`
	SSHKeys      []string `yaml:"ssh-authorized-keys" json:"ssh-authorized-keys,omitempty"`
}

// Interface is the configuration of one network interface, written in the
// format of whatever the target uses (systemd-networkd .network files, or
// ifupdown's /etc/network/interfaces.d) — see network.go.
type Interface struct {
	// Match is an interface name or a glob such as "en*"; MAC matches by
	// hardware address instead. One of them is required.
	Match     string   `yaml:"match" json:"match,omitempty"`
	MAC       string   `yaml:"mac" json:"mac,omitempty"`
	DHCP      bool     `yaml:"dhcp" json:"dhcp,omitempty"`
	Addresses []string `yaml:"addresses" json:"addresses,omitempty"` // CIDR, e.g. 192.0.2.10/24
	Gateway   string   `yaml:"gateway" json:"gateway,omitempty"`
	DNS       []string `yaml:"dns" json:"dns,omitempty"`
}

// File is written with its content, mode and owner. Content is text; use
// ContentBase64 for binary.
type File struct {
	Path          string `yaml:"path" json:"path"`
	Content       string `yaml:"content" json:"content,omitempty"`
	ContentBase64 string `yaml:"content-base64" json:"content-base64,omitempty"`
	Mode          string `yaml:"mode" json:"mode,omitempty"`   // octal, default 0644
	Owner         string `yaml:"owner" json:"owner,omitempty"` // user[:group], default root:root
}

var (
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	macRE      = regexp.MustCompile(`^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$`)
)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Validate checks what can be checked without looking at the target.
func (a *Answer) Validate() error {
	if a.Hostname != "" && (len(a.Hostname) > 253 || !hostnameRE.MatchString(a.Hostname)) {
		return invalid("hostname %q is not a valid host name", a.Hostname)
	}
	seen := map[string]bool{}
	for i, u := range a.Users {
		if !passwd.ValidName(u.Name) {
			return invalid("users[%d]: name %q is not a valid user name", i, u.Name)
		}
		if seen[u.Name] {
			return invalid("users[%d]: user %q listed twice", i, u.Name)
		}
		seen[u.Name] = true
		if u.UID < 0 || u.UID > 65533 {
			return invalid("user %s: uid %d out of range", u.Name, u.UID)
		}
		if strings.ContainsAny(u.PasswordHash, ":\n") || (u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$") && u.PasswordHash != "!" && u.PasswordHash != "*") {
			return invalid("user %s: password-hash must be a crypt(3) hash such as $6$… or $y$… (never a clear-text password)", u.Name)
		}
		for _, f := range []struct{ n, v string }{{"shell", u.Shell}, {"home", u.Home}, {"gecos", u.Gecos}} {
			if strings.ContainsAny(f.v, ":\n") {
				return invalid("user %s: %s contains ':' or a newline", u.Name, f.n)
			}
		}
		if u.Home != "" && !path.IsAbs(u.Home) {
			return invalid("user %s: home %q is not absolute", u.Name, u.Home)
		}
		for _, g := range u.Groups {
			if !passwd.ValidName(g) {
				return invalid("user %s: group %q is not a valid group name", u.Name, g)
			}
		}
		for _, k := range u.SSHKeys {
			if strings.Contains(k, "\n") || len(strings.Fields(k)) < 2 {
				return invalid("user %s: ssh key %.30q… is not one authorized_keys line", u.Name, k)
			}
		}
	}
	for i, n := range a.Network {
		if (n.Match == "") == (n.MAC == "") {
			return invalid("network[%d]: give exactly one of match (interface name or glob) or mac", i)
		}
		if n.MAC != "" && !macRE.MatchString(n.MAC) {
			return invalid("network[%d]: mac %q is not aa:bb:cc:dd:ee:ff", i, n.MAC)
		}
		if strings.ContainsAny(n.Match, " \n/") {
			return invalid("network[%d]: match %q is not an interface name or glob", i, n.Match)
		}
		if !n.DHCP && len(n.Addresses) == 0 {
			return invalid("network[%d]: set dhcp: true or give addresses", i)
		}
		for _, ad := range n.Addresses {
			if _, _, err := parseCIDR(ad); err != nil {
				return invalid("network[%d]: address %q: %v", i, ad, err)
			}
		}
		if n.Gateway != "" && parseIP(n.Gateway) == nil {
			return invalid("network[%d]: gateway %q is not an IP address", i, n.Gateway)
		}
		for _, d := range n.DNS {
			if parseIP(d) == nil {
				return invalid("network[%d]: dns %q is not an IP address", i, d)
			}
		}
	}
	for i, f := range a.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return invalid("files[%d]: path %q must be absolute and clean", i, f.Path)
		}
		if f.Content != "" && f.ContentBase64 != "" {
			return invalid("files[%d] %s: give content or content-base64, not both", i, f.Path)
		}
		if _, err := f.mode(); err != nil {
			return invalid("files[%d] %s: %v", i, f.Path, err)
		}
		if _, _, err := splitOwner(f.Owner); err != nil {
			return invalid("files[%d] %s: %v", i, f.Path, err)
		}
	}
	for i, c := range a.Commands {
		if len(c) == 0 || c[0] == "" {
			return invalid("commands[%d] is empty", i)
		}
	}
	if r := a.RestoreState; r != nil {
		for _, p := range []struct{ n, v string }{{"store", r.Store}, {"log-dir", r.LogDir}} {
			if p.v != "" && (!path.IsAbs(p.v) || path.Clean(p.v) != p.v || p.v == "/") {
				return invalid("restore-state: %s %q must be absolute and clean", p.n, p.v)
			}
		}
		if _, err := r.PublicKeys(); err != nil {
			return err
		}
		for _, p := range r.Paths {
			if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || p == Dir || strings.HasPrefix(p, Dir+"/") {
				return invalid("restore-state: path %q must be absolute, clean, not / and not in %s", p, Dir)
			}
		}
		if ld := r.LogDirOrDefault(); ld == Dir || strings.HasPrefix(ld, Dir+"/") {
			return invalid("restore-state: log-dir %q is inside %s, which is removed", ld, Dir)
		}
	}
	return nil
}

func (f File) mode() (uint32, error) {
	if f.Mode == "" {
		return 0o644, nil
	}
	m, err := strconv.ParseUint(f.Mode, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal mode like 0644", f.Mode)
	}
	return uint32(m), nil
}

func splitOwner(s string) (user, group string, err error) {
	if s == "" {
		return "root", "root", nil
	}
	user, group, _ = strings.Cut(s, ":")
	if group == "" {
		group = user
	}
	if !passwd.ValidName(user) || !passwd.ValidName(group) {
		return "", "", fmt.Errorf("owner %q is not user[:group]", s)
	}
	return user, group, nil
}
