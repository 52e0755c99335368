package state

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/minint/minint/internal/durable"
)

// user is one /etc/passwd line, split.
type user struct {
	name string
	uid  int
	gid  int
	home string
	line string
}

func readLines(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func parsePasswd(lines []string) ([]user, error) {
	var us []user
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ":")
		if len(f) != 7 {
			return nil, fmt.Errorf("%w: passwd line %d has %d fields, want 7", ErrFormat, i+1, len(f))
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || f[0] == "" {
			return nil, fmt.Errorf("%w: passwd line %d: bad name, uid or gid", ErrFormat, i+1)
		}
		us = append(us, user{name: f[0], uid: uid, gid: gid, home: f[5], line: l})
	}
	return us, nil
}

// regularUser is the Debian convention for accounts people log in with:
// uid 1000 up to (not including) nobody's 65534.
func regularUser(u user) bool { return u.uid >= 1000 && u.uid < 65534 }

// captureAccounts picks the regular users from root's passwd and collects
// their records.
func captureAccounts(root string) (Accounts, []user, error) {
	var acc Accounts
	pw, err := readLines(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return acc, nil, err
	}
	all, err := parsePasswd(pw)
	if err != nil {
		return acc, nil, fmt.Errorf("%s/etc/passwd: %w", root, err)
	}
	var users []user
	names := map[string]bool{}
	gids := map[int]bool{}
	for _, u := range all {
		if regularUser(u) {
			users = append(users, u)
			names[u.name] = true
			gids[u.gid] = true
			acc.Passwd = append(acc.Passwd, u.line)
		}
	}
	if sh, err := readLines(filepath.Join(root, "etc/shadow")); err == nil {
		for _, l := range sh {
			if names[strings.SplitN(l, ":", 2)[0]] {
				acc.Shadow = append(acc.Shadow, l)
			}
		}
	} else if !os.IsNotExist(err) {
		return acc, nil, err
	}
	gr, err := readLines(filepath.Join(root, "etc/group"))
	if err != nil && !os.IsNotExist(err) {
		return acc, nil, err
	}
	for _, l := range gr {
		f := strings.Split(l, ":")
		if len(f) != 4 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		if gids[gid] || (gid >= 1000 && gid < 65534) {
			acc.Group = append(acc.Group, l)
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if names[m] {
				if acc.Members == nil {
					acc.Members = map[string][]string{}
				}
				acc.Members[f[0]] = append(acc.Members[f[0]], m)
			}
		}
	}
	return acc, users, nil
}

// idLine is a passwd or group line reduced to what conflicts are judged on.
type idLine struct {
	name string
	id   string
	line string
}

func splitID(l string) idLine {
	f := strings.Split(l, ":")
	il := idLine{name: f[0], line: l}
	if len(f) > 2 {
		il.id = f[2]
	}
	return il
}

// mergeIDs merges captured lines into the target's. The rule: an entry
// with the same name and the same id already in the target is kept as the
// target has it (the image wins); the same name with another id, or the
// same id under another name, is a conflict; anything else is appended.
// It returns the new lines and the names that were added.
func mergeIDs(kind string, target, captured []string) ([]string, map[string]bool, error) {
	byName := map[string]idLine{}
	byID := map[string]idLine{}
	for _, l := range target {
		il := splitID(l)
		byName[il.name] = il
		byID[il.id] = il
	}
	out := slices.Clone(target)
	added := map[string]bool{}
	for _, l := range captured {
		c := splitID(l)
		if t, ok := byName[c.name]; ok {
			if t.id != c.id {
				return nil, nil, fmt.Errorf("%w: %s %q has id %s in the captured state but %s in the new system", ErrAccountConflict, kind, c.name, c.id, t.id)
			}
			continue
		}
		if t, ok := byID[c.id]; ok {
			return nil, nil, fmt.Errorf("%w: %s %q (id %s) is taken by %q in the new system", ErrAccountConflict, kind, c.name, c.id, t.name)
		}
		out = append(out, l)
		added[c.name] = true
		byName[c.name], byID[c.id] = c, c
	}
	return out, added, nil
}

// accountPlan is the new contents of the account files, computed before
// anything is written so that a conflict changes nothing.
type accountPlan struct {
	files map[string][]string // path relative to root → lines
	added []string
}

func planAccounts(root string, acc Accounts) (*accountPlan, error) {
	p := &accountPlan{files: map[string][]string{}}
	if len(acc.Passwd) == 0 && len(acc.Group) == 0 {
		return p, nil
	}
	read := func(rel string) ([]string, error) {
		l, err := readLines(filepath.Join(root, rel))
		if os.IsNotExist(err) {
			return nil, nil
		}
		return l, err
	}
	grp, err := read("etc/group")
	if err != nil {
		return nil, err
	}
	grp, _, err = mergeIDs("group", grp, acc.Group)
	if err != nil {
		return nil, err
	}
	for g, members := range acc.Members {
		for i, l := range grp {
			f := strings.Split(l, ":")
			if len(f) != 4 || f[0] != g {
				continue
			}
			have := []string{}
			if f[3] != "" {
				have = strings.Split(f[3], ",")
			}
			for _, m := range members {
				if !slices.Contains(have, m) {
					have = append(have, m)
				}
			}
			f[3] = strings.Join(have, ",")
			grp[i] = strings.Join(f, ":")
		}
	}
	p.files["etc/group"] = grp
	pw, err := read("etc/passwd")
	if err != nil {
		return nil, err
	}
	pw, added, err := mergeIDs("user", pw, acc.Passwd)
	if err != nil {
		return nil, err
	}
	p.files["etc/passwd"] = pw
	sh, err := read("etc/shadow")
	if err != nil {
		return nil, err
	}
	for _, l := range acc.Shadow {
		// Only users this restore adds get their captured password; a user
		// the image already has keeps the image's.
		if added[strings.SplitN(l, ":", 2)[0]] {
			sh = append(sh, l)
		}
	}
	p.files["etc/shadow"] = sh
	for n := range added {
		p.added = append(p.added, n)
	}
	slices.Sort(p.added)
	return p, nil
}

// write replaces each account file atomically, keeping its mode and owner
// (shadow must stay unreadable to users).
func (p *accountPlan) write(root string) error {
	for _, rel := range []string{"etc/group", "etc/passwd", "etc/shadow"} {
		lines, ok := p.files[rel]
		if !ok {
			continue
		}
		name := filepath.Join(root, rel)
		mode, uid, gid := os.FileMode(0o644), 0, 0
		if rel == "etc/shadow" {
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
		data := []byte(strings.Join(lines, "\n") + "\n")
		if err := writeOwned(name, data, mode, uid, gid); err != nil {
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
