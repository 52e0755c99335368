// Package screen is what a technician at the machine reads: one page on
// the console (VGA text screen, or a serial terminal) with the PE's
// version, the machine (model, serial number, MAC and IP addresses), the
// task sequence with each step's state, a progress bar with rate and time
// left for each running operation, the last log lines, and after a
// failure the error, what to do about it, where the log is and the
// choices the PE offers.
//
// A Model is fed the PE's JSON-lines events (it is an io.Writer for them)
// and its human log lines (LogWriter); Render draws the page for a screen
// of a given size. Nothing here writes to a terminal: a Display does, by
// redrawing the page in place (cursor home, each line cleared to its end,
// the rest of the screen cleared), so that a frame starts with ESC [ H and
// ends with ESC [ J — which also lets a test harness on the serial console
// cut frames out of the stream.
package screen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minint/minint/internal/progress"
)

// Step states shown.
const (
	statePending = "pending"
	stateRunning = "running"
)

type step struct {
	name, typ, state, msg, err string
	label                      string // shown instead of the state while running (retries)
}

type bar struct {
	op          string
	done, total int64
	unit        string
	start, last time.Time
	rate        float64 // units per second, smoothed
	lastDone    int64
}

type nic struct {
	name, mac, addr, driver string
	link                    bool
}

// Model is the state of the page. It is safe for concurrent use.
type Model struct {
	mu      sync.Mutex
	now     func() time.Time
	changed chan struct{} // closed and replaced on every change

	version, kernel    string
	vendor, model, ser string
	cpus               int
	memory             int64
	firmware           string
	secureBoot         string
	disks              int
	nics               []nic
	addrs              map[string]string // interface -> address (leases)
	medium             string
	phase              string // what the PE is doing outside the sequence

	seqName string
	steps   []step
	// One bar per running operation, in the order they began: a
	// pipelined deployment fetches and applies at once, and each needs
	// its own second of history before it has a rate.
	bars []*bar

	result  string // "", "done", "failed"
	failure string
	logPath []string
	back    bool // a failed staged refresh goes back to the installed system
	menu    string

	log     []string // last human lines
	partial []byte   // events: an incomplete line
}

// New returns an empty Model.
func New() *Model {
	return &Model{now: time.Now, changed: make(chan struct{}), addrs: map[string]string{}}
}

// Changed returns a channel closed at the next change.
func (m *Model) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Model) touch() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Write takes JSON-lines events (progress.Event objects); other lines are
// ignored.
func (m *Model) Write(p []byte) (int, error) {
	m.mu.Lock()
	buf := append(m.partial, p...)
	var evs []progress.Event
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line := buf[:i]
		buf = buf[i+1:]
		var e progress.Event
		if json.Unmarshal(line, &e) == nil && e.Kind != "" {
			evs = append(evs, e)
		}
	}
	m.partial = append([]byte(nil), buf...)
	if len(m.partial) > 1<<20 {
		m.partial = nil // not events
	}
	m.mu.Unlock()
	for _, e := range evs {
		m.Event(e)
	}
	return len(p), nil
}

// LogWriter returns a writer whose lines become the page's log lines.
func (m *Model) LogWriter() io.Writer { return logWriter{m} }

type logWriter struct{ m *Model }

func (w logWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.m.Line(l)
	}
	return len(p), nil
}

// Line adds a human log line.
func (m *Model) Line(s string) {
	s = strings.TrimRight(strings.ReplaceAll(s, "\t", "  "), " \r")
	if strings.HasPrefix(s, "\r") || s == "" {
		return // a redrawn progress bar
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, s)
	if len(m.log) > 50 {
		m.log = m.log[len(m.log)-50:]
	}
	m.touch()
}

// SetMenu sets the line of choices shown under a failure ("" for none).
func (m *Model) SetMenu(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.menu = s
	m.touch()
}

// Reset forgets the sequence and the result, for a retry.
func (m *Model) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.steps, m.bars, m.result, m.failure, m.logPath, m.menu, m.back, m.seqName = nil, nil, "", "", nil, "", false, ""
	m.touch()
}

