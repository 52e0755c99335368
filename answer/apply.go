package answer

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/minint/minint/internal/child"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/passwd"
)

func parseIP(s string) net.IP { return net.ParseIP(s) }

func parseCIDR(s string) (net.IP, *net.IPNet, error) { return net.ParseCIDR(s) }

// Options tune Apply.
type Options struct {
	// Log receives one line per change; nil for none.
	Log io.Writer
	// NoCommands skips Commands (used by tests that cannot chroot).
	NoCommands bool
	// BeforeCommands, when set, runs after everything is written and
	// before Commands; an error fails Apply. minint-setup restores user
	// state here, so that the accounts the answer creates exist and
	// commands see the restored files.
	BeforeCommands func() error
}

// pending is one file write computed in the first phase.
type pending struct {
	path      string // inside root
	data      []byte
	mode      os.FileMode
	uid, gid  int
	isDir     bool
	keepOwner bool   // existing file: keep its owner (passwd, shadow…)
	link      string // make path a symlink to this instead
}

// Apply applies a to the tree at root ("/" in the deployed OS). Nothing is
// written unless the whole answer validates against the target's accounts.
func Apply(a *Answer, root string, opt Options) error {
	if err := a.Validate(); err != nil {
		return err
	}
	logf := func(format string, v ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", v...)
		}
	}
	var plan []pending
	if a.Hostname != "" {
		plan = append(plan, pending{path: "/etc/hostname", data: []byte(a.Hostname + "\n"), mode: 0o644})
		hosts, err := readOpt(root, "/etc/hosts")
		if err != nil {
			return err
		}
		plan = append(plan, pending{path: "/etc/hosts", data: hostsWith(hosts, a.Hostname), mode: 0o644, keepOwner: true})
	}
	db, err := loadAccounts(root)
	if err != nil {
		return err
	}
	homes, err := db.addUsers(a.Users)
	if err != nil {
		return err
	}
	plan = append(plan, db.files()...)
	plan = append(plan, homes...)
	net, err := networkFiles(root, a.Network)
	if err != nil {
		return err
	}
	plan = append(plan, net...)
	for _, f := range a.Files {
		data := []byte(f.Content)
		if f.ContentBase64 != "" {
			if data, err = base64.StdEncoding.DecodeString(f.ContentBase64); err != nil {
				return invalid("file %s: content-base64: %v", f.Path, err)
			}
		}
		m, _ := f.mode()
		u, g, _ := splitOwner(f.Owner)
		uid, ok := db.uid(u)
		if !ok {
			return invalid("file %s: owner user %q does not exist on the target", f.Path, u)
		}
		gid, ok := db.gid(g)
		if !ok {
			return invalid("file %s: owner group %q does not exist on the target", f.Path, g)
		}
		plan = append(plan, pending{path: f.Path, data: data, mode: os.FileMode(m), uid: uid, gid: gid})
	}
	for _, c := range a.Commands {
		if _, err := os.Stat(filepath.Join(root, c[0])); !filepath.IsAbs(c[0]) || err != nil {
			return invalid("command %q: %s is not an absolute path to a program on the target", strings.Join(c, " "), c[0])
		}
	}

	// Second phase: write.
	for _, p := range plan {
		if err := write(root, p); err != nil {
			return err
		}
		logf("wrote %s", p.path)
	}
	if opt.BeforeCommands != nil {
		if err := opt.BeforeCommands(); err != nil {
			return err
		}
	}
	if opt.NoCommands {
		return nil
	}
	for _, c := range a.Commands {
		logf("running %s", strings.Join(c, " "))
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "MININT_SETUP=1"}
		if root != "/" {
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		}
		cmd.Stdout, cmd.Stderr = opt.Log, opt.Log
		// A command does not outlive minint-setup (internal/child):
		// nothing of a killed setup keeps changing the system unseen.
		if err := child.Run(cmd); err != nil {
			return fmt.Errorf("command %q: %w", strings.Join(c, " "), err)
		}
	}
	return nil
}

func readOpt(root, p string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, p))
	if os.IsNotExist(err) {
		return nil, nil
	}
	return b, err
}

// hostsWith maps 127.0.1.1 to the host name the way Debian's installer does,
// replacing an earlier 127.0.1.1 line.
func hostsWith(old []byte, host string) []byte {
	short, _, _ := strings.Cut(host, ".")
	entry := "127.0.1.1\t" + host
	if short != host {
		entry += "\t" + short
	}
	var out []string
	if len(old) == 0 {
		out = append(out, "127.0.0.1\tlocalhost", "::1\t\tlocalhost ip6-localhost ip6-loopback")
	}
	done := false
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.1.1" {
			if !done {
				out = append(out, entry)
				done = true
			}
			continue
		}
		if l != "" || len(out) > 0 {
			out = append(out, l)
		}
	}
	if !done {
		out = append(out, entry)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// write puts one file in place atomically (temp file, fsync, rename) with
// its mode and owner.
func write(root string, p pending) error {
	full := filepath.Join(root, p.path)
	if p.link != "" {
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if cur, err := os.Readlink(full); err == nil && cur == p.link {
			return nil
		}
		os.Remove(full)
		return os.Symlink(p.link, full)
	}
	if p.isDir {
		if err := os.MkdirAll(full, p.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, p.mode); err != nil {
			return err
		}
		return os.Lchown(full, p.uid, p.gid)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	uid, gid, mode := p.uid, p.gid, p.mode
	if fi, err := os.Lstat(full); err == nil && p.keepOwner {
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid, mode = int(st.Uid), int(st.Gid), fi.Mode().Perm()
	}
	f, err := durable.Create(full, mode)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(p.data)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Commit()
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p.path, err)
	}
	return nil
}

