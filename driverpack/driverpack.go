// Package driverpack adds drivers that the distribution's kernel package
// lacks — a vendor's out-of-tree NIC or RAID driver and its firmware — to a
// PE, at build time (`minint build --driver-pack DIR`).
//
// A driver pack is a directory:
//
//	DIR/pack.yaml          optional, see below
//	DIR/modules/**/*.ko    kernel modules built for the PE's kernel, uncompressed
//	DIR/firmware/**        firmware, installed under /lib/firmware with the same
//	                       relative paths (firmware/acme/nic.bin -> /lib/firmware/acme/nic.bin)
//
// pack.yaml says:
//
//	name: acme-nic         # default: the directory's name
//	load: [acme_sas]       # modules to load on every boot, device or not
//
// Modules are indexed as depmod would index them, from what each .ko says
// about itself (its .modinfo): depends= gives the dependencies, which must
// be in the pack or in the kernel; alias= gives the device modaliases by
// which the PE loads it when the device is present; softdep= is honoured
// too. A module with the name of one of the kernel's own modules replaces
// it (a vendor's newer build of ixgbe, say), as depmod prefers extra/ over
// kernel/.
//
// A pack is refused, before anything is written, when a module was built
// for another kernel (its vermagic differs from the kernel's modules'), when
// a dependency is missing, when it holds something that is not a module,
// or, with Options.RequireSigned, when a module carries no signature (a
// kernel under Secure Boot lockdown loads only modules signed by a key it
// trusts; whether the key is trusted is for the kernel to say).
//
// Install only reads the pack and returns what to write, so the same code
// serves the initramfs builder and anything else that adds drivers to a PE.
package driverpack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/minint/minint/internal/strictyaml"
	"github.com/minint/minint/kmod"
)

// Errors Open and Install wrap with the details.
var (
	// ErrFormat: the directory is not a driver pack (no modules or
	// firmware, a bad pack.yaml, a file that is not a module).
	ErrFormat = errors.New("not a valid driver pack")
	// ErrForeignKernel: a module was built for another kernel.
	ErrForeignKernel = errors.New("driver built for another kernel")
	// ErrUnsigned: a module has no signature and signed ones were asked for.
	ErrUnsigned = errors.New("unsigned kernel module")
)

// Pack is a driver pack read from its directory.
type Pack struct {
	Dir  string
	Name string
	// Load are modules loaded on every boot (pack.yaml's load:).
	Load     []string
	Modules  []Module
	Firmware []File // Dest relative to the image root (lib/firmware/…)
}

// Module is one .ko of a pack.
type Module struct {
	Src  string     // path on the host
	Rel  string     // path below DIR/modules
	Info *kmod.Info // its .modinfo
}

// File is a file to put into the image: Src on the host at Dest, a path
// relative to the image's root.
type File struct {
	Src  string
	Dest string
	Size int64
}

// Options for Install.
type Options struct {
	// RequireSigned refuses modules without a signature.
	RequireSigned bool
}