// Event updates the model from one event.
func (m *Model) Event(e progress.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.touch()
	str := func(k string) string { s, _ := e.Data[k].(string); return s }
	num := func(k string) float64 { f, _ := e.Data[k].(float64); return f }
	switch e.Kind {
	case "banner":
		m.version, m.kernel = str("version"), str("kernel")
		if sb := str("secure_boot"); sb != "" {
			m.secureBoot = sb
		}
		m.phase = "starting"
	case "inventory":
		m.vendor, m.model, m.ser = str("vendor"), str("model"), str("serial")
		m.cpus, m.memory, m.firmware = int(num("cpus")), int64(num("memory_bytes")), str("firmware")
		if sb, ok := e.Data["secure_boot"]; ok {
			m.secureBoot = fmt.Sprint(sb)
		}
		disks, _ := e.Data["disks"].([]any)
		m.disks = len(disks)
		m.nics = nil
		list, _ := e.Data["nics"].([]any)
		for _, x := range list {
			n, _ := x.(map[string]any)
			if n == nil {
				continue
			}
			s := func(k string) string { v, _ := n[k].(string); return v }
			c := nic{name: s("name"), mac: s("mac"), driver: s("driver")}
			c.link, _ = n["link"].(bool)
			if as, ok := n["addresses"].([]any); ok {
				for _, a := range as {
					if a, ok := a.(string); ok && !strings.HasPrefix(a, "fe80:") && c.addr == "" {
						c.addr = a
					}
				}
			}
			m.nics = append(m.nics, c)
		}
		if bm, ok := e.Data["boot_medium"].(map[string]any); ok {
			m.medium, _ = bm["device"].(string)
		}
	case "step":
		switch e.Op {
		case "modules", "network", "medium":
			m.phase = e.Op
			if e.Op == "network" {
				leases, _ := e.Data["leases"].([]any)
				for _, x := range leases {
					if l, ok := x.(map[string]any); ok {
						ifc, _ := l["interface"].(string)
						a, _ := l["address"].(string)
						m.addrs[ifc] = a
					}
				}
			}
			return
		}
		if e.Op == "sequence" { // peinit: no sequence to run
			m.phase = "no task sequence: " + e.Msg
			return
		}
		idx := int(num("index")) - 1
		for idx >= len(m.steps) && idx < 1000 {
			m.steps = append(m.steps, step{state: statePending})
		}
		if idx < 0 {
			return
		}
		s := &m.steps[idx]
		s.name, s.typ = e.Op, str("type")
		switch e.State {
		case "start":
			s.state, s.msg, s.err, s.label = stateRunning, e.Msg, "", ""
		case "plan":
			s.state, s.msg = statePending, e.Msg
		case "retry":
			// Still running: the label says which try comes next.
			s.state, s.msg, s.err = stateRunning, e.Msg, e.Error
			s.label = fmt.Sprintf("try %d/%d", int(num("try"))+1, int(num("tries")))
		default:
			s.state = e.State
			if e.Error != "" {
				s.err = e.Error
			}
		}
		if e.State != "start" {
			m.bars = nil
		}
	case "sequence":
		switch e.State {
		case "start":
			m.seqName = e.Msg
			m.steps = nil
			names, _ := e.Data["step_names"].([]any)
			types, _ := e.Data["step_types"].([]any)
			for i, n := range names {
				s := step{state: statePending}
				s.name, _ = n.(string)
				if i < len(types) {
					s.typ, _ = types[i].(string)
				}
				m.steps = append(m.steps, s)
			}
			m.phase = "sequence"
		case "failed":
			m.failure = e.Error
		}
	case "progress":
		i := slices.IndexFunc(m.bars, func(b *bar) bool { return b.op == e.Op })
		switch e.State {
		case "start", "running":
			if i < 0 || e.State == "start" {
				now := m.now()
				b := &bar{op: e.Op, total: e.Total, unit: e.Unit, start: now, last: now}
				if i < 0 {
					i = len(m.bars)
					m.bars = append(m.bars, b)
				} else {
					m.bars[i] = b
				}
			}
			if e.State == "running" {
				m.bars[i].update(e.Done, e.Total, m.now())
			}
		default:
			if i >= 0 {
				m.bars = slices.Delete(m.bars, i, i+1)
			}
		}
	case "log":
		if e.Msg != "" {
			m.logPath = append(m.logPath, e.Msg)
		}
	case "pe":
		m.result = e.State
		m.bars = nil
		if e.State == "failed" {
			m.failure = e.Error
			m.back, _ = e.Data["back_to_installed"].(bool)
			if p, ok := e.Data["log"].(string); ok && p != "" {
				m.logPath = append([]string{p}, m.logPath...)
			}
		}
	}
}

