package state

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/minint/minint/internal/passwd"
	"github.com/minint/minint/state/internal/fsx"
)

// user is a passwd record reduced to what capture and the restore policy
// use.
type user struct {
	name     string
	uid, gid int
	home     string
}

// captureAccounts picks the regular users from root's passwd and collects
// their records: their passwd and shadow lines, the groups in the regular
// range or that are their primary group, and their memberships in other
// groups (which Restore reports but does not restore: see planAccounts).
func captureAccounts(root string) (Accounts, []user, error) {
	var acc Accounts
	pw, err := passwd.Read(root, passwd.Passwd)
	if err != nil {
		return acc, nil, err
	}
	if !pw.Exists {
		return acc, nil, fmt.Errorf("%s/etc/passwd: %w", root, os.ErrNotExist)
	}
	sh, err := passwd.Read(root, passwd.Shadow)
	if err != nil {
		return acc, nil, err
	}
	gr, err := passwd.Read(root, passwd.Group)
	if err != nil {
		return acc, nil, err
	}
	var users []user
	names := map[string]bool{}
	gids := map[int]bool{}
	for _, r := range pw.Rows {
		u := userOf(r)
		if !passwd.IsRegular(u.uid) {
			continue
		}
		users = append(users, u)
		names[u.name] = true
		gids[u.gid] = true
		acc.Passwd = append(acc.Passwd, strings.Join(r, ":"))
		if s := sh.Find(u.name); s != nil {
			acc.Shadow = append(acc.Shadow, strings.Join(s, ":"))
		}
	}
	for _, r := range gr.Rows {
		if gid := gr.ID(r); gids[gid] || passwd.IsRegular(gid) {
			acc.Group = append(acc.Group, strings.Join(r, ":"))
			continue
		}
		for _, m := range gr.Members(r) {
			if names[m] {
				if acc.Members == nil {
					acc.Members = map[string][]string{}
				}
				acc.Members[r[0]] = append(acc.Members[r[0]], m)
			}
		}
	}
	return acc, users, nil
}

// userOf reads a record passwd.ParseLine accepted (numeric ids).
func userOf(r []string) user {
	uid, _ := strconv.Atoi(r[2])
	gid, _ := strconv.Atoi(r[3])
	return user{name: r[0], uid: uid, gid: gid, home: r[5]}
}

// accountPlan is the new contents of the account files and the homes the
// file policy allows, computed before anything is written so that a
// conflict changes nothing.
type accountPlan struct {
	tables []*passwd.Table // to write, in order
	added  []string
	// homes are the captured users whose home's files may be restored:
	// relative home path → uid.
	homes map[string]int
	warn  func(format string, a ...any)
}

