// Command minint-setup is the first-boot program minint copies into a
// deployed system. The PE's bootfiles step boots the new system once with
// init=/minint/minint-setup; this program then applies the answer file
// (/minint/setup.json: hostname, users, network, files, commands), removes
// init= from the boot entries it was told about, deletes itself and its
// answer file (which holds password hashes), and execs the real init.
//
// If anything fails, the system's own init is NOT started: the error is
// shown on the console and kept in /minint/setup-result.json, and a shell is
// offered when the system has one. The next boot runs setup again, which is
// safe because applying an answer is idempotent.
//
// It must be built static (CGO_ENABLED=0): it runs before anything of the
// deployed system, possibly on a system with another libc.
//
// --root runs it against a tree other than / (tests, or applying an answer
// file to a mounted image from the host); it then neither mounts nor execs.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/minint/minint/answer"
	"github.com/minint/minint/internal/child"
	"github.com/minint/minint/state"
	"golang.org/x/sys/unix"
)

func main() {
	root := flag.String("root", "/", "root of the system to set up")
	config := flag.String("config", "", "answer/config file (default ROOT"+answer.ConfigFile+")")
	noExec := flag.Bool("no-exec", false, "do not exec the real init afterwards")
	keep := flag.Bool("keep", false, "do not delete the program and its config afterwards")
	pid1 := os.Getpid() == 1
	if !pid1 {
		flag.Parse()
	}
	if *config == "" {
		*config = filepath.Join(*root, answer.ConfigFile)
	}
	// As PID 1, the kernel has already opened the console as stdin,
	// stdout and stderr.
	console := io.Writer(os.Stderr)
	if pid1 {
		if err := earlyMounts(); err != nil {
			fmt.Fprintf(console, "minint-setup: %v\n", err)
		}
	}
	var log bytes.Buffer
	out := io.MultiWriter(console, &log)
	event(console, "start", "")
	cfg, err := setup(*root, *config, out, console)
	res := &answer.Result{OK: err == nil, Finished: time.Now().UTC(), Log: strings.Split(strings.TrimSpace(log.String()), "\n")}
	if err != nil {
		res.Error = err.Error()
	}
	if werr := answer.WriteResult(filepath.Join(*root, answer.ResultFile), res); werr != nil {
		fmt.Fprintf(out, "minint-setup: cannot write result: %v\n", werr)
	}
	unix.Sync()
	if err != nil {
		event(console, "failed", err.Error())
		fmt.Fprintf(console, "\nminint-setup: FAILED: %v\nThe system's init was not started. Details: %s\n", err, answer.ResultFile)
		if pid1 {
			rescue(console)
		}
		os.Exit(1)
	}
	if !*keep {
		os.Remove(filepath.Join(*root, answer.ConfigFile))
		os.Remove(filepath.Join(*root, answer.Binary))
		if rs := cfg.Answer.RestoreState; rs != nil && !rs.KeepStaging {
			// Only now, with the state restored and verified and the
			// result written, may the store go.
			if err := removeStaging(*root, rs.LogDirOrDefault()); err != nil {
				fmt.Fprintf(out, "minint-setup: removing %s: %v\n", answer.Dir, err)
			}
		}
		unix.Sync()
	}
	event(console, "done", "")
	if pid1 && !*noExec {
		init := cfg.Init
		if init == "" {
			init = "/sbin/init"
		}
		err := syscall.Exec(init, append([]string{init}, os.Args[1:]...), os.Environ())
		fmt.Fprintf(console, "minint-setup: exec %s: %v\n", init, err)
		rescue(console)
	}
}

// event prints a JSON line like the PE's events, for whoever watches the
// console (the QEMU tests do).
func event(w io.Writer, state, msg string) {
	b, _ := json.Marshal(map[string]any{"time": time.Now().UTC(), "event": "setup", "state": state, "error": msg})
	fmt.Fprintf(w, "%s\n", b)
}

// setup applies the answer file; out gets the log lines, events the JSON
// events (the console).
func setup(root, config string, out, events io.Writer) (*answer.Config, error) {
	cfg, err := answer.ReadConfig(config)
	if err != nil {
		return nil, err
	}
	opts := answer.Options{Log: out}
	if rs := cfg.Answer.RestoreState; rs != nil {
		opts.BeforeCommands = func() error { return restoreState(root, rs, out, events) }
	}
	if err := answer.Apply(&cfg.Answer, root, opts); err != nil {
		return nil, err
	}
	for _, e := range cfg.BootEntries {
		if err := fixEntry(root, e); err != nil {
			return nil, fmt.Errorf("boot entry %s: %w", e.Path, err)
		}
		fmt.Fprintf(out, "removed %s from %s\n", answer.InitArg, e.Path)
	}
	return cfg, nil
}

