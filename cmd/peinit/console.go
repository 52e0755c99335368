package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minint/minint/pe/boot"
	"github.com/minint/minint/pe/screen"
	"golang.org/x/sys/unix"
)

// LogPath is the PE's own log: every human line and every event of this
// boot (a failed sequence also saves its log on the target disk).
const LogPath = "/run/minint/pe.log"

// console is one terminal the kernel writes to.
type console struct {
	f      *os.File
	name   string // tty0, ttyS0 …
	screen bool   // shows the page (else readable lines)
	mu     sync.Mutex
	disp   *screen.Display
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.Write(p)
}

// isVT tells a virtual terminal (the screen: tty0, tty1 …) from a serial
// line (ttyS0, ttyAMA0, hvc0 …).
func isVT(name string) bool {
	rest, ok := strings.CutPrefix(name, "tty")
	return ok && rest != "" && rest[0] >= '0' && rest[0] <= '9'
}

// outputs routes the PE's output: the page on screens, readable lines on
// serial lines, JSON events to the log (and the serial lines only when
// minint.events=serial asks for it, for test harnesses).
type outputs struct {
	consoles []*console
	model    *screen.Model
	log      io.Writer
	human    io.Writer // lines for people
	plain    io.Writer // lines only where the page does not show them (log, serial)
	events   io.Writer // JSON lines for machines
}

// newOutputs opens the consoles of /proc/consoles and sets up the routes
// opts asks for. minint.debug=1 keeps every console in line mode: kernel
// messages would tear the page.
func newOutputs(opts boot.Options) *outputs {
	o := &outputs{model: screen.New()}
	os.MkdirAll(filepath.Dir(LogPath), 0o755)
	if f, err := os.OpenFile(LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
		o.log = &lockedWriter{w: f}
	} else {
		o.log = io.Discard
	}
	for _, f := range openConsoles() {
		name := filepath.Base(f.Name())
		c := &console{f: f, name: name}
		c.screen = (isVT(name) && !opts.Debug) || (!isVT(name) && opts.Serial == boot.SerialScreen)
		o.consoles = append(o.consoles, c)
	}
	var lines, plain, events []io.Writer
	lines = append(lines, o.log, o.model.LogWriter())
	plain = append(plain, o.log)
	events = append(events, o.log, o.model)
	for _, c := range o.consoles {
		if !c.screen {
			lines = append(lines, c)
			plain = append(plain, c)
		}
		if !isVT(c.name) && opts.Events == "serial" {
			events = append(events, c)
		}
	}
	o.human = tolerant(lines)
	o.plain = tolerant(plain)
	o.events = tolerant(events)
	for _, c := range o.consoles {
		if c.screen {
			w, h := size(c.f)
			c.disp = screen.NewDisplay(c, o.model, w, h, 250*time.Millisecond)
		}
	}
	return o
}

// size is a terminal's size; serial lines do not know theirs.
func size(f *os.File) (int, int) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col < 40 || ws.Row < 12 {
		return 80, 24
	}
	return int(ws.Col), int(ws.Row)
}

// pause stops the page on c (a shell gets the terminal); resume draws it.
func (c *console) pause() {
	if c.disp != nil {
		c.disp.Pause()
	}
}

func (c *console) resume() {
	if c.disp != nil {
		c.disp.Resume()
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tolerant writes to every writer; one that fails (a screen that is not
// there) must not stop the others, unlike io.MultiWriter.
func tolerant(ws []io.Writer) io.Writer { return tolerantWriter(ws) }

type tolerantWriter []io.Writer

func (tw tolerantWriter) Write(p []byte) (int, error) {
	var errs []error
	for _, w := range tw {
		if _, err := w.Write(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(tw) && len(tw) > 0 {
		return 0, errors.Join(errs...)
	}
	return len(p), nil
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

// readKey waits until a key in keys is pressed on any console, or until
// deadline (zero: forever), and returns it with the console it came from.
// It puts the terminals into raw mode for the time.
func (o *outputs) readKey(keys string, deadline time.Time, tick func(left time.Duration)) (byte, *console) {
	type saved struct {
		c *console
		t *unix.Termios
	}
	var restore []saved
	var fds []unix.PollFd
	var cs []*console
	for _, c := range o.consoles {
		fd := int(c.f.Fd())
		if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			raw := *t
			raw.Lflag &^= unix.ICANON | unix.ECHO
			raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
			unix.IoctlSetTermios(fd, unix.TCSETS, &raw)
			restore = append(restore, saved{c, t})
		}
		unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) // no stale typing
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		cs = append(cs, c)
	}
	defer func() {
		for _, s := range restore {
			unix.IoctlSetTermios(int(s.c.f.Fd()), unix.TCSETS, s.t)
		}
	}()
	lastTick := time.Time{}
	for {
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return 0, nil
			}
			if tick != nil && time.Since(lastTick) >= time.Second {
				tick(left)
				lastTick = time.Now()
			}
		}
		for i := range fds {
			fds[i].Revents = 0
		}
		n, err := unix.Poll(fds, 250)
		if err != nil && !errors.Is(err, unix.EINTR) {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		if n <= 0 {
			continue
		}
		for i, p := range fds {
			if p.Revents&unix.POLLIN == 0 {
				continue
			}
			var b [16]byte
			k, _ := unix.Read(int(p.Fd), b[:])
			for _, ch := range b[:max(k, 0)] {
				ch = toLower(ch)
				if strings.IndexByte(keys, ch) >= 0 {
					return ch, cs[i]
				}
			}
		}
	}
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
