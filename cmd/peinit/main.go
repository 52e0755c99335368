// Command peinit is PID 1 of minint's preinstallation environment (PE).
//
// It raises the open-file limit as far as the kernel allows (applying an
// image keeps many directories open), mounts /proc, /sys, /dev (devtmpfs),
// /dev/pts and /run, loads the kernel modules the machine's devices need
// by matching their modaliases against modules.alias (coldplug, repeated
// while new devices appear) plus the file systems unconditionally, brings
// the network up (DHCP on every NIC, or what ip=/vlan= say), finds the
// boot medium, takes a hardware inventory, runs the task sequence if there
// is one, and then does what minint.done says.
//
// What it shows: the screen (VGA, tty0) carries one page, redrawn in
// place, with the PE's version, the machine (model, serial number, MAC and
// IP addresses), the sequence with each step's state, a progress bar with
// rate and time left, and after a failure the error, what to do about it,
// where the log is and a menu: [s] shell, [r] retry, [b] reboot, [p] power
// off, answered on any console's keyboard. Serial consoles get the same
// story as readable lines (minint.serial=screen gives them the page). The
// JSON-lines events ({"event":"banner"}, {"event":"inventory","data":{…}},
// {"event":"boot","data":{…}} with the seconds of each of the PE's own
// phases before the sequence,
// {"event":"pe","state":"done"} or {"event":"pe","state":"failed",
// "error":…}, and the sequence's) go to the log, /run/minint/pe.log, to
// the sequence's status URL, and only with minint.events=serial to the
// serial consoles too, where test harnesses read them.
//
// After a failure the menu waits minint.failwait seconds, then does what
// minint.done says (with done=shell it waits for a key); PID 1 never
// exits, so the kernel never panics. A staged refresh that failed before
// anything outside /minint changed reboots into the installed system.
//
// Kernel command-line options:
//
//	minint.done=poweroff|reboot|shell  what to do when finished (default shell)
//	minint.media=ID        the boot medium: the iso9660 or vfat block device
//	                       (disk, partition or CD) whose /minint/media.json
//	                       has {"id": "ID"}; mounted read-only at
//	                       /run/minint/media. Without it the first minint
//	                       medium found, if any, is used.
//	minint.net=0           no network (as ip=off)
//	ip=, vlan=, nameserver=, ifname=
//	                       static network configuration in dracut's syntax
//	                       (see package netconf), e.g.
//	                       vlan=eth0.20:eth0
//	                       ip=192.0.2.10::192.0.2.1:24::eth0.20:none
//	                       nameserver=192.0.2.53; a value that does not
//	                       parse stops the PE before it touches a disk
//	minint.staged=UUID=ID  refresh in place: the root `minint stage`
//	                       prepared (found by file system UUID), its
//	                       /minint/pe/sequence.yaml and journal; a failure
//	                       before anything outside /minint changed reboots
//	                       into the installed system (with minint.done=reboot)
//	minint.sequence=URL    the task sequence to run: an http(s) URL (needs
//	                       a detached signature URL.sig by the PE's key,
//	                       made for purpose sequence) or
//	                       a path; default minint/sequence.yaml on the
//	                       boot medium. Without either nothing is deployed.
//	minint.sequence-min-version=V
//	                       refuse a network sequence whose signature
//	                       carries no version or one below V (rollback
//	                       protection; see docs/security.md)
//	minint.var.NAME=VALUE  the sequence's variable NAME (over its rules and
//	                       default; ${var.NAME}), and var.NAME in when:
//	minint.events=serial   JSON-lines events on the serial consoles too
//	minint.serial=screen   the page on the serial consoles (default lines)
//	minint.failwait=SECONDS  how long the failure menu waits before doing
//	                       what minint.done says (default 60)
//	minint.shell=1         start a shell before doing anything else; the PE
//	                       continues when it exits
//	minint.redo=1          run again, from its first fetch, a sequence that
//	                       the journal on the target disk says finished in
//	                       an earlier boot (by default such a PE does
//	                       nothing and says so: a network boot that comes
//	                       back after its deployment must not install
//	                       again); and partition again a disk with the
//	                       sequence's partitions and an installed system
//	                       but no journal, a system it deployed that has
//	                       started since, or with a hibernated system
//	                       (both by default refused)
//	minint.debug=1         verbose: kernel messages and module loading on
//	                       the console (which then shows lines, no page)
//	minint.bench=unverified-medium  benchmarks only (make bench-deploy):
//	                       apply an image from the boot medium without
//	                       verifying the package (the WIM's SHA-1s are
//	                       still checked); a server's image is verified
//	                       regardless
//	minint.bench=unhashed-medium  the same without the WIM's SHA-1s
//	                       either: the floor that hashes nothing
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/kmod"
	"github.com/minint/minint/netconf"
	"github.com/minint/minint/pe"
	"github.com/minint/minint/pe/boot"
	"github.com/minint/minint/pe/hw"
	"github.com/minint/minint/pe/screen"
	"golang.org/x/sys/unix"
)