type config struct {
	Name string   `yaml:"name"`
	Load []string `yaml:"load"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Open reads the pack in dir: its pack.yaml, and the .modinfo of each
// module. Every problem is an error naming the file.
func Open(dir string) (*Pack, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrFormat, dir)
	}
	p := &Pack{Dir: abs, Name: filepath.Base(abs)}
	if b, err := os.ReadFile(filepath.Join(abs, "pack.yaml")); err == nil {
		var c config
		if err := strictyaml.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, filepath.Join(dir, "pack.yaml"), err)
		}
		if c.Name != "" {
			p.Name = c.Name
		}
		for _, m := range c.Load {
			p.Load = append(p.Load, kmod.Normalize(m))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if !nameRE.MatchString(p.Name) {
		return nil, fmt.Errorf("%w: %s: pack name %q (want letters, digits, '.', '_', '-'; set name: in pack.yaml)", ErrFormat, dir, p.Name)
	}
	err = p.walk("modules", func(src, rel string) error {
		if !strings.HasSuffix(rel, ".ko") {
			if strings.HasSuffix(rel, ".ko.xz") || strings.HasSuffix(rel, ".ko.zst") || strings.HasSuffix(rel, ".ko.gz") {
				return fmt.Errorf("%w: %s is compressed: the PE loads uncompressed modules (unpack it; keep its signature)", ErrFormat, src)
			}
			return fmt.Errorf("%w: %s: only kernel modules (*.ko) belong under modules/", ErrFormat, src)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		info, err := kmod.ReadInfo(b)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFormat, src, err)
		}
		p.Modules = append(p.Modules, Module{Src: src, Rel: rel, Info: info})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = p.walk("firmware", func(src, rel string) error {
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		p.Firmware = append(p.Firmware, File{Src: src, Dest: "lib/firmware/" + rel, Size: st.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(p.Modules) == 0 && len(p.Firmware) == 0 {
		return nil, fmt.Errorf("%w: %s has neither modules/*.ko nor firmware/ files", ErrFormat, dir)
	}
	names := map[string]string{}
	for _, m := range p.Modules {
		n := name(m)
		if other, dup := names[n]; dup {
			return nil, fmt.Errorf("%w: %s and %s are both module %s", ErrFormat, other, m.Src, n)
		}
		names[n] = m.Src
	}
	for _, l := range p.Load {
		if _, ok := names[l]; !ok {
			return nil, fmt.Errorf("%w: %s: load: names %s, which is not a module of the pack", ErrFormat, filepath.Join(dir, "pack.yaml"), l)
		}
	}
	return p, nil
}

// walk calls f for each regular file below DIR/sub, in lexical order, with
// its path relative to DIR/sub. Symbolic links are followed only when they
// stay inside the pack.
func (p *Pack) walk(sub string, f func(src, rel string) error) error {
	root := filepath.Join(p.Dir, sub)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	realDir, err := filepath.EvalSymlinks(p.Dir)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(src string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, src)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(src)
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrFormat, src, err)
			}
			if r, err := filepath.Rel(realDir, target); err != nil || r == ".." || strings.HasPrefix(r, "../") {
				return fmt.Errorf("%w: %s links outside the pack (%s)", ErrFormat, src, target)
			}
			if st, err := os.Stat(target); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("%w: %s: links to something that is not a file", ErrFormat, src)
			}
		} else if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrFormat, src)
		}
		return f(src, filepath.ToSlash(rel))
	})
}

func name(m Module) string {
	if m.Info.Name != "" {
		return m.Info.Name
	}
	return kmod.NameFromPath(m.Rel)
}

// Install checks the pack against the kernel db indexes, adds its modules
// to db (at extra/NAME/… below db.Dir, as depmod would find them) and
// returns the files to put into the image: the modules under
// lib/modules/<release>/extra/NAME/ and the firmware under lib/firmware/.
// Nothing is added to db when it fails.
func (p *Pack) Install(db *kmod.DB, o Options) ([]File, error) {
	want, err := db.Vermagic()
	if err != nil {
		return nil, err
	}
	var entries []kmod.Entry
	var files []File
	release := filepath.Base(db.Dir)
	for _, m := range p.Modules {
		if m.Info.Vermagic != want {
			return nil, fmt.Errorf("%w: driver pack %s: %s was built for kernel %s (vermagic %q), but the PE's kernel is %s (vermagic %q): rebuild it against that kernel's headers (linux-headers-%s)",
				ErrForeignKernel, p.Name, m.Src, kmod.KernelRelease(m.Info.Vermagic), m.Info.Vermagic, kmod.KernelRelease(want), want, kmod.KernelRelease(want))
		}
		if o.RequireSigned && !m.Info.Signed {
			return nil, fmt.Errorf("%w: driver pack %s: %s has no signature, and signed modules were asked for (a kernel under Secure Boot lockdown refuses it): sign it with a key the machines' kernel trusts (scripts/sign-file, a MOK)",
				ErrUnsigned, p.Name, m.Src)
		}
		rel := path.Join("extra", p.Name, m.Rel)
		e := kmod.EntryFor(rel, m.Info)
		e.Replace = true
		entries = append(entries, e)
		st, err := os.Stat(m.Src)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Src: m.Src, Dest: path.Join("lib/modules", release, rel), Size: st.Size()})
	}
	if err := db.Add(entries...); err != nil {
		return nil, fmt.Errorf("driver pack %s: %w", p.Name, err)
	}
	files = append(files, p.Firmware...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Dest < files[j].Dest })
	return files, nil
}

// ModuleNames returns the names of the pack's modules, sorted.
func (p *Pack) ModuleNames() []string {
	var ns []string
	for _, m := range p.Modules {
		ns = append(ns, name(m))
	}
	sort.Strings(ns)
	return ns
}
