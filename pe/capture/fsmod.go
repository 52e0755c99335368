package capture

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/minint/minint/kmod"
)

// The PE loads only the file systems of boot media and deployment targets
// at start (cmd/peinit); xfs and btrfs, with their checksum and RAID
// libraries, are megabytes of kernel memory that only a capture of such a
// reference machine needs. The kernel cannot load them itself when a mount
// asks: the PE has no modprobe for request_module. So they are loaded
// here, on first use, from the PE's own module tree.

// Where the kernel lists its file systems and where its modules are; tests
// point them elsewhere.
var (
	procFilesystems = "/proc/filesystems"
	modulesDir      = func() string {
		var u unix.Utsname
		if unix.Uname(&u) != nil {
			return ""
		}
		return filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	}
	loadModule = func(db *kmod.DB, name string) error { return kmod.NewLoader(db).Load(name) }
)

var fsLoadMu sync.Mutex

// errNoFSModule: the kernel lacks the file system and no module for it
// is at hand.
var errNoFSModule = errors.New("the kernel does not know this file system and no module for it was found")

// LoadFilesystem makes the kernel know fstype, loading its module (and
// what that depends on) when /proc/filesystems does not list it yet.
func LoadFilesystem(fstype string) error {
	fsLoadMu.Lock()
	defer fsLoadMu.Unlock()
	if knownFS(fstype) {
		return nil
	}
	dir := modulesDir()
	db, err := kmod.Open(dir)
	if err != nil {
		return fmt.Errorf("file system %s: %w (module index %s: %v)", fstype, errNoFSModule, dir, err)
	}
	// Modules declare the file systems they provide as "fs-<type>"
	// aliases (ext4 provides fs-ext2 and fs-ext3 too).
	name := "fs-" + fstype
	if _, _, err := db.Lookup(name); err != nil {
		if _, _, err := db.Lookup(fstype); err != nil {
			return fmt.Errorf("file system %s: %w (in %s)", fstype, errNoFSModule, dir)
		}
		name = fstype
	}
	if err := loadModule(db, name); err != nil {
		return fmt.Errorf("file system %s: %w", fstype, err)
	}
	if !knownFS(fstype) {
		return fmt.Errorf("file system %s: module %s loaded but the kernel still does not list it", fstype, name)
	}
	return nil
}

// knownFS reports whether /proc/filesystems lists fstype.
func knownFS(fstype string) bool {
	f, err := os.Open(procFilesystems)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == fstype {
			return true
		}
	}
	return false
}
