// Package kmod reads a kernel's module index (modules.dep, modules.alias,
// modules.softdep, modules.builtin) and resolves module names, aliases and
// device modaliases to dependency-ordered module lists.
//
// The same index is used twice: on the build host, to choose which .ko files
// go into the initramfs, and inside the PE, to load the modules that the
// devices present need (coldplug). Loading itself lives in load_linux.go.
package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ErrUnknownModule is returned (wrapped, naming the module) when a name is
// neither a module, an alias of one, nor built into the kernel.
var ErrUnknownModule = errors.New("unknown kernel module")

// ErrFormat is returned (wrapped, naming file and line) for a malformed index.
var ErrFormat = errors.New("malformed module index")

// Index files, relative to a modules directory such as /lib/modules/6.1.0-56-amd64.
const (
	DepFile     = "modules.dep"
	AliasFile   = "modules.alias"
	SoftdepFile = "modules.softdep"
	BuiltinFile = "modules.builtin"
)

type alias struct {
	pattern string // fnmatch pattern, as in modules.alias
	module  string
	glob    bool // pattern has wildcards
}

// DB is a parsed module index. The zero value is empty; use Parse or Open.
type DB struct {
	// Dir is the modules directory the index was read from ("" if parsed
	// from readers). Paths are relative to it.
	Dir string

	path    map[string]string   // module -> relative path of its .ko
	deps    map[string][]string // module -> modules it needs (as listed)
	pre     map[string][]string // softdep pre: names (modules or aliases)
	post    map[string][]string // softdep post:
	builtin map[string]bool
	aliases []alias
	exact   map[string][]string // non-glob alias -> modules
}

// Normalize returns the canonical form of a module name: the kernel treats
// '-' and '_' alike and reports names with '_' (usb-storage -> usb_storage).
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// NameFromPath returns the module name of a .ko path
// (kernel/drivers/usb/host/xhci-pci.ko.xz -> xhci_pci).
func NameFromPath(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return Normalize(strings.TrimSuffix(b, ".ko"))
}