// buildInfoPath is written by the initramfs builder.
const buildInfoPath = "/etc/minint/pe.json"

// env is what the PE knows once it is up; runSequence gets it.
type env struct {
	opts      boot.Options
	out       *outputs
	r         *progress.Reporter
	medium    *boot.Medium // nil when none was found (and none was asked for)
	inventory *hw.Inventory
	leases    []hw.Lease
	nofile    string       // what raising RLIMIT_NOFILE gave
	modules   *kmod.Loader // for devices that appear after the first coldplug
	debug     func(format string, a ...any)
}

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "peinit: must run as PID 1 (it is the /init of minint's PE)")
		os.Exit(2)
	}
	nofile := raiseNoFile()
	mountBase()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	opts, cmdErr := boot.ParseCmdline(string(cmdline))
	out := newOutputs(opts)
	e := &env{opts: opts, out: out, r: progress.New(out.human, out.events), debug: func(string, ...any) {}}
	if cmdErr != nil {
		e.r.Printf("warning: %v (using defaults for those)", cmdErr)
		e.r.Emit(progress.Event{Kind: "warning", Error: cmdErr.Error()})
	}
	e.nofile = nofile
	for {
		err := safeRun(e)
		if !finish(e, err) {
			return // unreachable: finish does not return unless asked to retry
		}
		e.r.Printf("retrying")
		out.model.Reset()
		if e.medium != nil {
			unix.Unmount(e.medium.MountPoint, 0)
			e.medium = nil
		}
	}
}

// raiseNoFile lifts RLIMIT_NOFILE, soft and hard, to fs.nr_open, the most
// the kernel allows: PID 1 starts with 1024/4096, too few for applying an
// image with thousands of directories. Children inherit it.
func raiseNoFile() string {
	n := uint64(1 << 20) // the kernel's default nr_open
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			n = v
		}
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("RLIMIT_NOFILE: %v", err)
	}
	return fmt.Sprintf("RLIMIT_NOFILE raised to %d", n)
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
	opts := e.opts
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
	e.r.Emit(progress.Event{Kind: "banner", Msg: "minint PE " + id, Data: map[string]any{"version": id, "kernel": kver, "nofile": e.nofile}})
	e.debug("%s", e.nofile)
	if opts.NetworkErr != nil {
		// A technician who typed a static address wants that network, not
		// another one: stop before anything (a disk) is touched.
		return opts.NetworkErr
	}
	if opts.Shell {
		e.r.Printf("minint.shell=1: starting a shell; exit it to continue")
		shells(e, false)
	}

	times := newBootTimes()
	fsReady, err := loadModules(e, kver)
	if err != nil {
		return err
	}
	times.mark("modules")
	// Disks behind the drivers just loaded appear asynchronously; nothing
	// before the boot medium needs them, so the wait overlaps DHCP.
	settled := make(chan struct{})
	go func() {
		settleBlock(3 * time.Second)
		close(settled)
	}()

	select {
	case <-rngReady:
	case <-time.After(10 * time.Second):
		e.r.Printf("warning: the kernel's random number generator is not ready after 10 s; DHCP may stall")
	}
	times.mark("random")
	if err := network(ctx, e); err != nil {
		return err
	}
	times.mark("network")
	<-fsReady
	<-settled
	times.mark("devices")
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		// UEFI variables (boot entries) for the task sequence.
		if err := unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", 0, ""); err != nil {
			e.r.Printf("warning: efivarfs: %v", err)
		}
	}
	if err := findMedium(ctx, e); err != nil {
		return err
	}
	times.mark("medium")

	e.inventory = hw.Collect("/")
	printInventory(e)
	times.mark("inventory")
	times.emit(e)
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

