package initramfs

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minint/minint/driverpack"
	"github.com/minint/minint/kmod"
)

// AppendDriverPacks adds driver packs to a built PE's initramfs, as
// Config.DriverPacks does at build time but without rebuilding it (see
// Append): the pack's modules and firmware, the module index the PE loads
// them by (modules.dep, modules.alias, … for every module, the PE's own
// and the pack's) and the pack's load: list. The packs are checked against
// the modules in the initramfs exactly as at build time (vermagic,
// dependencies, signatures with requireSigned), before anything is
// written. It returns the packs' names.
func AppendDriverPacks(initrd string, packs []string, requireSigned bool) ([]string, error) {
	ents, err := ReadArchive(initrd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", initrd, err)
	}
	kver := ""
	for _, e := range ents {
		if rest, ok := strings.CutPrefix(e.Name, "lib/modules/"); ok && path.Base(rest) == kmod.DepFile && path.Dir(rest) != "." && !strings.Contains(path.Dir(rest), "/") {
			kver = path.Dir(rest)
		}
	}
	if kver == "" {
		return nil, fmt.Errorf("%s: no kernel module index (lib/modules/*/%s) in the PE", initrd, kmod.DepFile)
	}
	// The PE's module tree, on disk for kmod and driverpack.
	tmp, err := os.MkdirTemp("", "minint-driverpack-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	mdir := filepath.Join(tmp, kver)
	prefix := "lib/modules/" + kver + "/"
	var load []string
	for _, e := range ents {
		if e.Name == ModulesLoadPath {
			load = strings.Fields(string(e.Data))
		}
		rel, ok := strings.CutPrefix(e.Name, prefix)
		if !ok || e.Mode&0o170000 != 0o100000 {
			continue
		}
		dst := filepath.Join(mdir, filepath.FromSlash(path.Clean(rel)))
		if !strings.HasPrefix(dst, mdir+string(filepath.Separator)) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, e.Data, 0o644); err != nil {
			return nil, err
		}
	}
	db, err := kmod.Open(mdir)
	if err != nil {
		return nil, err
	}
	var files []File
	var names []string
	for _, dir := range packs {
		p, err := driverpack.Open(dir)
		if err != nil {
			return nil, err
		}
		add, err := p.Install(db, driverpack.Options{RequireSigned: requireSigned})
		if err != nil {
			return nil, err
		}
		for _, f := range add {
			files = append(files, File{Src: f.Src, Dest: f.Dest, Mode: 0o644})
		}
		names = append(names, p.Name)
		load = append(load, p.Load...)
	}
	dep, alias, soft, builtin := db.Subset(db.Modules())
	for _, ix := range []struct{ name, data string }{
		{kmod.DepFile, dep}, {kmod.AliasFile, alias}, {kmod.SoftdepFile, soft}, {kmod.BuiltinFile, builtin},
	} {
		files = append(files, File{Dest: prefix + ix.name, Data: []byte(ix.data), Mode: 0o644})
	}
	if len(load) > 0 {
		files = append(files, File{Dest: ModulesLoadPath, Data: []byte(strings.Join(load, "\n") + "\n"), Mode: 0o644})
	}
	return names, Append(initrd, files)
}