// restoreState restores the captured user state; state.Restore checks the
// store's signature against restore-state's keys and the whole store
// before it writes anything, every file as it goes, and leaves out what
// its policy refuses (reported as warnings).
func restoreState(root string, rs *answer.RestoreState, out, events io.Writer) error {
	store := filepath.Join(root, rs.StoreDir())
	fmt.Fprintf(out, "restoring user state from %s\n", rs.StoreDir())
	keys, err := rs.PublicKeys()
	if err != nil {
		return err
	}
	rep, err := state.Restore(context.Background(), store, root, state.RestoreOptions{Keys: keys, Copy: rs.Copy, Paths: rs.Paths})
	if err != nil {
		return fmt.Errorf("restore-state: %w", err)
	}
	fmt.Fprintf(out, "user state signed by state key %s\n", rep.SignedBy)
	// What the restore policy left out is said in the log and as an event
	// each: the user's data is restored, but not all of it.
	for _, w := range rep.Warnings {
		fmt.Fprintf(out, "warning: restore-state: %s\n", w)
		b, _ := json.Marshal(map[string]any{"time": time.Now().UTC(), "event": "setup", "state": "warning", "op": "restore-state", "msg": w})
		fmt.Fprintf(events, "%s\n", b)
	}
	fmt.Fprintf(out, "restored user state: %d entries, %d files (%d linked from the store), %d hard links, %d bytes; users added: %s\n",
		rep.Entries, rep.Files, rep.Linked, rep.HardLinks, rep.Bytes, strings.Join(rep.UsersAdded, " "))
	return nil
}

// removeStaging copies the setup result and the PE's logs (*.log, *.json
// at the top of the staging folder) into logDir, then removes the staging
// folder.
func removeStaging(root, logDir string) error {
	staging := filepath.Join(root, answer.Dir)
	dst := filepath.Join(root, logDir)
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return err
	}
	ents, err := os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !(strings.HasSuffix(n, ".log") || strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".jsonl")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(staging, n))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o640); err != nil {
			return err
		}
	}
	unix.Sync()
	return os.RemoveAll(staging)
}

func fixEntry(root string, e answer.BootEntry) error {
	if e.Device == "" && e.FSUUID == "" {
		return answer.FixBootEntry(root, e.Path)
	}
	dev := e.Device
	if e.FSUUID != "" {
		d, err := findByUUID(e.FSUUID)
		if err != nil && dev == "" {
			return err
		}
		if err == nil {
			dev = d
		}
	}
	mnt, err := os.MkdirTemp("", "minint-boot")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	fstype := e.FSType
	if fstype == "" {
		fstype = "vfat"
	}
	loadFS(fstype)
	if err := unix.Mount(dev, mnt, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s (%s): %w", dev, fstype, err)
	}
	ferr := answer.FixBootEntry(mnt, e.Path)
	unix.Sync()
	if err := unix.Unmount(mnt, 0); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// findByUUID looks through the block devices for a file system with this
// UUID (ext2/3/4) or volume serial (FAT). There is no udev this early, so
// /dev/disk/by-uuid does not exist.
func findByUUID(want string) (string, error) {
	ents, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return "", err
	}
	want = strings.ToLower(want)
	for _, e := range ents {
		dev := "/dev/" + e.Name()
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		buf := make([]byte, 2048)
		n, _ := io.ReadFull(f, buf)
		f.Close()
		if n < 2048 {
			continue
		}
		if id := answer.FSUUID(buf); id != "" && strings.ToLower(id) == want {
			return dev, nil
		}
	}
	return "", fmt.Errorf("no file system with UUID %s", want)
}

// loadFS loads the modules a file system needs when the kernel lacks it:
// this early nothing has loaded vfat and its code pages (the initramfs
// only loaded what the root needed). It uses the deployed system's own
// modprobe; failures show up as the mount's error.
func loadFS(fstype string) {
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && strings.Contains(string(b), "\t"+fstype+"\n") {
		return
	}
	mods := []string{fstype}
	if fstype == "vfat" {
		mods = append(mods, "nls_cp437", "nls_ascii", "nls_utf8", "nls_iso8859-1")
	}
	for _, mp := range []string{"/sbin/modprobe", "/usr/sbin/modprobe", "/bin/modprobe"} {
		if _, err := os.Stat(mp); err == nil {
			for _, m := range mods {
				child.Run(exec.Command(mp, "-q", m))
			}
			return
		}
	}
}

func earlyMounts() error {
	var errs []error
	for _, m := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.dir, err))
		}
	}
	// The kernel mounts / read-only unless the command line says rw.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT, ""); err != nil {
		errs = append(errs, fmt.Errorf("remount / read-write: %w", err))
	}
	return errors.Join(errs...)
}

// rescue never returns: PID 1 must not exit.
func rescue(console io.Writer) {
	for {
		for _, sh := range []string{"/bin/bash", "/bin/sh"} {
			if _, err := os.Stat(sh); err == nil {
				fmt.Fprintf(console, "minint-setup: starting %s; fix the problem and reboot to retry\n", sh)
				c := exec.Command(sh)
				if tty, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
					c.Stdin, c.Stdout, c.Stderr = tty, tty, tty
				}
				c.Run()
				break
			}
		}
		time.Sleep(5 * time.Second)
	}
}
