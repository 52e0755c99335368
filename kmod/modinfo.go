package kmod

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ErrNotModule is returned (wrapped, with the reason) by ReadInfo for data
// that is not a loadable kernel module.
var ErrNotModule = errors.New("not a kernel module")

// Info is what a module file says about itself: the key=value strings of
// its .modinfo section (what modinfo(8) prints) and whether a signature is
// appended. Tools that only have a .ko, such as a driver pack, learn its
// dependencies, aliases and firmware from here as depmod does.
type Info struct {
	Name     string   // name=, or "" for old modules without it
	Vermagic string   // "6.1.0-57-amd64 SMP preempt mod_unload modversions "
	Depends  []string // module names, normalized
	Aliases  []string // modalias patterns
	Firmware []string // firmware files it may request, relative to /lib/firmware
	// SoftPre and SoftPost are "softdep=pre: a b post: c" of the module.
	SoftPre, SoftPost []string
	License           string
	// Signed: the file ends in the kernel's module signature trailer
	// ("~Module signature appended~\n"). Whether the kernel trusts the key
	// is for the kernel to decide when it loads it.
	Signed bool
}

// sigMagic ends a signed module; before it comes struct module_signature
// (12 bytes, the signature's length big-endian in its last 4) and before
// that the signature itself.
const sigMagic = "~Module signature appended~\n"

// maxModinfo bounds the .modinfo section we read: real ones are a few KiB
// (alias lists of large drivers reach ~100 KiB).
const maxModinfo = 4 << 20

// ReadInfo reads the module information of a .ko file's contents. It does
// not trust the file: sizes are checked against the data and the section is
// bounded, so a hostile file yields an error, not a crash.
func ReadInfo(ko []byte) (*Info, error) {
	info := &Info{}
	elfData := ko
	if bytes.HasSuffix(ko, []byte(sigMagic)) {
		rest := ko[:len(ko)-len(sigMagic)]
		if len(rest) < 12 {
			return nil, fmt.Errorf("%w: truncated signature trailer", ErrNotModule)
		}
		sigLen := int64(binary.BigEndian.Uint32(rest[len(rest)-4:]))
		if sigLen == 0 || sigLen > int64(len(rest)-12) {
			return nil, fmt.Errorf("%w: signature length %d does not fit the file", ErrNotModule, sigLen)
		}
		elfData = rest[:int64(len(rest)-12)-sigLen]
		info.Signed = true
	}
	f, err := elf.NewFile(bytes.NewReader(elfData))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotModule, err)
	}
	defer f.Close()
	if f.Type != elf.ET_REL {
		return nil, fmt.Errorf("%w: ELF type %s, want a relocatable object (ET_REL)", ErrNotModule, f.Type)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%w: no .modinfo section", ErrNotModule)
	}
	if sec.Size > maxModinfo || sec.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("%w: .modinfo section of %d bytes", ErrNotModule, sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: .modinfo: %v", ErrNotModule, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue // padding between strings
		}
		switch k {
		case "name":
			info.Name = Normalize(v)
		case "vermagic":
			info.Vermagic = v
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					info.Depends = append(info.Depends, Normalize(d))
				}
			}
		case "alias":
			info.Aliases = append(info.Aliases, v)
		case "firmware":
			info.Firmware = append(info.Firmware, v)
		case "softdep":
			var list *[]string
			for _, w := range strings.Fields(v) {
				switch w {
				case "pre:":
					list = &info.SoftPre
				case "post:":
					list = &info.SoftPost
				default:
					if list != nil {
						*list = append(*list, w)
					}
				}
			}
		case "license":
			info.License = v
		}
	}
	if info.Vermagic == "" {
		return nil, fmt.Errorf("%w: .modinfo has no vermagic", ErrNotModule)
	}
	sort.Strings(info.Firmware)
	return info, nil
}

// KernelRelease is the kernel release a vermagic names (its first word).
func KernelRelease(vermagic string) string {
	r, _, _ := strings.Cut(strings.TrimSpace(vermagic), " ")
	return r
}

// Entry is a module to add to a DB that its index does not list, such as
// one from a driver pack: what depmod would have written for it.
type Entry struct {
	Name    string   // module name (normalized by Add)
	Path    string   // .ko path relative to the DB's Dir
	Depends []string // modules it needs (names)
	Aliases []string // modalias patterns
	// SoftPre and SoftPost are its softdeps.
	SoftPre, SoftPost []string
	// Replace lets the entry take the place of a loadable module of the
	// same name (a vendor's newer build of an in-tree driver, as depmod
	// prefers updates/ and extra/ over kernel/). A built-in module cannot
	// be replaced.
	Replace bool
}

