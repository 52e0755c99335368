// Package progress presents long operations to people and machines at once:
// a redrawn bar when the output is a terminal, a few plain lines when it is
// not, and JSON-lines events (one object per line) for programs that watch.
//
// Libraries such as wim/ and diskops/ do not import this package; they take a
// callback (func(done, total int64) or similar) and the command wires that
// callback to a Task.
package progress

import (
	"encoding/json"
	"fmt"
	"github.com/minint/minint/internal/plural"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minint/minint/internal/redact"
	"golang.org/x/sys/unix"
)

// Event is one JSON line. Fields that are zero are left out.
type Event struct {
	Time  time.Time      `json:"time"`
	Kind  string         `json:"event"`           // e.g. "progress", "step", "inventory"
	Op    string         `json:"op,omitempty"`    // what is being done: "apply", "fetch", …
	State string         `json:"state,omitempty"` // "start", "running", "done", "failed"
	Done  int64          `json:"done,omitempty"`
	Total int64          `json:"total,omitempty"`
	Unit  string         `json:"unit,omitempty"` // "bytes", "files", …
	Msg   string         `json:"msg,omitempty"`
	Error string         `json:"error,omitempty"`
	Data  map[string]any `json:"data,omitempty"`
}

// Reporter writes human progress to Human and events to JSON. Either may be
// nil. It is safe for concurrent use.
type Reporter struct {
	mu       sync.Mutex
	human    io.Writer
	json     io.Writer
	terminal bool
	now      func() time.Time
}

// New returns a Reporter. human is usually os.Stderr; whether it is a
// terminal decides between a redrawn bar and plain lines. jsonOut receives
// events as JSON lines (nil for none).
func New(human, jsonOut io.Writer) *Reporter {
	return &Reporter{human: human, json: jsonOut, terminal: IsTerminal(human), now: time.Now}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Emit writes one event as a JSON line.
func (r *Reporter) Emit(e Event) {
	if r == nil || r.json == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = r.now().UTC()
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "&" stays "&", for redact.Text
	if err := enc.Encode(e); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Whatever an event quotes (an error, a URL) leaves without secrets.
	io.WriteString(r.json, redact.Text(b.String()))
}

// Printf writes a line for people (and nothing for machines).
func (r *Reporter) Printf(format string, a ...any) {
	if r == nil || r.human == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := redact.Text(fmt.Sprintf(format, a...))
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	io.WriteString(r.human, s)
}

// Task is one long operation with a known (or zero, meaning unknown) total.
type Task struct {
	r          *Reporter
	op, unit   string
	total      int64
	mu         sync.Mutex
	done       int64
	start      time.Time
	lastDraw   time.Time
	lastEvent  time.Time
	lastPlainP int
}

// Start begins a task. unit is "bytes" for byte counts (shown as MiB), or
// the singular noun counted, such as "file" ("1 file", "2 files").
func (r *Reporter) Start(op string, total int64, unit string) *Task {
	t := &Task{r: r, op: op, unit: unit, total: total, start: r.now(), lastPlainP: -1}
	r.Emit(Event{Kind: "progress", Op: op, State: "start", Total: total, Unit: unit})
	t.draw(true)
	return t
}

// Add records n more units done.
func (t *Task) Add(n int64) { t.Set(-1, n) }

// Set records the absolute amount done (done ≥ 0), or adds delta when done < 0.
// A total learned late can be given with SetTotal.
func (t *Task) Set(done, delta int64) {
	t.mu.Lock()
	if done >= 0 {
		t.done = done
	} else {
		t.done += delta
	}
	t.mu.Unlock()
	t.draw(false)
}

// SetTotal changes the total.
func (t *Task) SetTotal(total int64) {
	t.mu.Lock()
	t.total = total
	t.mu.Unlock()
}

// Callback adapts the task to the func(done, total) hooks libraries take.
func (t *Task) Callback() func(done, total int64) {
	return func(done, total int64) {
		if total > 0 {
			t.SetTotal(total)
		}
		t.Set(done, 0)
	}
}

// Finish ends the task, successfully when err is nil.
func (t *Task) Finish(err error) {
	t.mu.Lock()
	done, total := t.done, t.total
	t.mu.Unlock()
	r := t.r
	elapsed := r.now().Sub(t.start).Round(time.Millisecond)
	e := Event{Kind: "progress", Op: t.op, State: "done", Done: done, Total: total, Unit: t.unit,
		Data: map[string]any{"seconds": elapsed.Seconds()}}
	if err != nil {
		e.State, e.Error = "failed", err.Error()
	}
	r.Emit(e)
	if r.human == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.terminal {
		io.WriteString(r.human, "\r\x1b[K")
	}
	status := "done"
	if err != nil {
		status = "FAILED"
	}
	fmt.Fprintf(r.human, "%s: %s, %s in %s\n", t.op, status, t.amount(done), elapsed)
}

func (t *Task) amount(n int64) string {
	if t.unit == "bytes" {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	if t.unit == "" {
		return fmt.Sprint(n)
	}
	return plural.Count(n, t.unit)
}

func (t *Task) draw(first bool) {
	r := t.r
	now := r.now()
	t.mu.Lock()
	done, total := t.done, t.total
	emit := first || now.Sub(t.lastEvent) >= time.Second
	if emit {
		t.lastEvent = now
	}
	redraw := r.terminal && (first || now.Sub(t.lastDraw) >= 100*time.Millisecond)
	if redraw {
		t.lastDraw = now
	}
	pct := -1
	if total > 0 {
		pct = int(done * 100 / total)
	}
	plain := !r.terminal && pct >= 0 && pct/25 > t.lastPlainP/25 && !first
	if plain {
		t.lastPlainP = pct
	}
	t.mu.Unlock()

	if emit && !first {
		r.Emit(Event{Kind: "progress", Op: t.op, State: "running", Done: done, Total: total, Unit: t.unit})
	}
	if r.human == nil {
		return
	}
	switch {
	case redraw:
		var line string
		if pct >= 0 {
			const width = 30
			fill := int(int64(width) * done / total)
			if fill > width {
				fill = width
			}
			line = fmt.Sprintf("\r\x1b[K%s [%s%s] %3d%% %s", t.op, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, t.amount(done))
		} else {
			line = fmt.Sprintf("\r\x1b[K%s %s", t.op, t.amount(done))
		}
		if secs := now.Sub(t.start).Seconds(); secs > 0.5 && t.unit == "bytes" {
			line += fmt.Sprintf(" %.1f MiB/s", float64(done)/(1<<20)/secs)
		}
		r.mu.Lock()
		io.WriteString(r.human, line)
		r.mu.Unlock()
	case plain:
		line := fmt.Sprintf("%s: %d%% (%s of %s", t.op, pct, t.amount(done), t.amount(total))
		if secs := now.Sub(t.start).Seconds(); secs > 0.5 && done > 0 {
			rate := float64(done) / secs
			if t.unit == "bytes" {
				line += fmt.Sprintf(", %.1f MiB/s", rate/(1<<20))
			} else {
				line += fmt.Sprintf(", %.0f %s/s", rate, t.unit)
			}
			if done < total {
				line += fmt.Sprintf(", %s left", time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second))
			}
		}
		r.Printf("%s)", line)
	}
}
