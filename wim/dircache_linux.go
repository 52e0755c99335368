//go:build linux

package wim

import (
	"container/list"
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Apply must work within whatever descriptor limit the process has: the
// PE's init runs with the kernel's default (1024, raised by Go to the hard
// limit of 4096), and other code in the process (a download feeding the
// apply) holds descriptors too. Three things keep it within the limit:
//
//   - the cache of directory descriptors is sized from RLIMIT_NOFILE and the
//     descriptors already open, and evicts the least recently used;
//   - a blob written to many files opens them in batches (maxOpenTargets);
//   - an open that fails with EMFILE/ENFILE closes idle cached descriptors
//     (and shrinks the cache for good) or, with none left, waits for other
//     workers to release theirs, then retries.
//
// Cached descriptors are pinned while in use, so eviction never closes a
// descriptor another goroutine is resolving a name against (the number
// could be reused for another directory).

// maxDirFDs bounds the directory descriptor cache even when the limit is
// high: beyond it, parents are resolved again with openat2.
const maxDirFDs = 16384

// maxOpenTargets is the number of files of one blob written at once.
const maxOpenTargets = 16

// dirCache holds O_PATH descriptors of the target's directories.
type dirCache struct {
	mu    sync.Mutex
	limit int
	m     map[*applyEntry]*cachedDir
	idle  list.List // of *cachedDir with refs == 0, least recently used first
}

type cachedDir struct {
	e    *applyEntry
	fd   int
	refs int
	elem *list.Element // in idle when refs == 0
}

// fdBudget returns how many directory descriptors to cache and how many
// files of one blob to open at once, for threads workers, from the
// process's descriptor limit and the descriptors already open.
func fdBudget(threads int) (dirs, targets int) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return maxDirFDs, maxOpenTargets
	}
	free := int(rl.Cur) - openFDs() - 32 // the runtime, the WIM, the caller
	// Each worker holds a batch of targets, a parent and a spare.
	targets = min(maxOpenTargets, max(1, free/(4*threads)))
	free -= threads * (targets + 2)
	// Half of what is left, so that the rest of the process keeps room.
	return min(maxDirFDs, max(0, free/2)), targets
}

// growFDTable makes the process's descriptor table hold n more descriptors
// above fd at once. The kernel doubles the table as descriptors are opened,
// and in a multi-threaded process each doubling waits for an RCU grace
// period: caching 1,300 directories cost five waits, 24 ms in which a
// one-core apply sat idle (2.7% of its time). One larger table costs one
// wait. F_DUPFD takes the lowest free number at or above its argument, so
// no open descriptor is touched; a failure (above the limit) only leaves
// the doubling to happen as before.
func growFDTable(fd, n int) {
	if n <= 64 {
		return
	}
	if top, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, fd+n); err == nil {
		unix.Close(top)
	}
}

// openFDs counts the process's open descriptors (64 if /proc is missing).
func openFDs() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 64
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 64
	}
	return len(names)
}

func newDirCache(limit int) *dirCache {
	return &dirCache{limit: limit, m: map[*applyEntry]*cachedDir{}}
}

// get returns e's descriptor pinned, or -1 if it is not cached.
func (c *dirCache) get(e *applyEntry) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[e]
	if d == nil {
		return -1
	}
	if d.refs == 0 {
		c.idle.Remove(d.elem)
		d.elem = nil
	}
	d.refs++
	return d.fd
}

// put unpins e's descriptor.
func (c *dirCache) put(e *applyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[e]
	if d.refs--; d.refs == 0 {
		d.elem = c.idle.PushBack(d)
	}
}

// add caches fd for e, pinned, evicting the least recently used idle
// descriptor if the cache is full. It reports false (and the caller keeps
// fd) when nothing can make room.
func (c *dirCache) add(e *applyEntry, fd int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[e] != nil {
		return false
	}
	if len(c.m) >= c.limit && !c.evictLocked() {
		return false
	}
	c.m[e] = &cachedDir{e: e, fd: fd, refs: 1}
	return true
}

func (c *dirCache) evictLocked() bool {
	front := c.idle.Front()
	if front == nil {
		return false
	}
	d := c.idle.Remove(front).(*cachedDir)
	delete(c.m, d.e)
	unix.Close(d.fd)
	return true
}

// shrink closes half of the idle descriptors (at least one) and lowers the
// limit to what remains, after the process ran out of descriptors. It
// reports whether it closed any.
func (c *dirCache) shrink() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := (c.idle.Len() + 1) / 2
	for i := 0; i < n; i++ {
		c.evictLocked()
	}
	c.limit = len(c.m)
	return n > 0
}

// close closes every cached descriptor (none may be pinned).
func (c *dirCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.m {
		unix.Close(d.fd)
	}
	c.m = nil
	c.idle.Init()
}

// outOfFDs reports whether err means the process or the system has no
// descriptor left.
func outOfFDs(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// retryFDs runs open, which makes a descriptor, again after freeing cached
// descriptors while it fails for lack of them; with none idle it waits for
// other workers to close theirs, for up to fdWait.
func (a *applier) retryFDs(open func() (int, error)) (int, error) {
	var deadline time.Time
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		fd, err := open()
		if !outOfFDs(err) {
			return fd, err
		}
		if a.dirs.shrink() {
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(fdWait)
		} else if time.Now().After(deadline) {
			return fd, err
		}
		time.Sleep(wait)
	}
}

// fdWait is how long an open waits for descriptors to be released before
// it fails with EMFILE.
const fdWait = 5 * time.Second