// EntryFor turns a module's Info into the Entry Add takes.
func EntryFor(path string, info *Info) Entry {
	name := info.Name
	if name == "" {
		name = NameFromPath(path)
	}
	return Entry{Name: name, Path: path, Depends: info.Depends, Aliases: info.Aliases, SoftPre: info.SoftPre, SoftPost: info.SoftPost}
}

// ErrConflict is returned (wrapped, naming the module) by Add for a module
// the DB already has or has built in.
var ErrConflict = errors.New("module already provided")

// Add adds modules to db as depmod would index them. All are added
// together, so they may depend on each other; a dependency that neither db
// nor es provides is an error naming both modules, and db is then left
// unchanged.
func (db *DB) Add(es ...Entry) error {
	mine := map[string]bool{}
	for _, e := range es {
		n := Normalize(e.Name)
		if db.builtin[n] {
			return fmt.Errorf("%w: %s is built into this kernel", ErrConflict, n)
		}
		if _, ok := db.path[n]; ok && !e.Replace {
			return fmt.Errorf("%w: %s is already a module of this kernel", ErrConflict, n)
		}
		if mine[n] {
			return fmt.Errorf("%w: %s is given twice", ErrConflict, n)
		}
		mine[n] = true
	}
	for _, e := range es {
		for _, d := range e.Depends {
			d = Normalize(d)
			if _, ok := db.path[d]; !ok && !mine[d] && !db.builtin[d] {
				return fmt.Errorf("%w %q: module %s depends on it (its depends=), but neither this kernel nor the modules added with it provide it", ErrUnknownModule, d, Normalize(e.Name))
			}
		}
	}
	for _, e := range es {
		if n := Normalize(e.Name); e.Replace && db.path[n] != "" {
			db.dropAliases(n)
		}
	}
	for _, e := range es {
		n := Normalize(e.Name)
		db.path[n] = e.Path
		var deps []string
		for _, d := range e.Depends {
			if d = Normalize(d); !db.builtin[d] {
				deps = append(deps, d)
			}
		}
		db.deps[n] = deps
		if len(e.SoftPre) > 0 {
			db.pre[n] = e.SoftPre
		}
		if len(e.SoftPost) > 0 {
			db.post[n] = e.SoftPost
		}
		for _, p := range e.Aliases {
			a := alias{pattern: p, module: n, glob: strings.ContainsAny(p, "*?[")}
			db.aliases = append(db.aliases, a)
			if !a.glob {
				db.exact[p] = append(db.exact[p], n)
			}
		}
	}
	// modules.dep lists a module's dependencies transitively: do the same
	// so that Subset writes an index like depmod's.
	for _, e := range es {
		n := Normalize(e.Name)
		db.deps[n] = db.closure(n)
	}
	return nil
}

// dropAliases forgets the aliases of module n (it is being replaced).
func (db *DB) dropAliases(n string) {
	kept := db.aliases[:0]
	for _, a := range db.aliases {
		if a.module != n {
			kept = append(kept, a)
		}
	}
	db.aliases = kept
	for k, ms := range db.exact {
		db.exact[k] = slices.DeleteFunc(ms, func(m string) bool { return m == n })
	}
}

// closure returns every module n needs, transitively, dependencies first.
func (db *DB) closure(n string) []string {
	var out []string
	seen := map[string]bool{n: true}
	var visit func(m string)
	visit = func(m string) {
		for _, d := range db.deps[m] {
			if !seen[d] {
				seen[d] = true
				visit(d)
				out = append(out, d)
			}
		}
	}
	visit(n)
	return out
}

// Vermagic returns the vermagic string of the kernel db indexes, read from
// its modules (they all carry the same one): a module built elsewhere
// loads only if its vermagic is the same.
func (db *DB) Vermagic() (string, error) {
	if db.Dir == "" {
		return "", fmt.Errorf("module index has no directory to read modules from")
	}
	var errs []error
	for i, m := range db.Modules() {
		if i >= 8 {
			break
		}
		b, err := os.ReadFile(filepath.Join(db.Dir, db.path[m]))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info, err := ReadInfo(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		return info.Vermagic, nil
	}
	return "", fmt.Errorf("cannot tell the vermagic of the kernel in %s: %w", db.Dir, errors.Join(errs...))
}
