package initramfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	setupPkg = "github.com/minint/minint/cmd/minint-setup"
	// SetupPath is where minint-setup lies in the PE (pe.DefaultSetupBinary
	// without the leading slash; initramfs must not import pe).
	SetupPath = "bin/minint-setup"
)

// setupBinary returns minint-setup as a stand-alone static program. It is
// not one of the busybox-style commands: the PE copies it onto the deployed
// disk, where it runs as init= on the first boot, so it must be a small
// program of its own that dispatches on nothing. Built with go build (its
// own cache makes a rebuild cheap) and kept in the cache keyed like the Go
// part, so the initramfs ID stays stable while the sources do.
func setupBinary(ctx context.Context, src, cache string, logf func(string, ...any)) (File, error) {
	key, err := goInputsKey(ctx, src, []string{setupPkg})
	if err != nil {
		return File{}, err
	}
	bin := filepath.Join(cache, "minint-setup-"+key)
	if _, err := os.Stat(bin); err != nil {
		tmp := bin + ".tmp"
		if _, err := goCmd(ctx, src, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, setupPkg); err != nil {
			os.Remove(tmp)
			return File{}, fmt.Errorf("building minint-setup: %w", err)
		}
		if err := os.Rename(tmp, bin); err != nil {
			return File{}, err
		}
		logf("initramfs: built minint-setup (%s)", strings.TrimSpace(key[:12]))
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return File{}, err
	}
	touch(bin)
	prune(cache, "minint-setup-*", 3)
	return File{Dest: SetupPath, Data: data, Mode: 0o755}, nil
}
