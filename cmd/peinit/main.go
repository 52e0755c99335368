// Command peinit is PID 1 of minint's preinstallation environment (PE).
//
// It mounts /proc, /sys, /dev (devtmpfs), /dev/pts and /run, loads the
// kernel modules the machine's devices need by matching their modaliases
// against modules.alias (coldplug, repeated while new devices appear) plus
// the file systems unconditionally, brings networking up with DHCP when a
// NIC is present, finds the boot medium, prints a banner and a hardware
// inventory, runs the task sequence if there is one, and then does what
// minint.done says. Everything it prints goes to every console in
// /proc/consoles (so both the screen and ttyS0), as readable lines and as
// JSON-lines events: single-line JSON objects at column 0 with an "event"
// key ({"event":"banner"}, {"event":"inventory","data":{…}},
// {"event":"pe","state":"done"} or {"event":"pe","state":"failed","error":…}).
//
// On any failure it prints the error, emits the failed event and starts the
// rescue shell (gosh) on the consoles; PID 1 never exits, so the kernel
// never panics. With minint.done=poweroff it powers off after reporting the
// failure instead, so that unattended runs and tests do not hang.
//
// Kernel command-line options:
//
//	minint.done=poweroff|reboot|shell  what to do when finished (default shell)
//	minint.media=ID        the boot medium: the iso9660 or vfat block device
//	                       (disk, partition or CD) whose /minint/media.json
//	                       has {"id": "ID"}; mounted read-only at
//	                       /run/minint/media. Without it the first minint
//	                       medium found, if any, is used.
//	minint.net=0           skip DHCP
//	minint.staged=UUID=ID  refresh in place: the root `minint stage` prepared
//	                       (found by file system UUID), its
//	                       /minint/pe/sequence.yaml and journal; a failure
//	                       before anything outside /minint changed reboots
//	                       into the installed system (with minint.done=reboot)
//	minint.sequence=URL    the task sequence to run: an http(s) URL (needs
//	                       a detached signature URL.sig by the PE's key) or
//	                       a path; default minint/sequence.yaml on the
//	                       boot medium. Without either nothing is deployed.
//	minint.var.NAME=VALUE  facts for the sequence's when: conditions
//	minint.shell=1         start a shell before doing anything else; the PE
//	                       continues when it exits
//	minint.debug=1         verbose: kernel messages and module loading on
//	                       the console
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/kmod"
	"github.com/minint/minint/pe"
	"github.com/minint/minint/pe/boot"
	"github.com/minint/minint/pe/hw"
	"golang.org/x/sys/unix"
)

// buildInfoPath is written by the initramfs builder.
const buildInfoPath = "/etc/minint/pe.json"

// env is what the PE knows once it is up; runSequence gets it.
type env struct {
	opts      boot.Options
	r         *progress.Reporter
	consoles  []*os.File
	medium    *boot.Medium // nil when none was found (and none was asked for)
	inventory *hw.Inventory
	leases    []hw.Lease
	debug     func(format string, a ...any)
}

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "peinit: must run as PID 1 (it is the /init of minint's PE)")
		os.Exit(2)
	}
	mountBase()
	consoles := openConsoles()
	out := multi(consoles)
	e := &env{r: progress.New(out, out), consoles: consoles, debug: func(string, ...any) {}}
	err := safeRun(e)
	finish(e, err)
}

// safeRun turns a panic into an error: PID 1 must not die.
func safeRun(e *env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
		}
	}()
	return run(context.Background(), e)
}

