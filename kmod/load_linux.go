package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Loader loads modules from a DB into the running kernel, dependencies
// first, remembering what is loaded so repeated requests are cheap.
type Loader struct {
	DB  *DB
	Log func(format string, a ...any) // may be nil

	// Safe for concurrent use: the PE coldplugs, loads file-system
	// modules in the background and rescans for late devices at once.
	mu     sync.Mutex
	loaded map[string]bool
	failed map[string]error
	took   map[string]time.Duration
}

// NewLoader returns a Loader that knows the modules already in /proc/modules.
func NewLoader(db *DB) *Loader {
	l := &Loader{DB: db, loaded: map[string]bool{}, failed: map[string]error{}, took: map[string]time.Duration{}}
	if f, err := os.Open("/proc/modules"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if name, _, ok := strings.Cut(s.Text(), " "); ok {
				l.loaded[name] = true
			}
		}
		f.Close()
	}
	return l
}

func (l *Loader) logf(format string, a ...any) {
	if l.Log != nil {
		l.Log(format, a...)
	}
}

// Load loads the named modules (names or aliases) with their dependencies.
// Built-in modules succeed without doing anything. Softdep modules that fail
// to load (crc32c_intel on a CPU without SSE4.2) are logged, not returned.
func (l *Loader) Load(names ...string) error {
	items, err := l.DB.resolve(names)
	if err != nil {
		return err
	}
	var errs []error
	for _, it := range items {
		if err := l.insmod(it.name); err != nil {
			if it.soft {
				l.logf("kmod: optional %s: %v", it.name, err)
				continue
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Loader) insmod(mod string) error {
	l.mu.Lock()
	if l.loaded[mod] {
		l.mu.Unlock()
		return nil
	}
	if err, ok := l.failed[mod]; ok {
		l.mu.Unlock()
		return err
	}
	for _, d := range l.DB.deps[mod] {
		if !l.loaded[d] {
			err := fmt.Errorf("load %s: dependency %s is not loaded", mod, d)
			l.failed[mod] = err
			l.mu.Unlock()
			return err
		}
	}
	l.mu.Unlock()
	// Two goroutines may load the same module (a dependency of both): the
	// kernel lets the second wait for the first and answers EEXIST.
	start := time.Now()
	err := l.finit(mod)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed[mod] = err
		return err
	}
	l.loaded[mod] = true
	l.took[mod] = time.Since(start)
	l.logf("kmod: loaded %s in %s", mod, l.took[mod].Round(time.Millisecond))
	return nil
}

// finitModule is unix.FinitModule but in tests.
var finitModule = unix.FinitModule

func (l *Loader) finit(mod string) error {
	p := filepath.Join(l.DB.Dir, l.DB.path[mod])
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("load %s: %w", mod, err)
	}
	defer f.Close()
	err = finitModule(int(f.Fd()), "", 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load %s (%s): %w%s", mod, p, err, signatureHint(err))
	}
	return nil
}

func (l *Loader) isLoaded(mod string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loaded[mod]
}

// Took is how long loading each module loaded so far took, in seconds
// (its driver's probe of the devices included).
func (l *Loader) Took() map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]float64, len(l.took))
	for k, v := range l.took {
		m[k] = v.Seconds()
	}
	return m
}

// modaliases returns the modalias strings of the devices under sysDevices
// (normally /sys/devices), without duplicates.
func modaliases(sysDevices string) []string {
	seen := map[string]bool{}
	var out []string
	filepath.WalkDir(sysDevices, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // devices come and go while we walk
		}
		if d.IsDir() || d.Name() != "modalias" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		a := strings.TrimSpace(string(b))
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
		return nil
	})
	return out
}

// Coldplug loads the modules matching the modaliases of the devices under
// sysDevices, and repeats while loading reveals new devices (virtio_pci
// creates virtio devices, a SCSI host creates disks …), for at most
// rounds rounds. It returns the modules it loaded; errors of single
// modules are logged and joined into err, but do not stop the rest.
func (l *Loader) Coldplug(sysDevices string, rounds int) (loaded []string, err error) {
	var errs []error
	tried := map[string]bool{}
	for r := 0; r < rounds; r++ {
		var want []string
		for _, a := range modaliases(sysDevices) {
			for _, m := range l.DB.Match(a) {
				if !tried[m] && !l.isLoaded(m) {
					tried[m] = true
					want = append(want, m)
				}
			}
		}
		if len(want) == 0 {
			break
		}
		// In parallel: a module's init waits for its driver to probe
		// the devices (libata resets ports and identifies drives, a
		// SCSI host scans its bus), and one driver's waiting need not
		// hold up the next. udev's workers load a booting system's
		// drivers in parallel too, so which of two matching drivers
		// binds a device first was never fixed by the order here.
		res := make([]error, len(want))
		var wg sync.WaitGroup
		for i, m := range want {
			wg.Go(func() { res[i] = l.Load(m) })
		}
		wg.Wait()
		for i, m := range want {
			if err := res[i]; err != nil {
				l.logf("kmod: %v", err)
				errs = append(errs, err)
				continue
			}
			loaded = append(loaded, m)
		}
		// New buses probe asynchronously; give their children a moment
		// to appear before the next scan.
		time.Sleep(50 * time.Millisecond)
	}
	return loaded, errors.Join(errs...)
}

// signatureHint explains the errors finit_module gives for a module whose
// signature the kernel does not accept: EPERM under Secure Boot's lockdown
// (unsigned), EKEYREJECTED or ENOKEY (signed by an unknown key), EBADMSG
// (a broken signature).
func signatureHint(err error) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EKEYREJECTED), errors.Is(err, unix.ENOKEY), errors.Is(err, unix.EBADMSG):
		return " (the kernel accepts only modules signed with a key it trusts, as under Secure Boot's lockdown: sign the module with a key built into the kernel or enrolled in MOK or db)"
	}
	return ""
}
