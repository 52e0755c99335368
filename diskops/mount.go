package diskops

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Mounted is a filesystem Mount attached; Close undoes everything Mount
// did (unmount, detach the loop device, remove the directory it created).
type Mounted struct {
	Source, Target, FSType string
	createdDir             bool
	loop                   *os.File
}

// MountOptions tunes Mount.
type MountOptions struct {
	// FSType is the filesystem type; empty probes the source.
	FSType   string
	ReadOnly bool
	// Data is the filesystem-specific option string ("" for none).
	Data string
	// Offset and Size select a byte range of Source (an image file or
	// whole disk), attached through a loop device that detaches itself on
	// unmount. Size 0 means to the end.
	Offset, Size int64
}

// Mount mounts source on target (created if missing). On any failure it
// leaves nothing behind: no mount, no loop device, no new directory.
func Mount(source, target string, o MountOptions) (m *Mounted, err error) {
	m = &Mounted{Source: source, Target: target, FSType: o.FSType}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	src := source
	fi, err := os.Stat(source)
	if err != nil {
		return m, err
	}
	if fi.Mode().IsRegular() || o.Offset != 0 || o.Size != 0 {
		if m.loop, err = attachLoop(source, o.Offset, o.Size, o.ReadOnly); err != nil {
			return m, fmt.Errorf("attaching %s to a loop device: %w", source, err)
		}
		src = m.loop.Name()
	}
	if m.FSType == "" {
		f, err := os.Open(src)
		if err != nil {
			return m, err
		}
		fs := ProbeFilesystem(f, 0, 0)
		f.Close()
		if fs == nil {
			return m, fmt.Errorf("%s: no filesystem found to mount", source)
		}
		m.FSType = fs.Type
	}
	if _, err := os.Stat(target); os.IsNotExist(err) {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return m, err
		}
		m.createdDir = true
	}
	var flags uintptr
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(src, target, m.FSType, flags, o.Data); err != nil {
		return m, fmt.Errorf("mounting %s (%s) on %s: %w", source, m.FSType, target, err)
	}
	m.Source = src
	return m, nil
}

// Close unmounts (retrying while the kernel reports busy), then detaches
// the loop device and removes the mount point if Mount created them.
func (m *Mounted) Close() error {
	var errs []error
	if m.Source != "" {
		if err := Unmount(m.Target); err != nil {
			errs = append(errs, err)
		}
		m.Source = ""
	}
	if m.loop != nil {
		// AUTOCLEAR detaches once unmounted; clearing explicitly covers
		// the paths where the mount never happened.
		unix.IoctlSetInt(int(m.loop.Fd()), unix.LOOP_CLR_FD, 0)
		m.loop.Close()
		m.loop = nil
	}
	if m.createdDir && len(errs) == 0 {
		os.Remove(m.Target)
		m.createdDir = false
	}
	return errors.Join(errs...)
}

// Unmount unmounts target, retrying for a few seconds on EBUSY (a process
// that is just exiting).
func Unmount(target string) error {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Unmount(target, 0)
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			return nil // not (or no longer) mounted
		}
		if err != unix.EBUSY {
			break
		}
		time.Sleep(150 * time.Millisecond)
	}
	return fmt.Errorf("unmounting %s: %w", target, err)
}

// attachLoop binds the byte range of path to a free loop device.
func attachLoop(path string, off, size int64, ro bool) (*os.File, error) {
	flag := os.O_RDWR
	if ro {
		flag = os.O_RDONLY
	}
	backing, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	for try := 0; try < 10; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		name := fmt.Sprintf("/dev/loop%d", n)
		lf, err := os.OpenFile(name, flag, 0)
		if os.IsNotExist(err) {
			// No udev/devtmpfs node yet: make it.
			unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n))))
			lf, err = os.OpenFile(name, flag, 0)
		}
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Offset = uint64(off)
		cfg.Info.Sizelimit = uint64(size)
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		if ro {
			cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
		}
		err = unix.IoctlLoopConfigure(int(lf.Fd()), &cfg)
		if err == nil {
			return lf, nil
		}
		lf.Close()
		if err != unix.EBUSY { // another process took it first: retry
			return nil, fmt.Errorf("LOOP_CONFIGURE %s: %w", name, err)
		}
	}
	return nil, fmt.Errorf("no free loop device")
}