// planAccounts merges the captured records into root's account files,
// trusting none of them: whatever a store says, only well-formed regular
// accounts are added (passwd.CheckRegularUser, CheckRegularGroup),
// memberships only for accounts this restore adds and only in groups the
// new image already has outside the system range, and a captured user
// keeps the image's password when the image has the account. The rule for
// clashes: the same name with the same id in the new system is kept as the
// new system has it; the same name with another id, or the same id under
// another name, is ErrAccountConflict. With merge false nothing is added
// and only captured users the image already has count for their homes.
// Records that break the rules are dropped through warn.
func planAccounts(root string, acc Accounts, merge bool, warn func(string, ...any)) (*accountPlan, error) {
	p := &accountPlan{homes: map[string]int{}, warn: warn}
	var t [4]*passwd.Table
	for i, k := range []passwd.Kind{passwd.Group, passwd.Passwd, passwd.Shadow, passwd.Gshadow} {
		var err error
		if t[i], err = passwd.Read(root, k); err != nil {
			return nil, err
		}
	}
	gr, pw, sh, gs := t[0], t[1], t[2], t[3]
	imageGroups := map[string]bool{}
	for _, r := range gr.Rows {
		imageGroups[r[0]] = true
	}
	type newGroup struct {
		row     []string
		members []string
	}
	var groups []newGroup
	for _, l := range acc.Group {
		f, err := passwd.CheckRegularGroup(l)
		if err != nil {
			warn("captured group dropped: %v", err)
			continue
		}
		if err := clash("group", gr, f); err != nil {
			return nil, err
		}
		if !merge {
			continue
		}
		members := gr.Members(f)
		if gr.Find(f[0]) == nil {
			f[3] = ""
			if err := gr.Add(f...); err != nil {
				return nil, err
			}
			if gs.Exists {
				if err := gs.Add(f[0], "!", "", ""); err != nil {
					return nil, err
				}
			}
		}
		groups = append(groups, newGroup{gr.Find(f[0]), members})
	}
	added := map[string]bool{}
	var captured []user
	for _, l := range acc.Passwd {
		f, err := passwd.CheckRegularUser(l)
		if err != nil {
			warn("captured account dropped: %v", err)
			continue
		}
		if err := clash("user", pw, f); err != nil {
			return nil, err
		}
		if pw.Find(f[0]) == nil {
			if !merge {
				continue
			}
			if err := pw.Add(f...); err != nil {
				return nil, err
			}
			added[f[0]] = true
			p.added = append(p.added, f[0])
		}
		captured = append(captured, userOf(f))
	}
	for _, l := range acc.Shadow {
		f, err := passwd.ParseLine(passwd.Shadow, l)
		if err != nil {
			warn("captured password record dropped: %v", err)
			continue
		}
		// Only users this restore adds get their captured password; a user
		// the image already has keeps the image's.
		if added[f[0]] && sh.Find(f[0]) == nil {
			if f[1] == "" {
				// An empty hash logs in without a password.
				warn("user %s: captured with an empty password, restored locked", f[0])
				f[1] = "!"
			}
			if err := sh.Add(f...); err != nil {
				return nil, err
			}
		}
	}
	member := func(row []string, m string) {
		gr.AddMember(row, m)
		if g := gs.Find(row[0]); g != nil {
			gs.AddMember(g, m)
		}
	}
	for _, g := range groups {
		for _, m := range g.members {
			if added[m] {
				member(g.row, m)
			} else {
				warn("group %s: member %s not restored: not an account this restore adds", g.row[0], m)
			}
		}
	}
	for _, g := range slices.Sorted(maps.Keys(acc.Members)) {
		ms := acc.Members[g]
		row := gr.Find(g)
		switch {
		case !merge:
			continue
		case row == nil || !imageGroups[g]:
			warn("membership of %s in group %q not restored: the new system has no such group", strings.Join(ms, ", "), g)
			continue
		case !passwd.IsRegular(gr.ID(row)):
			warn("membership of %s in system group %s not restored: grant it with the answer file's users: groups:", strings.Join(ms, ", "), g)
			continue
		}
		for _, m := range ms {
			if added[m] {
				member(row, m)
			} else {
				warn("group %s: member %q not restored: not an account this restore adds", g, m)
			}
		}
	}
	p.allowHomes(captured, pw)
	if merge && (len(acc.Passwd) > 0 || len(acc.Group) > 0) {
		p.tables = []*passwd.Table{gr, pw, sh}
		if gs.Exists {
			p.tables = append(p.tables, gs)
		}
	}
	return p, nil
}

// allowHomes records the homes whose files may be restored: below /home,
// and no other account's home is the same or nested with it (a captured
// "bob" with home /home/alice must not replace alice's files).
func (p *accountPlan) allowHomes(captured []user, pw *passwd.Table) {
	for _, u := range captured {
		rel := strings.TrimPrefix(u.home, "/")
		if !strings.HasPrefix(rel, "home/") {
			p.warn("user %s: home %s is not below /home: its files are not restored", u.name, u.home)
			continue
		}
		shared := ""
		for _, r := range pw.Rows {
			if r[0] != u.name && nested(strings.TrimPrefix(path.Clean(r[5]), "/"), rel) {
				shared = r[0]
			}
		}
		if shared != "" {
			p.warn("user %s: home %s is shared with %s: its files are not restored", u.name, u.home, shared)
			continue
		}
		p.homes[rel] = u.uid
	}
}

// nested says whether one of two relative paths is the other or inside it.
func nested(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// clash applies the conflict rule to a captured record f against t.
func clash(kind string, t *passwd.Table, f []string) error {
	id, _ := strconv.Atoi(f[2])
	if r := t.Find(f[0]); r != nil && r[2] != f[2] {
		return fmt.Errorf("%w: %s %q has id %s in the captured state but %s in the new system", ErrAccountConflict, kind, f[0], f[2], r[2])
	}
	if r := t.ByID(id); r != nil && r[0] != f[0] {
		return fmt.Errorf("%w: %s %q (id %s) is taken by %q in the new system", ErrAccountConflict, kind, f[0], f[2], r[0])
	}
	return nil
}

// write replaces each account file atomically, keeping its mode and owner
// (shadow must stay unreadable to users).
func (p *accountPlan) write(root string) error {
	for _, t := range p.tables {
		name := filepath.Join(root, t.Kind.File)
		mode, uid, gid := os.FileMode(0o644), 0, 0
		if t.Kind == passwd.Shadow || t.Kind == passwd.Gshadow {
			mode = 0o640
		}
		if fi, err := os.Lstat(name); err == nil {
			if fi.Mode()&os.ModeSymlink != 0 {
				return fmt.Errorf("%w: %s is a symlink", ErrInsecurePath, name)
			}
			mode = fi.Mode().Perm()
			st := fi.Sys().(*syscall.Stat_t)
			uid, gid = int(st.Uid), int(st.Gid)
		}
		if err := fsx.WriteFileSync(name, t.Bytes()); err != nil {
			return err
		}
		if err := os.Chown(name, uid, gid); err != nil {
			return err
		}
		if err := os.Chmod(name, mode); err != nil {
			return err
		}
	}
	return nil
}
