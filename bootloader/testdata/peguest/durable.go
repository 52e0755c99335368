package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/durable"
	"golang.org/x/sys/unix"
)

// NewContent is what the last durable write commits (bootloader's
// TestDeployInGuest compares its SHA-256); it spans many clusters.
var newContent = bytes.Repeat([]byte("minint durable: the new content\n"), 10000)

// durableCheck exercises internal/durable on vfat and ext4 (scratch disk
// vdb), as the kernel really does them, and ends with files that were
// committed and files that were only written, for the power cut main does
// next.
func durableCheck() error {
	ctx := context.Background()
	d, err := waitDisk(ctx, "vdb")
	if err != nil {
		return err
	}
	res, _, err := partition(ctx, d.Path, "partitions:\n  - {name: fat, size: 40M, type: esp, fs: vfat}\n  - {name: ext, size: rest, type: linux, fs: ext4}\n")
	if err != nil {
		return err
	}
	var dirs []string
	for i, node := range res.Nodes {
		m, err := diskops.Mount(node, fmt.Sprintf("/mnt/scratch%d", i), diskops.MountOptions{})
		if err != nil {
			return err
		}
		// Left mounted: the power cut comes next.
		dirs = append(dirs, m.Target)
		p := res.Partitions[i]
		if err := durableOn(m.Target, m.FSType); err != nil {
			return fmt.Errorf("durable on %s: %w", m.FSType, err)
		}
		fmt.Printf("PEGUEST: DURABLE %s start=%d size=%d\n", m.FSType, p.Start, p.Size)
	}
	// Written after the last commit and never synced: lost in the cut.
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "unsynced.txt"), newContent, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("PEGUEST: DURABLE COMMITTED sha256=%x\n", sha256.Sum256(newContent))
	return nil
}

func durableOn(dir, fsType string) error {
	name := filepath.Join(dir, "durable.txt")
	// vfat ignores a mode it cannot keep, but refuses setuid with EPERM:
	// durable must write anyway.
	if err := durable.WriteFile(name, []byte("old\n"), os.ModeSetuid|0o755); err != nil {
		return err
	}
	if err := os.Chmod(name, os.ModeSetuid|0o755); fsType == "vfat" && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("chmod u+s on vfat: %v, want EPERM", err)
	}
	// A write abandoned half-way leaves the old content and no temporary.
	f, err := durable.Create(name, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(newContent[:len(newContent)/2]); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != "old\n" {
		return fmt.Errorf("after an abandoned write %s holds %.20q, %v", name, b, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".durable") {
			return fmt.Errorf("temporary file %s left", e.Name())
		}
	}
	if err := durable.WriteFile(name, newContent, 0o640); err != nil {
		return err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if want := os.FileMode(0o640); fsType == "ext4" && fi.Mode() != want {
		return fmt.Errorf("%s has mode %v, want %v", name, fi.Mode(), want)
	}
	return nil
}