func run(ctx context.Context, e *env) error {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	opts, cmdErr := boot.ParseCmdline(string(cmdline))
	e.opts = opts
	if opts.Debug {
		e.debug = func(f string, a ...any) { e.r.Printf(f, a...) }
		// A step that hangs shows where: dump every goroutine once.
		t := time.AfterFunc(60*time.Second, func() {
			buf := make([]byte, 1<<20)
			e.r.Printf("minint.debug: still running after 60 s; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		})
		defer t.Stop()
	} else {
		// Keep kernel messages from breaking our JSON lines on the
		// console; dmesg still has them.
		os.WriteFile("/proc/sys/kernel/printk", []byte("1"), 0)
	}
	// A fresh VM has no entropy yet. A blocking getrandom makes the kernel
	// generate it (jitter entropy) within about a second, whereas libraries
	// that poll with GRND_NONBLOCK (DHCP transaction IDs) would spin
	// forever. Start it now so it overlaps module loading.
	rngReady := make(chan struct{})
	go func() {
		var b [1]byte
		unix.Getrandom(b[:], 0)
		close(rngReady)
	}()
	unix.Sethostname([]byte("minint-pe"))
	os.Setenv("PATH", "/bbin:/bin:/ubin:/usr/bin:/sbin")
	os.Setenv("HOME", "/root")

	var uts unix.Utsname
	unix.Uname(&uts)
	kver := unix.ByteSliceToString(uts.Release[:])
	id := peID()
	e.r.Printf("minint PE %s (kernel %s)", id, kver)
	e.r.Emit(progress.Event{Kind: "banner", Msg: "minint PE " + id, Data: map[string]any{"version": id, "kernel": kver}})
	if cmdErr != nil {
		e.r.Printf("warning: %v (using defaults for those)", cmdErr)
		e.r.Emit(progress.Event{Kind: "warning", Error: cmdErr.Error()})
	}
	if opts.Shell {
		e.r.Printf("minint.shell=1: starting a shell; exit it to continue")
		shells(e, false)
	}

	fsReady, err := loadModules(e, kver)
	if err != nil {
		return err
	}
	settleBlock(3 * time.Second)

	select {
	case <-rngReady:
	case <-time.After(10 * time.Second):
		e.r.Printf("warning: the kernel's random number generator is not ready after 10 s; DHCP may stall")
	}
	if err := network(ctx, e); err != nil {
		return err
	}
	<-fsReady
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		// UEFI variables (boot entries) for the task sequence.
		if err := unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", 0, ""); err != nil {
			e.r.Printf("warning: efivarfs: %v", err)
		}
	}
	if err := findMedium(ctx, e); err != nil {
		return err
	}

	e.inventory = hw.Collect("/")
	printInventory(e)
	if err := runSequence(ctx, e); err != nil {
		return fmt.Errorf("task sequence: %w", err)
	}
	return nil
}

func peID() string {
	b, err := os.ReadFile(buildInfoPath)
	if err != nil {
		return "(unknown build)"
	}
	var info struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &info) != nil || info.ID == "" {
		return "(unknown build)"
	}
	return info.ID
}

// fsModules are loaded whatever the hardware: boot media and targets need them.
var fsModules = []string{"ext4", "vfat", "isofs", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1", "efivarfs"}

// loadModules coldplugs the devices present and returns a channel that
// yields once the file-system modules, loaded in the background meanwhile
// (they are not needed until the boot medium is mounted), are in.
func loadModules(e *env, kver string) (<-chan struct{}, error) {
	start := time.Now()
	db, err := kmod.Open(filepath.Join("/lib/modules", kver))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w (the initramfs was built for another kernel?)", err)
	}
	l := kmod.NewLoader(db)
	l.Log = e.debug
	loaded, err := l.Coldplug("/sys/devices", 8)
	ev := progress.Event{Kind: "step", Op: "modules", State: "done", Data: map[string]any{"loaded": loaded, "seconds": time.Since(start).Seconds()}}
	if err != nil {
		e.r.Printf("warning: modules: %v", err)
		ev.Error = err.Error()
	}
	e.r.Printf("modules: %d loaded for the devices found (%s) in %s", len(loaded), strings.Join(loaded, " "), time.Since(start).Round(time.Millisecond))
	e.r.Emit(ev)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range fsModules {
			if _, _, err := db.Lookup(m); err != nil {
				continue // not shipped in this PE (custom module list)
			}
			if _, err := os.Stat("/sys/firmware/efi"); m == "efivarfs" && err != nil {
				continue // BIOS boot: efivarfs would fail with ENODEV
			}
			if err := l.Load(m); err != nil {
				e.r.Printf("warning: modules: %v", err)
			}
		}
	}()
	return done, nil
}