// accounts is the target's passwd/shadow/group/gshadow, edited in memory
// by package passwd (strict: a malformed line in the target is an error,
// not something to rewrite).
type accounts struct {
	passwd, shadow, group, gshadow *passwd.Table
}

func loadAccounts(root string) (*accounts, error) {
	db := &accounts{}
	for _, f := range []struct {
		t **passwd.Table
		k passwd.Kind
	}{{&db.passwd, passwd.Passwd}, {&db.shadow, passwd.Shadow}, {&db.group, passwd.Group}, {&db.gshadow, passwd.Gshadow}} {
		t, err := passwd.Read(root, f.k)
		if err != nil {
			return nil, err
		}
		*f.t = t
	}
	if !db.passwd.Exists {
		return nil, fmt.Errorf("the target has no /etc/passwd: is %s the root of an installed system?", root)
	}
	return db, nil
}

func (db *accounts) uid(name string) (int, bool) {
	if r := db.passwd.Find(name); r != nil {
		return db.passwd.ID(r), true
	}
	return 0, false
}

func (db *accounts) gid(name string) (int, bool) {
	if r := db.group.Find(name); r != nil {
		return db.group.ID(r), true
	}
	return 0, false
}

// addUsers adds or updates users and returns the home directories and
// authorized_keys files to create.
func (db *accounts) addUsers(users []User) ([]pending, error) {
	var out []pending
	for _, u := range users {
		for _, g := range u.Groups {
			if db.group.Find(g) == nil {
				return nil, invalid("user %s: group %q does not exist on the target", u.Name, g)
			}
		}
		shell, home := u.Shell, u.Home
		if shell == "" {
			shell = "/bin/sh"
		}
		if home == "" {
			home = "/home/" + u.Name
		}
		hash := u.PasswordHash
		if hash == "" {
			hash = "!"
		}
		var uid, gid int
		if r := db.passwd.Find(u.Name); r != nil {
			// An existing user is updated, not duplicated: re-running
			// setup after a power cut must converge.
			uid = db.passwd.ID(r)
			gid, _ = strconv.Atoi(r[3])
			if u.UID != 0 && u.UID != uid {
				return nil, invalid("user %s exists with uid %d, answer file says %d", u.Name, uid, u.UID)
			}
			r[4], r[5], r[6] = u.Gecos, home, shell
		} else {
			uid = u.UID
			if uid == 0 {
				uid = db.passwd.NextID()
			} else if db.passwd.ByID(uid) != nil {
				return nil, invalid("user %s: uid %d is already used on the target", u.Name, uid)
			}
			if g := db.group.Find(u.Name); g != nil {
				gid = db.group.ID(g)
			} else {
				gid = uid
				if db.group.ByID(gid) != nil {
					gid = db.group.NextID()
				}
				if err := db.group.Add(u.Name, "x", strconv.Itoa(gid), ""); err != nil {
					return nil, invalid("user %s: %v", u.Name, err)
				}
				if db.gshadow.Exists {
					if err := db.gshadow.Add(u.Name, "!", "", ""); err != nil {
						return nil, invalid("user %s: %v", u.Name, err)
					}
				}
			}
			if err := db.passwd.Add(u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), u.Gecos, home, shell); err != nil {
				return nil, invalid("user %s: %v", u.Name, err)
			}
		}
		if r := db.shadow.Find(u.Name); r != nil {
			r[1] = hash
		} else if err := db.shadow.Add(u.Name, hash, "19000", "0", "99999", "7", "", "", ""); err != nil {
			return nil, invalid("user %s: %v", u.Name, err)
		}
		for _, g := range u.Groups {
			db.group.AddMember(db.group.Find(g), u.Name)
			if gs := db.gshadow.Find(g); gs != nil {
				db.gshadow.AddMember(gs, u.Name)
			}
		}
		out = append(out, pending{path: home, isDir: true, mode: 0o700, uid: uid, gid: gid})
		if len(u.SSHKeys) > 0 {
			out = append(out, pending{path: home + "/.ssh", isDir: true, mode: 0o700, uid: uid, gid: gid},
				pending{path: home + "/.ssh/authorized_keys", data: []byte(strings.Join(u.SSHKeys, "\n") + "\n"), mode: 0o600, uid: uid, gid: gid})
		}
	}
	return out, nil
}

func (db *accounts) files() []pending {
	out := []pending{
		{path: "/etc/passwd", data: db.passwd.Bytes(), mode: 0o644, keepOwner: true},
		{path: "/etc/shadow", data: db.shadow.Bytes(), mode: 0o640, keepOwner: true},
		{path: "/etc/group", data: db.group.Bytes(), mode: 0o644, keepOwner: true},
	}
	if db.gshadow.Exists {
		out = append(out, pending{path: "/etc/gshadow", data: db.gshadow.Bytes(), mode: 0o640, keepOwner: true})
	}
	return out
}
