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

	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/passwd"
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
	g := &merger{merge: merge, warn: warn, added: map[string]bool{}, imageGroups: map[string]bool{}}
	for _, t := range []struct {
		t **passwd.Table
		k passwd.Kind
	}{{&g.gr, passwd.Group}, {&g.pw, passwd.Passwd}, {&g.sh, passwd.Shadow}, {&g.gs, passwd.Gshadow}} {
		var err error
		if *t.t, err = passwd.Read(root, t.k); err != nil {
			return nil, err
		}
	}
	for _, r := range g.gr.Rows {
		g.imageGroups[r[0]] = true
	}
	groups, err := g.groups(acc.Group)
	if err != nil {
		return nil, err
	}
	captured, err := g.users(acc.Passwd)
	if err != nil {
		return nil, err
	}
	if err := g.passwords(acc.Shadow); err != nil {
		return nil, err
	}
	g.members(groups, acc.Members)
	p := &accountPlan{added: g.addedNames, homes: map[string]int{}, warn: warn}
	p.allowHomes(captured, g.pw)
	if merge && (len(acc.Passwd) > 0 || len(acc.Group) > 0) {
		p.tables = []*passwd.Table{g.gr, g.pw, g.sh}
		if g.gs.Exists {
			p.tables = append(p.tables, g.gs)
		}
	}
	return p, nil
}

// merger holds the new system's account tables while planAccounts merges
// captured records into them.
type merger struct {
	gr, pw, sh, gs *passwd.Table
	merge          bool
	warn           func(string, ...any)
	imageGroups    map[string]bool // the groups the image has
	added          map[string]bool // users this restore adds
	addedNames     []string
}

// capturedGroup is a regular group from the store, as it now is in the
// merged table, with its captured members.
type capturedGroup struct {
	row     []string
	members []string
}

// groups merges the captured regular groups (members come later, once
// the added users are known).
func (g *merger) groups(lines []string) ([]capturedGroup, error) {
	var out []capturedGroup
	for _, l := range lines {
		f, err := passwd.CheckRegularGroup(l)
		if err != nil {
			g.warn("captured group dropped: %v", err)
			continue
		}
		if err := clash("group", g.gr, f); err != nil {
			return nil, err
		}
		if !g.merge {
			continue
		}
		members := g.gr.Members(f)
		if g.gr.Find(f[0]) == nil {
			f[3] = ""
			if err := g.gr.Add(f...); err != nil {
				return nil, err
			}
			if g.gs.Exists {
				if err := g.gs.Add(f[0], "!", "", ""); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, capturedGroup{g.gr.Find(f[0]), members})
	}
	return out, nil
}

// users merges the captured regular accounts and returns those the new
// system now has (added, or the image's own with the same name and id).
func (g *merger) users(lines []string) ([]user, error) {
	var captured []user
	for _, l := range lines {
		f, err := passwd.CheckRegularUser(l)
		if err != nil {
			g.warn("captured account dropped: %v", err)
			continue
		}
		if err := clash("user", g.pw, f); err != nil {
			return nil, err
		}
		if g.pw.Find(f[0]) == nil {
			if !g.merge {
				continue
			}
			if err := g.pw.Add(f...); err != nil {
				return nil, err
			}
			g.added[f[0]] = true
			g.addedNames = append(g.addedNames, f[0])
		}
		captured = append(captured, userOf(f))
	}
	return captured, nil
}

// passwords adds the captured password records of the users this restore
// adds; a user the image already has keeps the image's.
func (g *merger) passwords(lines []string) error {
	for _, l := range lines {
		f, err := passwd.ParseLine(passwd.Shadow, l)
		if err != nil {
			g.warn("captured password record dropped: %v", err)
			continue
		}
		if !g.added[f[0]] || g.sh.Find(f[0]) != nil {
			continue
		}
		if f[1] == "" {
			// An empty hash logs in without a password.
			g.warn("user %s: captured with an empty password, restored locked", f[0])
			f[1] = "!"
		}
		if err := g.sh.Add(f...); err != nil {
			return err
		}
	}
	return nil
}

// members restores memberships: only of users this restore adds, in the
// captured regular groups and in groups the image has outside the system
// range; the rest is reported.
func (g *merger) members(groups []capturedGroup, others map[string][]string) {
	for _, c := range groups {
		for _, m := range c.members {
			g.member(c.row, m)
		}
	}
	if !g.merge {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(others)) {
		ms := others[name]
		row := g.gr.Find(name)
		switch {
		case row == nil || !g.imageGroups[name]:
			g.warn("membership of %s in group %q not restored: the new system has no such group", strings.Join(ms, ", "), name)
			continue
		case !passwd.IsRegular(g.gr.ID(row)):
			g.warn("membership of %s in system group %s not restored: grant it with the answer file's users: groups:", strings.Join(ms, ", "), name)
			continue
		}
		for _, m := range ms {
			g.member(row, m)
		}
	}
}

func (g *merger) member(row []string, m string) {
	if !g.added[m] {
		g.warn("group %s: member %q not restored: not an account this restore adds", row[0], m)
		return
	}
	g.gr.AddMember(row, m)
	if r := g.gs.Find(row[0]); r != nil {
		g.gs.AddMember(r, m)
	}
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
		if err := writeOwned(name, t.Bytes(), mode, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// writeOwned replaces name with data owned by uid:gid, the owner and mode
// set before the rename so that a crash never leaves /etc/passwd or
// /etc/shadow with the wrong ones.
func writeOwned(name string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := durable.Create(name, mode)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chown(uid, gid); err != nil {
		return err
	}
	return f.Commit()
}