func (b *bar) update(done, total int64, now time.Time) {
	if total > 0 {
		b.total = total
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0.2 && now.Sub(b.start) >= time.Second {
		r := float64(done-b.lastDone) / dt
		if b.rate == 0 {
			b.rate = r
		} else {
			b.rate = 0.7*b.rate + 0.3*r
		}
		b.last, b.lastDone = now, done
	}
	if b.rate == 0 {
		// A rate over less than a second says nothing (the first
		// report can come right after the start).
		if s := now.Sub(b.start).Seconds(); s >= 1 {
			b.rate = float64(done) / s
		}
	}
	b.done = done
}

// Render returns the page as lines of at most width runes, at most height
// lines.
func (m *Model) Render(width, height int) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if width < 40 {
		width = 40
	}
	if height < 12 {
		height = 12
	}
	top := m.header(width)
	steps, focus := m.stepLines()
	barLines := m.barLines(width)
	bottom := m.bottom(width, height)

	// Steps that do not fit show as a window around the current one.
	if room := height - len(top) - len(barLines) - len(bottom); len(steps) > room && room >= 4 {
		n := room - 2 // the title and a "more" line
		from := min(max(focus-n/2, 0), len(steps)-1-n)
		win := append([]string{steps[0]}, steps[1+from:1+from+n]...)
		steps = append(win, fmt.Sprintf("    (%d of %d steps shown)", n, len(steps)-1))
	}
	top = append(append(top, steps...), barLines...)

	// The log lines fill what is left, newest last.
	room := height - len(top) - len(bottom) - 2
	if room > 0 && len(m.log) > 0 {
		n := min(room, len(m.log))
		top = append(top, "", "Log")
		for _, l := range m.log[len(m.log)-n:] {
			top = append(top, "  "+l)
		}
	}
	out := append(top, bottom...)
	if len(out) > height {
		// Keep the head (what the machine is) and the failure.
		keep := max(height-len(bottom), 4)
		out = append(top[:min(keep, len(top))], bottom...)
		if len(out) > height {
			out = out[:height]
		}
	}
	for i, l := range out {
		out[i] = clip(l, width)
	}
	return out
}

// header, stepLines, barLines and bottom are the parts of the screen that
// Render lays out, with m.mu held.
//
// header is the top of the screen: what runs, on what machine, with which
// network cards.
func (m *Model) header(width int) []string {
	var top []string
	add := func(format string, a ...any) { top = append(top, fmt.Sprintf(format, a...)) }
	title := "minint PE"
	if m.version != "" {
		title += " " + m.version
	}
	if m.kernel != "" {
		title += "   kernel " + m.kernel
	}
	if m.secureBoot != "" {
		title += "   Secure Boot " + m.secureBoot
	}
	add("%s", title)
	top = append(top, strings.Repeat("=", min(width, 78)))
	machine := strings.TrimSpace(m.vendor + " " + m.model)
	if machine == "" {
		machine = "(model unknown)"
	}
	if m.ser != "" {
		machine += "   serial " + m.ser
	}
	add("Machine   %s", machine)
	if m.cpus > 0 {
		add("          %d CPU, %d MiB, %s firmware, %d disk(s)", m.cpus, m.memory>>20, strings.ToUpper(m.firmware), m.disks)
	}
	names := make([]string, 0, len(m.nics))
	byName := map[string]nic{}
	for _, n := range m.nics {
		names = append(names, n.name)
		byName[n.name] = n
	}
	for ifc := range m.addrs {
		if _, ok := byName[ifc]; !ok {
			names = append(names, ifc) // a VLAN
			byName[ifc] = nic{name: ifc, link: true}
		}
	}
	sort.Strings(names)
	if len(names) == 0 && m.cpus > 0 {
		add("Network   no network card found")
	}
	for i, name := range names {
		n := byName[name]
		addr := m.addrs[name]
		if addr == "" {
			addr = n.addr
		}
		if addr == "" {
			addr = "no address"
			if !n.link {
				addr = "no link"
			}
		}
		label := "Network  "
		if i > 0 {
			label = "         "
		}
		mac := n.mac
		if mac == "" {
			mac = "                 "
		}
		add("%s %-9s %s  %s", label, n.name, mac, addr)
	}
	top = append(top, "")
	return top
}

// stepLines is the task sequence, a title and a line per step (or the
// PE's status before there is one), and the step to keep in view.
func (m *Model) stepLines() (steps []string, focus int) {
	switch {
	case len(m.steps) > 0:
		title := "Task sequence"
		if m.seqName != "" {
			title += " " + m.seqName
		}
		steps = append(steps, title)
		for i, s := range m.steps {
			mark := map[string]string{statePending: "   ", stateRunning: ">> ", "done": "ok ", "skipped": "-- ", "failed": "!! ", "continued": "!- "}[s.state]
			if mark == "" {
				mark = "   "
			}
			label := s.state
			switch {
			case s.state == statePending:
				label = ""
			case s.state == stateRunning && s.label != "":
				label = s.label
			}
			typ := s.typ
			if typ == s.name || strings.HasPrefix(s.name, typ+"-") {
				typ = "" // the name says it
			}
			steps = append(steps, fmt.Sprintf("%s%2d. %-22s %-9s %s", mark, i+1, clip(s.name, 22), label, typ))
		}
		focus = -1
		for i, s := range m.steps {
			if s.state == stateRunning || s.state == "failed" {
				focus = i
				break
			}
			if s.state != statePending {
				focus = i
			}
		}
		focus = max(focus, 0)
	case m.phase != "":
		steps = append(steps, "Status    "+m.phase)
	}
	return steps, focus
}

