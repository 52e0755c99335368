package boot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// MediaFile is where a minint boot medium identifies itself, relative to
// its root: a JSON object with at least {"id": "<ID>"}.
const MediaFile = "minint/media.json"

// DefaultMountPoint is where the PE mounts the boot medium (read-only).
const DefaultMountPoint = "/run/minint/media"

// ErrNoMedium is returned when no boot medium with the wanted ID appears.
var ErrNoMedium = errors.New("boot medium not found")

// Medium is a found boot medium.
type Medium struct {
	ID         string         `json:"id"`
	Device     string         `json:"device"`      // e.g. /dev/sr0, /dev/sda1
	FSType     string         `json:"fstype"`      // iso9660 or vfat
	MountPoint string         `json:"mount_point"` // where it is mounted read-only
	Info       map[string]any `json:"info,omitempty"`
}

// detect returns the file system type of the block device image in r from
// its superblock: "iso9660", "vfat", or "" when neither.
func detect(r io.ReaderAt) string {
	b := make([]byte, 6)
	if _, err := r.ReadAt(b, 0x8001); err == nil && string(b[:5]) == "CD001" {
		return "iso9660"
	}
	bs := make([]byte, 512)
	if n, _ := r.ReadAt(bs, 0); n == 512 && bs[510] == 0x55 && bs[511] == 0xAA {
		// FAT12/16 name their type at 54, FAT32 at 82; an MBR has neither.
		if bytes.HasPrefix(bs[54:], []byte("FAT")) || bytes.HasPrefix(bs[82:], []byte("FAT32")) {
			return "vfat"
		}
	}
	return ""
}

// Finder finds the boot medium among the block devices in SysBlock
// (/sys/class/block) with device nodes in Dev (/dev). Mount and Unmount
// do the mounting (unix.Mount in the PE; fakes in tests).
type Finder struct {
	SysBlock   string
	Dev        string
	MountPoint string
	Mount      func(dev, dir, fstype string) error // read-only
	Unmount    func(dir string) error
	Log        func(format string, a ...any)
	// Rescan, when set, runs before each look while Find waits: drivers
	// for devices that appeared late (a USB stick's disk shows up about a
	// second after usb-storage binds it) get loaded.
	Rescan func()
}

func (f *Finder) logf(format string, a ...any) {
	if f.Log != nil {
		f.Log(format, a...)
	}
}

// Candidates lists the block devices that hold an iso9660 or vfat file
// system (whole disks, partitions and CD drives), sorted by name.
func (f *Finder) Candidates() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(f.SysBlock)
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") {
			continue
		}
		dev, err := os.Open(filepath.Join(f.Dev, name))
		if err != nil {
			continue // no medium in the drive, or the node is not there yet
		}
		if fs := detect(dev); fs != "" {
			out[filepath.Join(f.Dev, name)] = fs
		}
		dev.Close()
	}
	return out
}

// Find looks for a medium whose media.json has the ID id (any minint medium
// when id is ""), retrying until wait has passed since devices may still be
// appearing. It leaves the medium mounted at MountPoint.
func (f *Finder) Find(ctx context.Context, id string, wait time.Duration) (*Medium, error) {
	deadline := time.Now().Add(wait)
	seen := map[string]string{}
	for {
		if f.Rescan != nil {
			f.Rescan()
		}
		cands := f.Candidates()
		devs := make([]string, 0, len(cands))
		for d := range cands {
			devs = append(devs, d)
		}
		sort.Strings(devs)
		for _, d := range devs {
			m, why := f.try(d, cands[d], id)
			if m != nil {
				return m, nil
			}
			if seen[d] != why {
				f.logf("boot medium: %s (%s): %s", d, cands[d], why)
				seen[d] = why
			}
		}
		if time.Now().After(deadline) {
			want := "any minint medium"
			if id != "" {
				want = fmt.Sprintf("a medium with ID %q", id)
			}
			var looked []string
			for d, why := range seen {
				looked = append(looked, d+": "+why)
			}
			sort.Strings(looked)
			return nil, fmt.Errorf("%w: waited %s for %s (%s holding /%s); checked: %s", ErrNoMedium, wait, want, "an iso9660 or vfat file system", MediaFile, orNone(looked))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no iso9660/vfat block devices"
	}
	return strings.Join(s, "; ")
}

// try mounts dev and checks its media.json; it returns the medium, left
// mounted, or why not.
func (f *Finder) try(dev, fstype, id string) (*Medium, string) {
	if err := os.MkdirAll(f.MountPoint, 0o755); err != nil {
		return nil, err.Error()
	}
	if err := f.Mount(dev, f.MountPoint, fstype); err != nil {
		return nil, "mount: " + err.Error()
	}
	keep := false
	defer func() {
		if !keep {
			f.Unmount(f.MountPoint)
		}
	}()
	b, err := os.ReadFile(filepath.Join(f.MountPoint, MediaFile))
	if err != nil {
		return nil, "no /" + MediaFile
	}
	var info map[string]any
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Sprintf("/%s: %v", MediaFile, err)
	}
	got, _ := info["id"].(string)
	if got == "" {
		return nil, fmt.Sprintf("/%s has no \"id\"", MediaFile)
	}
	if id != "" && got != id {
		return nil, fmt.Sprintf("ID %q is not the wanted %q", got, id)
	}
	keep = true
	return &Medium{ID: got, Device: dev, FSType: fstype, MountPoint: f.MountPoint, Info: info}, ""
}