// modulesLoad lists modules driver packs want loaded on every boot
// (initramfs.ModulesLoadPath).
const modulesLoad = "/etc/minint/modules.load"

// fsModules are loaded whatever the hardware: boot media and targets need
// them, and MD and device-mapper so that arrays and volumes can be seen.
var fsModules = []string{"ext4", "vfat", "isofs", "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859_1", "efivarfs", "md_mod", "dm_mod"}

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
	e.modules = l
	loaded, err := l.Coldplug("/sys/devices", 8)
	ev := progress.Event{Kind: "step", Op: "modules", State: "done", Data: map[string]any{"loaded": loaded, "module_seconds": l.Took(), "seconds": time.Since(start).Seconds()}}
	if err != nil {
		e.r.Printf("warning: modules: %v", err)
		ev.Error = err.Error()
	}
	e.r.Printf("modules: %d loaded for the devices found (%s) in %s", len(loaded), strings.Join(loaded, " "), time.Since(start).Round(time.Millisecond))
	e.r.Emit(ev)

	always := append([]string{}, fsModules...)
	if b, err := os.ReadFile(modulesLoad); err == nil {
		always = append(always, strings.Fields(string(b))...)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range always {
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
		e.r.Printf("network: skipped (minint.net=0 or ip=off)")
		e.r.Emit(progress.Event{Kind: "step", Op: "network", State: "skipped"})
		return nil
	}
	return configureNetwork(ctx, e, e.opts.Network)
}

// configureNetwork brings up the network cfg describes (the kernel command
// line's, or a sequence's network: list) and reports it.
func configureNetwork(ctx context.Context, e *env, cfg netconf.Config) error {
	for _, i := range cfg.Interfaces {
		if i.VLAN != 0 {
			if err := loadNamed(e, "8021q"); err != nil {
				return fmt.Errorf("network: VLAN %s: %w", i.Name, err)
			}
			break
		}
	}
	start := time.Now()
	leases, err := hw.Configure(ctx, cfg, 3*time.Second, 10*time.Second, e.debug)
	if leases == nil {
		leases = []hw.Lease{} // a JSON list, not null
	}
	e.leases = leases
	ev := progress.Event{Kind: "step", Op: "network", State: "done", Data: map[string]any{"leases": leases, "seconds": time.Since(start).Seconds()}}
	if err != nil {
		if len(cfg.Interfaces) > 0 {
			// What the command line asked for did not happen: say so
			// before anything else is done.
			ev.State, ev.Error = "failed", err.Error()
			e.r.Emit(ev)
			return err
		}
		// A NIC that will not take its DHCP lease is worth a warning, not
		// the rescue shell: many sequences need no network.
		ev.Error = err.Error()
		e.r.Printf("warning: network: %v", err)
	}
	switch {
	case len(leases) == 0:
		e.r.Printf("network: no address (no NIC, no link or no DHCP server)")
	default:
		for _, l := range leases {
			extra := ""
			if l.Router != "" {
				extra = " via " + l.Router
			}
			e.r.Printf("network: %s %s (%s)%s", l.Interface, l.Address, l.Method, extra)
		}
	}
	e.r.Emit(ev)
	return nil
}