// settleBlock waits until the set of block devices has not changed for a
// moment (disks behind a freshly loaded driver appear asynchronously), at
// most max.
func settleBlock(max time.Duration) {
	deadline := time.Now().Add(max)
	last, since := "", time.Now()
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/sys/class/block")
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		cur := strings.Join(names, " ")
		if cur != last {
			last, since = cur, time.Now()
		} else if time.Since(since) >= 400*time.Millisecond {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func network(ctx context.Context, e *env) error {
	if !e.opts.Net {
		e.r.Printf("network: skipped (minint.net=0)")
		e.r.Emit(progress.Event{Kind: "step", Op: "network", State: "skipped"})
		return nil
	}
	start := time.Now()
	leases, err := hw.DHCP(ctx, 3*time.Second, 10*time.Second, e.debug)
	if leases == nil {
		leases = []hw.Lease{} // a JSON list, not null
	}
	e.leases = leases
	ev := progress.Event{Kind: "step", Op: "network", State: "done", Data: map[string]any{"leases": leases, "seconds": time.Since(start).Seconds()}}
	if err != nil {
		// A NIC that will not take its lease is worth a warning, not the
		// rescue shell: many sequences need no network.
		ev.Error = err.Error()
		e.r.Printf("warning: network: %v", err)
	}
	switch {
	case len(leases) == 0:
		e.r.Printf("network: no DHCP lease (no NIC, no link or no server)")
	default:
		for _, l := range leases {
			e.r.Printf("network: %s %s", l.Interface, l.Address)
		}
	}
	e.r.Emit(ev)
	return nil
}

func findMedium(ctx context.Context, e *env) error {
	f := &boot.Finder{
		SysBlock: "/sys/class/block", Dev: "/dev", MountPoint: boot.DefaultMountPoint,
		Mount: func(dev, dir, fstype string) error {
			return unix.Mount(dev, dir, fstype, unix.MS_RDONLY, "")
		},
		Unmount: func(dir string) error { return unix.Unmount(dir, 0) },
		Log:     e.debug,
	}
	wait := 2 * time.Second // nobody asked for a medium: just look
	if e.opts.Media != "" {
		wait = 15 * time.Second
	}
	m, err := f.Find(ctx, e.opts.Media, wait)
	if err != nil {
		if e.opts.Media == "" {
			e.r.Printf("boot medium: none (no minint.media given and no minint medium found)")
			e.r.Emit(progress.Event{Kind: "step", Op: "medium", State: "skipped"})
			return nil
		}
		return err
	}
	e.medium = m
	e.r.Printf("boot medium: %s (%s, ID %s) mounted read-only at %s", m.Device, m.FSType, m.ID, m.MountPoint)
	e.r.Emit(progress.Event{Kind: "step", Op: "medium", State: "done", Data: toMap(m)})
	return nil
}

func printInventory(e *env) {
	inv := e.inventory
	e.r.Printf("cpu: %d × %s", inv.CPUs, inv.CPUModel)
	e.r.Printf("memory: %.0f MiB", float64(inv.MemoryBytes)/(1<<20))
	e.r.Printf("firmware: %s", inv.Firmware)
	for _, d := range inv.Disks {
		flags := ""
		if d.Removable {
			flags += " removable"
		}
		if d.RO {
			flags += " ro"
		}
		e.r.Printf("disk: %-8s %10s  %-7s model=%q serial=%q%s", d.Name, human(d.SizeBytes), d.Transport, d.Model, d.Serial, flags)
	}
	if len(inv.Disks) == 0 {
		e.r.Printf("disk: none")
	}
	for _, n := range inv.NICs {
		link := "no link"
		if n.Link {
			link = "link up"
		}
		e.r.Printf("nic: %-8s %s %s driver=%s %s", n.Name, n.MAC, link, n.Driver, strings.Join(n.Addresses, " "))
	}
	if len(inv.NICs) == 0 {
		e.r.Printf("nic: none")
	}
	data := toMap(inv)
	if e.medium != nil {
		data["boot_medium"] = toMap(e.medium)
	} else {
		data["boot_medium"] = nil
	}
	e.r.Emit(progress.Event{Kind: "inventory", Data: data})
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	m := map[string]any{}
	json.Unmarshal(b, &m)
	return m
}

// runSequence is where the task-sequence engine plugs in: it runs the
// sequence given on the kernel command line or on the boot medium, if any
// (see deploy in sequence.go).
func runSequence(ctx context.Context, e *env) error {
	return deploy(ctx, e)
}

// finish reports the outcome and does what minint.done says; it never returns.
func finish(e *env, err error) {
	done := e.opts.Done
	if done == "" {
		done = boot.DoneShell
	}
	if err != nil {
		e.r.Printf("minint PE FAILED: %v", err)
		back := returnToInstalled(e.opts, err)
		e.r.Emit(progress.Event{Kind: "pe", State: "failed", Error: err.Error(), Data: map[string]any{"back_to_installed": back}})
		switch {
		case back:
			e.r.Printf("nothing outside /minint was changed: rebooting into the installed system (the one-shot boot into this PE is spent)")
		case done != boot.DonePoweroff:
			done = boot.DoneShell
		}
	} else {
		e.r.Printf("minint PE: done")
		e.r.Emit(progress.Event{Kind: "pe", State: "done"})
	}
	switch done {
	case boot.DonePoweroff, boot.DoneReboot:
		e.r.Printf("%s in 1 s", done)
		time.Sleep(time.Second) // let the console drain
		unix.Sync()
		cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
		if done == boot.DoneReboot {
			cmd = unix.LINUX_REBOOT_CMD_RESTART
		}
		if rerr := unix.Reboot(cmd); rerr != nil {
			e.r.Printf("%s: %v; starting the rescue shell", done, rerr)
		}
	}
	e.r.Printf("rescue shell: type 'poweroff' or 'shutdown -r' when finished")
	shells(e, true)
}

// returnToInstalled says whether a failed PE should reboot rather than
// stop: in a staged refresh (minint stage armed a one-shot boot of this
// PE) that failed before anything outside /minint was changed, the next
// boot is the old system, intact, which is better than a machine stuck in
// the PE. Once a destructive step started the PE is the boot default and
// a reboot would only run into the same failure again: then the shell
// (or poweroff) as usual.
func returnToInstalled(o boot.Options, err error) bool {
	return o.Staged != "" && o.Done == boot.DoneReboot && !errors.Is(err, pe.ErrChanged)
}

// shells runs a shell on every console. With forever it restarts each one
// when it exits and never returns (PID 1 must not exit); otherwise it
// returns as soon as one of them exits, ending the others.
func shells(e *env, forever bool) {
	var (
		mu      sync.Mutex
		running []*exec.Cmd
	)
	exited := make(chan struct{}, len(e.consoles))
	for _, c := range e.consoles {
		go func(tty *os.File) {
			for {
				cmd := exec.Command(shellPath())
				cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
				cmd.Env = append(os.Environ(), "TERM=linux")
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
				err := cmd.Start()
				if err == nil {
					mu.Lock()
					running = append(running, cmd)
					mu.Unlock()
					err = cmd.Wait()
				}
				if err != nil {
					fmt.Fprintf(tty, "shell: %v\n", err)
					time.Sleep(time.Second)
				}
				if !forever {
					exited <- struct{}{}
					return
				}
			}
		}(c)
	}
	if forever {
		select {}
	}
	<-exited
	mu.Lock()
	for _, c := range running {
		c.Process.Kill() // those still running; an error for the one that exited
	}
	mu.Unlock()
}

func shellPath() string {
	for _, p := range []string{"/bin/sh", "/bbin/gosh"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/bin/sh"
}

// mountBase mounts the pseudo file systems. Errors are ignored: a mount
// that already exists (devtmpfs automount) is fine, and anything missing
// shows up in the steps that need it.
func mountBase() {
	for _, m := range []struct {
		src, dir, fs string
		flags        uintptr
		data         string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,gid=5,mode=620"},
		{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	} {
		os.MkdirAll(m.dir, 0o755)
		unix.Mount(m.src, m.dir, m.fs, m.flags, m.data)
	}
	os.Symlink("/proc/self/fd", "/dev/fd")
	os.Symlink("pts/ptmx", "/dev/ptmx")
	os.MkdirAll("/root", 0o700)
}

// openConsoles opens every console the kernel writes to (console= on the
// command line, listed in /proc/consoles), so that a serial console gets
// our output even when /dev/console is the screen.
func openConsoles() []*os.File {
	var out []*os.File
	seen := map[string]bool{}
	if b, err := os.ReadFile("/proc/consoles"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || seen[f[0]] {
				continue
			}
			seen[f[0]] = true
			if c, err := os.OpenFile("/dev/"+f[0], os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		if c, err := os.OpenFile("/dev/console", os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
			out = append(out, c)
		} else {
			out = append(out, os.Stdout)
		}
	}
	return out
}

// multi writes to every console; a console that fails (a screen that is not
// there) must not stop the others, unlike io.MultiWriter.
func multi(fs []*os.File) io.Writer { return consoleWriter(fs) }

type consoleWriter []*os.File

func (cw consoleWriter) Write(p []byte) (int, error) {
	var errs []error
	for _, f := range cw {
		if _, err := f.Write(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(cw) && len(cw) > 0 {
		return 0, errors.Join(errs...)
	}
	return len(p), nil
}