// barLines are the progress bars, after an empty line.
func (m *Model) barLines(width int) []string {
	var lines []string
	for _, b := range m.bars {
		if lines == nil {
			lines = []string{""}
		}
		lines = append(lines, b.render(width, m.now())...)
	}
	return lines
}

// bottom is the end of the screen: the failure, what to do and where the
// log is, within height; or that the PE finished; and the menu.
func (m *Model) bottom(width, height int) []string {
	var bottom []string
	if m.result == "failed" || m.failure != "" {
		fail := append([]string{strings.Repeat("!", min(width, 78))}, wrap("FAILED: "+m.failure, width)...)
		advice := wrap("What to do: "+Advice(m.failure, m.back), width)
		logs := append([]string{}, m.logPath...)
		if len(logs) == 0 {
			logs = []string{"(not saved)"}
		}
		logLines := wrap("Log: "+strings.Join(logs, ", "), width)
		var menu []string
		if m.menu != "" {
			menu = append([]string{""}, wrap(m.menu, width)...)
		}
		// On a small screen the error and the choices come first, then
		// the log's place, then the advice.
		room := height - 4 - len(menu)
		if len(fail) > room-1 {
			fail = fail[:max(room-1, 2)]
		}
		room -= len(fail)
		if len(logLines) > room {
			logLines = logLines[:max(room, 0)]
		}
		room -= len(logLines)
		if len(advice) > room {
			advice = advice[:max(room, 0)]
		}
		bottom = append(append(append(append(bottom, fail...), advice...), logLines...), menu...)
	} else {
		if m.result == "done" {
			bottom = append(bottom, "Finished: the PE has done its work.")
		}
		if m.menu != "" {
			bottom = append(bottom, "")
			bottom = append(bottom, wrap(m.menu, width)...)
		}
	}

	return bottom
}

func (b *bar) render(width int, now time.Time) []string {
	amount := func(n int64) string {
		if b.unit == "bytes" {
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		}
		return fmt.Sprintf("%d %s", n, b.unit)
	}
	// A rate that would read as zero is left out, and with it a time
	// left of hours: an apply waiting for the download's last chunk
	// is not about to take an hour.
	least := 0.5
	if b.unit == "bytes" {
		least = 0.05 * (1 << 20)
	}
	rate := ""
	if b.rate >= least {
		if b.unit == "bytes" {
			rate = fmt.Sprintf("%.1f MiB/s", b.rate/(1<<20))
		} else {
			rate = fmt.Sprintf("%.0f %s/s", b.rate, b.unit)
		}
	}
	line2 := amount(b.done)
	if b.total > 0 {
		line2 += " of " + amount(b.total)
	}
	if rate != "" {
		line2 += ", " + rate
	}
	if b.total > 0 && rate != "" && b.done < b.total {
		eta := time.Duration(float64(b.total-b.done) / b.rate * float64(time.Second))
		line2 += ", " + FormatETA(eta) + " left"
	}
	line2 += fmt.Sprintf(", %s elapsed", FormatETA(now.Sub(b.start)))
	head := clip(b.op, 24)
	barW := min(width, 78) - len(head) - 8
	if b.total <= 0 || barW < 10 {
		return []string{head + "  " + line2}
	}
	pct := min(int(b.done*100/b.total), 100)
	fill := barW * pct / 100
	return []string{
		fmt.Sprintf("%s [%s%s] %3d%%", head, strings.Repeat("#", fill), strings.Repeat(".", barW-fill), pct),
		"  " + line2,
	}
}

// FormatETA renders a duration as people read time left: 45 s, 3 min 20 s,
// 1 h 05 min.
func FormatETA(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	}
	return fmt.Sprintf("%d h %02d min", s/3600, s%3600/60)
}

func clip(s string, w int) string {
	r := []rune(s)
	if len(r) <= w {
		return s
	}
	if w <= 1 {
		return string(r[:w])
	}
	return string(r[:w-1]) + "~"
}

// wrap breaks s into lines of at most w runes, at spaces where it can.
func wrap(s string, w int) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for len([]rune(word)) > w {
				r := []rune(word)
				if line != "" {
					out = append(out, line)
					line = ""
				}
				out = append(out, string(r[:w]))
				word = string(r[w:])
			}
			switch {
			case line == "":
				line = word
			case len([]rune(line))+1+len([]rune(word)) <= w:
				line += " " + word
			default:
				out = append(out, line)
				line = word
			}
		}
		out = append(out, line)
	}
	return out
}