// Open reads the index in dir. modules.dep is required; the other files are
// optional (a missing modules.alias only disables alias lookups).
func Open(dir string) (*DB, error) {
	dep, err := os.Open(filepath.Join(dir, DepFile))
	if err != nil {
		return nil, fmt.Errorf("kernel modules index: %w", err)
	}
	defer dep.Close()
	opt := func(name string) io.Reader {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil
		}
		return bytes.NewReader(b)
	}
	db, err := parse(dep, opt(AliasFile), opt(SoftdepFile), opt(BuiltinFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	db.Dir = dir
	return db, nil
}

// parse reads an index from its files' contents. alias, softdep and builtin
// may be nil.
func parse(dep, aliases, softdep, builtin io.Reader) (*DB, error) {
	db := &DB{
		path: map[string]string{}, deps: map[string][]string{},
		pre: map[string][]string{}, post: map[string][]string{},
		builtin: map[string]bool{}, exact: map[string][]string{},
	}
	err := eachLine(dep, DepFile, func(n int, line string) error {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.Contains(mod, ".ko") {
			return fmt.Errorf("%w: %s line %d: want \"path.ko: deps…\", got %q", ErrFormat, DepFile, n, line)
		}
		name := NameFromPath(mod)
		db.path[name] = mod
		var ds []string
		for _, d := range strings.Fields(rest) {
			ds = append(ds, NameFromPath(d))
			if _, ok := db.path[NameFromPath(d)]; !ok {
				db.path[NameFromPath(d)] = d
			}
		}
		db.deps[name] = ds
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(aliases, AliasFile, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("%w: %s line %d: want \"alias PATTERN MODULE\", got %q", ErrFormat, AliasFile, n, line)
		}
		a := alias{pattern: f[1], module: Normalize(f[2]), glob: strings.ContainsAny(f[1], "*?[")}
		db.aliases = append(db.aliases, a)
		if !a.glob {
			db.exact[f[1]] = append(db.exact[f[1]], a.module)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(softdep, SoftdepFile, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("%w: %s line %d: want \"softdep MODULE pre: … post: …\", got %q", ErrFormat, SoftdepFile, n, line)
		}
		mod, list := Normalize(f[1]), (map[string][]string)(nil)
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				list = db.pre
			case "post:":
				list = db.post
			default:
				if list != nil {
					list[mod] = append(list[mod], w)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachLine(builtin, BuiltinFile, func(n int, line string) error {
		db.builtin[NameFromPath(line)] = true
		return nil
	})
	return db, err
}

func eachLine(r io.Reader, name string, f func(n int, line string) error) error {
	if r == nil {
		return nil
	}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for s.Scan() {
		n++
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := f(n, line); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Path returns the .ko path of mod relative to Dir, or "" if mod is not a
// loadable module.
func (db *DB) Path(mod string) string { return db.path[Normalize(mod)] }

// Builtin reports whether mod is built into the kernel.
func (db *DB) Builtin(mod string) bool { return db.builtin[Normalize(mod)] }

// Modules returns every loadable module name, sorted.
func (db *DB) Modules() []string {
	var ms []string
	for m := range db.path {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms
}

// Lookup resolves a module name or an exact alias (iso9660 -> isofs,
// crypto-crc32c -> crc32c_generic …) to module names. A built-in module
// resolves to itself with builtin set. The error wraps ErrUnknownModule.
func (db *DB) Lookup(name string) (mods []string, builtin bool, err error) {
	n := Normalize(name)
	if _, ok := db.path[n]; ok {
		return []string{n}, false, nil
	}
	if db.builtin[n] {
		return []string{n}, true, nil
	}
	for _, key := range []string{name, n} {
		if ms := db.exact[key]; len(ms) > 0 {
			var out []string
			for _, m := range ms {
				if _, ok := db.path[m]; ok {
					out = append(out, m)
				} else if db.builtin[m] {
					builtin = true
				}
			}
			if len(out) > 0 || builtin {
				return out, builtin && len(out) == 0, nil
			}
		}
	}
	return nil, false, fmt.Errorf("%w %q (not in %s, %s or %s)", ErrUnknownModule, name, DepFile, AliasFile, BuiltinFile)
}

// Resolve returns the modules needed to load names, each after everything
// it depends on (hard dependencies from modules.dep and softdep "pre:"
// modules), without duplicates. Built-in modules are left out. Softdeps that
// name nothing loadable are ignored, as modprobe does; an unknown name in
// names is an error naming it.
func (db *DB) Resolve(names ...string) ([]string, error) {
	items, err := db.resolve(names)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.name
	}
	return out, nil
}

type item struct {
	name string
	soft bool // only wanted as a softdep: failing to load it is not fatal
}

func (db *DB) resolve(names []string) ([]item, error) {
	var order []item
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(m string, soft bool)
	visit = func(m string, soft bool) {
		if state[m] != 0 {
			// Done, or a cycle through softdeps (modules.dep itself is acyclic).
			if state[m] == 2 && !soft {
				for i := range order {
					if order[i].name == m {
						order[i].soft = false
					}
				}
			}
			return
		}
		state[m] = 1
		for _, p := range db.pre[m] {
			ms, builtin, err := db.Lookup(p)
			if err != nil || builtin {
				continue
			}
			for _, pm := range ms {
				visit(pm, true)
			}
		}
		for _, d := range db.deps[m] {
			visit(d, soft)
		}
		state[m] = 2
		order = append(order, item{m, soft})
	}
	for _, n := range names {
		ms, builtin, err := db.Lookup(n)
		if err != nil {
			return nil, err
		}
		if builtin {
			continue
		}
		for _, m := range ms {
			visit(m, false)
		}
	}
	return order, nil
}

// Deps returns the direct dependency list of mod as modules.dep gives it.
func (db *DB) Deps(mod string) []string { return db.deps[Normalize(mod)] }

// Softdeps returns the softdep pre: and post: names of mod.
func (db *DB) Softdeps(mod string) (pre, post []string) {
	return db.pre[Normalize(mod)], db.post[Normalize(mod)]
}

// Match returns the modules whose alias patterns match a device modalias
// (the contents of a sysfs modalias file), sorted and without duplicates.
func (db *DB) Match(modalias string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range db.aliases {
		if seen[a.module] {
			continue
		}
		if (a.glob && fnmatch(a.pattern, modalias)) || (!a.glob && a.pattern == modalias) {
			seen[a.module] = true
			out = append(out, a.module)
		}
	}
	sort.Strings(out)
	return out
}

// fnmatch implements the subset of fnmatch(3) that modules.alias uses:
// '*', '?' and bracket expressions ([abc], [a-z], [!x]). Unlike path.Match,
// '/' is an ordinary character.
func fnmatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 0 && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if fnmatch(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			pattern, s = pattern[1:], s[1:]
		case '[':
			if s == "" {
				return false
			}
			end := strings.IndexByte(pattern[1:], ']')
			if end < 0 { // unterminated: literal '['
				if s[0] != '[' {
					return false
				}
				pattern, s = pattern[1:], s[1:]
				continue
			}
			if end == 0 { // "[]...]": ']' first is literal
				if e2 := strings.IndexByte(pattern[2:], ']'); e2 >= 0 {
					end = e2 + 1
				}
			}
			class := pattern[1 : 1+end]
			pattern = pattern[2+end:]
			neg := false
			if len(class) > 0 && (class[0] == '!' || class[0] == '^') {
				neg, class = true, class[1:]
			}
			c, hit := s[0], false
			for i := 0; i < len(class); i++ {
				if i+2 < len(class) && class[i+1] == '-' {
					if class[i] <= c && c <= class[i+2] {
						hit = true
					}
					i += 2
				} else if class[i] == c {
					hit = true
				}
			}
			if hit == neg {
				return false
			}
			s = s[1:]
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
			pattern, s = pattern[1:], s[1:]
		}
	}
	return s == ""
}

// Subset writes an index restricted to mods (which must be closed under
// dependencies, as Resolve returns them) in the formats Parse reads, so the
// PE carries a small index that only names modules it has.
func (db *DB) Subset(mods []string) (dep, aliases, softdep, builtin string) {
	in := map[string]bool{}
	for _, m := range mods {
		in[m] = true
	}
	var d, a, s, b strings.Builder
	for _, m := range mods {
		fmt.Fprintf(&d, "%s:", db.path[m])
		for _, x := range db.deps[m] {
			fmt.Fprintf(&d, " %s", db.path[x])
		}
		d.WriteString("\n")
	}
	for _, al := range db.aliases {
		if in[al.module] {
			fmt.Fprintf(&a, "alias %s %s\n", al.pattern, al.module)
		}
	}
	for _, m := range mods {
		pre, post := db.pre[m], db.post[m]
		if len(pre)+len(post) == 0 {
			continue
		}
		fmt.Fprintf(&s, "softdep %s", m)
		if len(pre) > 0 {
			fmt.Fprintf(&s, " pre: %s", strings.Join(pre, " "))
		}
		if len(post) > 0 {
			fmt.Fprintf(&s, " post: %s", strings.Join(post, " "))
		}
		s.WriteString("\n")
	}
	var bs []string
	for m := range db.builtin {
		bs = append(bs, m)
	}
	sort.Strings(bs)
	for _, m := range bs {
		fmt.Fprintf(&b, "kernel/%s.ko\n", m)
	}
	return d.String(), a.String(), s.String(), b.String()
}
