package initramfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minint/minint/kmod"
)

// DefaultFirmwareDir is where the build host keeps firmware (Debian's
// firmware-* packages install there).
const DefaultFirmwareDir = "/lib/firmware"

// ErrMissingFirmware is returned (wrapped, listing the files) when
// Config.RequireFirmware is set and a module's firmware is not on the host.
var ErrMissingFirmware = errors.New("firmware missing on the build host")

// MissingFirmware is a firmware file a module may request that the build
// host does not have. Many drivers list one file per chip revision, so a
// missing file only matters on machines with that chip.
type MissingFirmware struct {
	File   string `json:"file"`   // relative to /lib/firmware
	Module string `json:"module"` // the module that asks for it
}

// firmwareFor returns the firmware files the modules' .modinfo name
// (modinfo -F firmware), read from fwDir, at lib/firmware/… in the image,
// and the names fwDir lacks. The kernel also looks for NAME.xz (Debian's
// kernel has FW_LOADER_COMPRESS_XZ), so a compressed copy counts. Names with
// wildcards (a few drivers list patterns) take every match.
func firmwareFor(infos map[string]*kmod.Info, mods []string, fwDir string) ([]File, []MissingFirmware, error) {
	var files []File
	var missing []MissingFirmware
	seen := map[string]bool{}
	for _, m := range mods {
		info := infos[m]
		if info == nil {
			continue
		}
		for _, name := range info.Firmware {
			name = path.Clean(strings.TrimPrefix(name, "/"))
			if strings.HasPrefix(name, "../") || name == ".." {
				continue // a module cannot ask for files outside /lib/firmware
			}
			var srcs []string
			if strings.ContainsAny(name, "*?[") {
				srcs, _ = filepath.Glob(filepath.Join(fwDir, name))
			} else {
				for _, n := range []string{name, name + ".xz"} {
					if st, err := os.Stat(filepath.Join(fwDir, n)); err == nil && st.Mode().IsRegular() {
						srcs = append(srcs, filepath.Join(fwDir, n))
						break
					}
				}
			}
			if len(srcs) == 0 {
				missing = append(missing, MissingFirmware{File: name, Module: m})
				continue
			}
			for _, src := range srcs {
				rel, _ := filepath.Rel(fwDir, src)
				dest := "lib/firmware/" + filepath.ToSlash(rel)
				if seen[dest] {
					continue
				}
				seen[dest] = true
				b, err := os.ReadFile(src)
				if err != nil {
					return nil, nil, fmt.Errorf("firmware %s for %s: %w", name, m, err)
				}
				files = append(files, File{Dest: dest, Data: b, Mode: 0o644})
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Dest < files[j].Dest })
	sort.Slice(missing, func(i, j int) bool {
		if missing[i].Module != missing[j].Module {
			return missing[i].Module < missing[j].Module
		}
		return missing[i].File < missing[j].File
	})
	return files, missing, nil
}

// missingError describes missing firmware for Config.RequireFirmware.
func missingError(missing []MissingFirmware, fwDir string) error {
	var b strings.Builder
	for i, m := range missing {
		if i == 20 {
			fmt.Fprintf(&b, " … and %d more", len(missing)-i)
			break
		}
		fmt.Fprintf(&b, " %s (%s)", m.File, m.Module)
	}
	return fmt.Errorf("%w: %d files not in %s:%s; install the distribution's firmware packages (scripts/setup-host.sh), add them with a driver pack, or build without --require-firmware",
		ErrMissingFirmware, len(missing), fwDir, b.String())
}
