package state

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// restoreRoot is a subtree a restore may write: a captured user's home
// (uid: that user's, every entry must be theirs) or a path the restore's
// caller names (uid -1: any owner).
type restoreRoot struct {
	rel string
	uid int
}

// restorable decides, before anything is written, which entries of a
// manifest a restore creates and with what metadata. A store is evidence
// of what a user had, not an authority over the new system, so whatever
// its signature, only these survive:
//
//   - entries under the homes planAccounts allowed or under the caller's
//     paths; directories above them only as plain root-owned 0755
//     directories (created when missing, an existing one left alone);
//   - under a home, only entries owned by that home's user;
//   - under the caller's paths, symlinks only to inside the same path;
//   - no device nodes, no setuid or setgid files, no security.capability
//     or trusted.* xattrs (privilege the user did not have to give);
//   - hard links only to entries that survived, in the same subtree.
//
// Everything else is dropped through warn, and whatever lies inside a
// dropped directory with it.
func restorable(m *Manifest, homes map[string]int, paths []string, warn func(string, ...any)) []Entry {
	var roots []restoreRoot
	for rel, uid := range homes {
		roots = append(roots, restoreRoot{rel, uid})
	}
	for _, p := range paths {
		roots = append(roots, restoreRoot{strings.TrimPrefix(p, "/"), -1})
	}
	slices.SortFunc(roots, func(a, b restoreRoot) int { return strings.Compare(a.rel, b.rel) })
	kept := map[string]*Entry{}
	rootOf := map[string]string{} // kept entry → the outermost root it is in
	dropped := map[string]bool{}
	var out []Entry
	drop := func(e *Entry, format string, a ...any) {
		dropped[e.Path] = true
		warn("/%s not restored: %s", e.Path, fmt.Sprintf(format, a...))
	}
	for i := range m.Entries {
		e := m.Entries[i] // a copy: the manifest stays as read
		if dir := parentOf(e.Path); dir != "" && kept[dir] == nil {
			dropped[e.Path] = true // inside a dropped directory: said once, for it
			continue
		}
		var in []restoreRoot
		above := false
		for _, r := range roots {
			switch {
			case e.Path == r.rel || strings.HasPrefix(e.Path, r.rel+"/"):
				in = append(in, r)
			case strings.HasPrefix(r.rel, e.Path+"/"):
				above = true
			}
		}
		if len(in) == 0 {
			if !above {
				drop(&e, "outside the captured users' homes and the paths this restore takes")
				continue
			}
			if e.Type != TypeDir || e.Link != "" {
				drop(&e, "a %s where a directory leading to restored paths belongs", e.Type)
				continue
			}
			e.Ancestor, e.UID, e.GID, e.Mode, e.Xattrs = true, 0, 0, 0o755, nil
			kept[e.Path] = &e
			out = append(out, e)
			continue
		}
		owner := &e
		if e.Link != "" {
			if owner = kept[e.Link]; owner == nil || owner.Ancestor {
				drop(&e, "a hard link to %s, which is not restored", e.Link)
				continue
			}
			// One inode in two subtrees would let one's owner change
			// the other's file (a user's file as /etc/ssh/sshd_config).
			if rootOf[e.Link] != in[0].rel {
				drop(&e, "a hard link to /%s, in another restored subtree", e.Link)
				continue
			}
		}
		if isHome(in, e.Path) && (e.Type != TypeDir || e.Link != "") {
			// A home that is a symlink would lead whatever later writes
			// into it as root (setup's own tools) elsewhere.
			drop(&e, "a home that is a %s, not a directory", e.Type)
			continue
		}
		if e.Type == TypeSymlink && e.Link == "" && !linkStaysIn(e, in) {
			drop(&e, "a symlink to %s, outside the restored path %s", e.Target, "/"+in[0].rel)
			continue
		}
		if !ownerAllowed(in, owner) {
			drop(&e, "owned by uid %d in the home of another user", owner.UID)
			continue
		}
		if e.Type == TypeChar || e.Type == TypeBlock {
			drop(&e, "a device node")
			continue
		}
		if e.Link == "" {
			strip := uint32(0o6000)
			if e.Type == TypeDir {
				strip = 0o4000 // setgid on a directory only passes its group on
			}
			if e.Mode&strip != 0 {
				warn("/%s: restored without its setuid/setgid bits (mode %04o)", e.Path, e.Mode)
				e.Mode &^= strip
			}
			e.Xattrs = safeXattrs(e, warn)
		}
		kept[e.Path] = &e
		rootOf[e.Path] = in[0].rel
		out = append(out, e)
	}
	return out
}

// ownerAllowed: under a caller's path anything goes; under homes the
// entry must belong to the home's user. Its group may be any: a group
// grants nothing through a file that is not setgid (and none is), and
// "chown alice file" run by root leaves group root behind.
func ownerAllowed(in []restoreRoot, e *Entry) bool {
	for _, r := range in {
		if r.uid < 0 || int(e.UID) == r.uid {
			return true
		}
	}
	return false
}

// linkStaysIn: in a user's home a symlink may point anywhere (the user
// could make it anyway); under a caller's path it must point inside that
// path, or a file the system reads there (/etc/ssh/sshd_config) could be
// one a user writes (/home/bob/cfg, /tmp/x).
func linkStaysIn(e Entry, in []restoreRoot) bool {
	for _, r := range in {
		if r.uid >= 0 {
			return true
		}
	}
	t := e.Target
	if !path.IsAbs(t) {
		t = path.Join("/", parentOf(e.Path), t)
	}
	t = strings.TrimPrefix(path.Clean(t), "/")
	for _, r := range in {
		if t == r.rel || strings.HasPrefix(t, r.rel+"/") {
			return true
		}
	}
	return false
}

// isHome says whether rel is itself one of the home roots in in.
func isHome(in []restoreRoot, rel string) bool {
	for _, r := range in {
		if r.uid >= 0 && r.rel == rel {
			return true
		}
	}
	return false
}

func safeXattrs(e Entry, warn func(string, ...any)) map[string][]byte {
	var out map[string][]byte
	for k, v := range e.Xattrs {
		if k == "security.capability" || strings.HasPrefix(k, "trusted.") {
			warn("/%s: restored without its %s xattr", e.Path, k)
			continue
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[k] = v
	}
	return out
}

// checkPaths checks the paths a caller lets a restore write.
func checkPaths(paths []string) error {
	for _, p := range paths {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return fmt.Errorf("restore path %q: must be absolute, clean and not /", p)
		}
	}
	return nil
}