// loadNamed loads modules by name with the PE's module index.
func loadNamed(e *env, names ...string) error {
	var uts unix.Utsname
	unix.Uname(&uts)
	db, err := kmod.Open(filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:])))
	if err != nil {
		return err
	}
	l := kmod.NewLoader(db)
	l.Log = e.debug
	return l.Load(names...)
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
	if e.modules != nil {
		f.Rescan = func() {
			if loaded, _ := e.modules.Coldplug("/sys/devices", 2); len(loaded) > 0 {
				e.r.Printf("modules: %s loaded for devices that appeared late", strings.Join(loaded, " "))
			}
		}
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
	e.r.Printf("firmware: %s%s", inv.Firmware, secureBootText(inv))
	for _, d := range inv.Disks {
		flags := ""
		if d.Removable {
			flags += " removable"
		}
		if d.RO {
			flags += " ro"
		}
		e.r.Printf("disk: %-8s %10s  %-7s model=%q serial=%q%s", d.Name, bytesize.Size(d.SizeBytes).Human(), d.Transport, d.Model, d.Serial, flags)
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

// secureBootText says whether the firmware verified the boot chain and
// what the kernel's lockdown forbids in consequence (see pe/doc.go).
func secureBootText(inv *hw.Inventory) string {
	if inv.Firmware != "uefi" {
		return ""
	}
	s := ", Secure Boot off"
	switch {
	case inv.SecureBoot:
		s = ", Secure Boot on"
	case inv.SetupMode:
		s = ", Secure Boot off (setup mode: no platform key enrolled)"
	}
	if inv.Lockdown != "" && inv.Lockdown != "none" {
		s += " (kernel lockdown: " + inv.Lockdown + ")"
	}
	return s
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

// finish reports the outcome and does what minint.done says. After a
// failure it shows what to do and offers a shell, a retry, a reboot or a
// power-off; it returns true only when retry was chosen, and never returns
// otherwise.
func finish(e *env, err error) (retry bool) {
	done := e.opts.Done
	if done == "" {
		done = boot.DoneShell
	}
	if err == nil {
		e.r.Printf("minint PE: done")
		e.r.Emit(progress.Event{Kind: "pe", State: "done"})
		if done != boot.DoneShell {
			power(e, done)
		}
		e.r.Printf("rescue shell: type 'poweroff' or 'shutdown -r' when finished")
		shells(e, true)
	}
	back := returnToInstalled(e.opts, err)
	if e.inventory == nil {
		// It failed early: the page should still say which machine this is.
		e.inventory = hw.Collect("/")
		e.r.Emit(progress.Event{Kind: "inventory", Data: toMap(e.inventory)})
	}
	// The page shows the failure its own way; these lines are for the
	// log and the serial consoles.
	plain := progress.New(e.out.plain, nil)
	plain.Printf("minint PE FAILED: %v", err)
	plain.Printf("what to do: %s", screen.Advice(err.Error(), back))
	plain.Printf("log: %s", LogPath)
	e.r.Emit(progress.Event{Kind: "pe", State: "failed", Error: err.Error(), Data: map[string]any{"back_to_installed": back, "log": LogPath}})
	after := done
	if back {
		after = boot.DoneReboot
		plain.Printf("nothing outside /minint was changed: the installed system is intact; rebooting into it (the one-shot boot into this PE is spent)")
	}
	for {
		menu := "[s] shell   [r] retry   [b] reboot   [p] power off"
		var deadline time.Time
		if after != boot.DoneShell {
			deadline = time.Now().Add(time.Duration(e.opts.FailWait) * time.Second)
		}
		plain.Printf("choose: %s%s", menu, countdown(after, e.opts.FailWait))
		key, c := e.out.readKey("srbp", deadline, func(left time.Duration) {
			e.out.model.SetMenu(menu + countdown(after, int(left.Seconds()+0.5)))
		})
		e.out.model.SetMenu(menu)
		switch key {
		case 0: // the wait is over
			power(e, after)
		case 'r':
			return true
		case 'b':
			power(e, boot.DoneReboot)
		case 'p':
			power(e, boot.DonePoweroff)
		case 's':
			e.r.Printf("shell on %s: exit it to come back to this menu", c.name)
			c.pause()
			runShell(c)
			c.resume()
			after = boot.DoneShell // someone is here: no more countdown
		}
	}
}

func countdown(action string, secs int) string {
	if action == boot.DoneShell {
		return ""
	}
	what := map[string]string{boot.DonePoweroff: "power off", boot.DoneReboot: "reboot"}[action]
	return fmt.Sprintf("      (%s in %d s)", what, secs)
}

// power powers off or reboots; when the kernel refuses, the rescue shell.
func power(e *env, action string) {
	e.r.Printf("%s in 1 s", action)
	time.Sleep(time.Second) // let the consoles drain
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if action == boot.DoneReboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		e.r.Printf("%s: %v; starting the rescue shell", action, err)
	}
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
	exited := make(chan struct{}, len(e.out.consoles))
	for _, c := range e.out.consoles {
		c.pause()
		go func(c *console) {
			for {
				cmd, err := startShell(c)
				if err == nil {
					mu.Lock()
					running = append(running, cmd)
					mu.Unlock()
					err = cmd.Wait()
				}
				if err != nil {
					fmt.Fprintf(c, "shell: %v\n", err)
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
	for _, c := range e.out.consoles {
		c.resume()
	}
}

// startShell starts the rescue shell on one console.
func startShell(c *console) (*exec.Cmd, error) {
	cmd := exec.Command(shellPath())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.f, c.f, c.f
	cmd.Env = append(os.Environ(), "TERM=linux")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd, cmd.Start()
}

// runShell runs the rescue shell on c until it exits.
func runShell(c *console) {
	cmd, err := startShell(c)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		fmt.Fprintf(c, "shell: %v\n", err)
	}
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
		// The kernel's lockdown mode (Secure Boot) for the inventory.
		{"securityfs", "/sys/kernel/security", "securityfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	} {
		os.MkdirAll(m.dir, 0o755)
		unix.Mount(m.src, m.dir, m.fs, m.flags, m.data)
	}
	os.Symlink("/proc/self/fd", "/dev/fd")
	os.Symlink("pts/ptmx", "/dev/ptmx")
	os.MkdirAll("/root", 0o700)
}

// bootTimes records how long each of the PE's own phases took before the
// task sequence starts (issue 16.4: where the time between power-on and
// the first task step goes). The kernel's clock (CLOCK_BOOTTIME, which
// starts with the kernel) dates them, so that the firmware's and loader's
// share is power-on time minus the "boot" event's "kernel_to_init".
type bootTimes struct {
	init   float64 // kernel clock when the PE's init started its phases
	last   float64
	phases map[string]float64
}

func bootClock() float64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return float64(ts.Nano()) / 1e9
}

func newBootTimes() *bootTimes {
	now := bootClock()
	return &bootTimes{init: now, last: now, phases: map[string]float64{}}
}

// mark ends the phase name: it took the time since the previous mark.
func (b *bootTimes) mark(name string) {
	now := bootClock()
	b.phases[name] = now - b.last
	b.last = now
}

// emit sends the "boot" event: seconds per phase, the kernel's clock at
// init (kernel_to_init) and at the first task step (kernel_to_sequence).
func (b *bootTimes) emit(e *env) {
	data := map[string]any{"kernel_to_init": b.init, "kernel_to_sequence": b.last}
	for k, v := range b.phases {
		data[k] = v
	}
	e.r.Printf("PE ready %.1f s after the kernel started (kernel %.1f s, modules %.1f, random %.1f, network %.1f, devices %.1f, medium %.1f, inventory %.1f)",
		b.last, b.init, b.phases["modules"], b.phases["random"], b.phases["network"], b.phases["devices"], b.phases["medium"], b.phases["inventory"])
	e.r.Emit(progress.Event{Kind: "boot", State: "done", Data: data})
}
