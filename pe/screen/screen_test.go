package screen

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/progress"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func feed(t *testing.T, m *Model, evs ...progress.Event) {
	t.Helper()
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		// Through Write, as the PE feeds it, split mid-line on purpose.
		half := len(b) / 2
		m.Write(b[:half])
		m.Write(append(b[half:], '\n'))
	}
}

func inventory() progress.Event {
	return progress.Event{Kind: "inventory", Data: map[string]any{
		"vendor": "Dell Inc.", "model": "PowerEdge R640", "serial": "ABC1234", "cpus": 2.0, "memory_bytes": float64(2 << 30), "firmware": "uefi",
		"disks": []any{map[string]any{"name": "sda"}},
		"nics": []any{
			map[string]any{"name": "eth0", "mac": "52:54:00:12:34:56", "link": true, "addresses": []any{"10.0.2.15/24", "fe80::1/64"}},
			map[string]any{"name": "eth1", "mac": "52:54:00:12:34:57", "link": false},
		}}}
}

func sequence() []progress.Event {
	return []progress.Event{
		{Kind: "banner", Data: map[string]any{"version": "0123abcd", "kernel": "6.1.0-57-amd64"}},
		{Kind: "step", Op: "network", State: "done", Data: map[string]any{"leases": []any{map[string]any{"interface": "eth0.20", "address": "192.0.2.10/24"}}}},
		inventory(),
		{Kind: "sequence", State: "start", Msg: "e2e", Data: map[string]any{"steps": 3.0, "step_names": []any{"select-disk", "apply-image", "bootfiles"}, "step_types": []any{"select-disk", "apply-image", "bootfiles"}}},
		{Kind: "step", Op: "select-disk", State: "start", Data: map[string]any{"type": "select-disk", "index": 1.0, "count": 3.0}},
		{Kind: "step", Op: "select-disk", State: "done", Data: map[string]any{"type": "select-disk", "index": 1.0, "count": 3.0}},
		{Kind: "step", Op: "apply-image", State: "start", Data: map[string]any{"type": "apply-image", "index": 2.0, "count": 3.0}},
		{Kind: "progress", Op: "apply image 1", State: "start", Unit: "bytes", Total: 200 << 20},
	}
}

func has(t *testing.T, lines []string, want ...string) {
	t.Helper()
	page := strings.Join(lines, "\n")
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q:\n%s", w, page)
		}
	}
}

func TestRenderDeployment(t *testing.T) {
	c := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := New()
	m.now = c.now
	feed(t, m, sequence()...)
	c.t = c.t.Add(10 * time.Second)
	feed(t, m, progress.Event{Kind: "progress", Op: "apply image 1", State: "running", Unit: "bytes", Done: 50 << 20, Total: 200 << 20})
	m.Line("[2/3] apply-image: apply image 1 of sample.wim")
	lines := m.Render(80, 25)
	has(t, lines,
		"minint PE 0123abcd", "kernel 6.1.0-57-amd64",
		"Dell Inc. PowerEdge R640", "serial ABC1234", "2 CPU, 2048 MiB, UEFI firmware, 1 disk(s)",
		"eth0      52:54:00:12:34:56  10.0.2.15/24", "eth1      52:54:00:12:34:57  no link", "eth0.20", "192.0.2.10/24",
		"Task sequence e2e", "ok  1. select-disk", ">>  2. apply-image", "running", " 3. bootfiles",
		"apply image 1 [", " 25%", "50.0 MiB of 200.0 MiB, 5.0 MiB/s, 30 s left, 10 s elapsed",
		"[2/3] apply-image")
	if len(lines) > 25 {
		t.Errorf("%d lines for a 25-line screen", len(lines))
	}
	for _, l := range lines {
		if len([]rune(l)) > 80 {
			t.Errorf("line longer than 80: %q", l)
		}
		if strings.ContainsAny(l, "{}") {
			t.Errorf("raw JSON on the screen: %q", l)
		}
	}
}

// TestRenderPipelined: a pipelined deployment reports the fetch and the
// apply in turns; each keeps its own bar and, after a second, its rate,
// and a finished one leaves the other in place.
func TestRenderPipelined(t *testing.T) {
	c := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := New()
	m.now = c.now
	feed(t, m, sequence()...)
	feed(t, m, progress.Event{Kind: "progress", Op: "fetch sample.wim", State: "start", Unit: "bytes", Total: 100 << 20})
	report := func(fetched, applied int64) {
		c.t = c.t.Add(time.Second)
		feed(t, m,
			progress.Event{Kind: "progress", Op: "fetch sample.wim", State: "running", Unit: "bytes", Done: fetched, Total: 100 << 20},
			progress.Event{Kind: "progress", Op: "apply image 1", State: "running", Unit: "bytes", Done: applied, Total: 200 << 20})
	}
	// First the apply waits for the end of the file, where the WIM
	// keeps its metadata: no rate, and no time left of hours.
	report(4<<20, 1<<10)
	report(8<<20, 1<<10)
	has(t, m.Render(80, 25), "apply image 1 [", "  0.0 MiB of 200.0 MiB, 2 s elapsed", "8.0 MiB of 100.0 MiB, 4.0 MiB/s, 23 s left, 2 s elapsed")
	for i := int64(3); i <= 12; i++ {
		report(i*4<<20, (i-2)*8<<20)
	}
	lines := m.Render(80, 25)
	has(t, lines, "fetch sample.wim [", " 48%", "48.0 MiB of 100.0 MiB, 4.0 MiB/s, 13 s left, 12 s elapsed", "apply image 1 [", " 40%")
	page := strings.Join(lines, "\n")
	if !regexp.MustCompile(`80\.0 MiB of 200\.0 MiB, [78]\.\d MiB/s, \d+ s left, 12 s elapsed`).MatchString(page) {
		t.Errorf("no rate for the apply:\n%s", page)
	}
	feed(t, m, progress.Event{Kind: "progress", Op: "fetch sample.wim", State: "done", Unit: "bytes", Done: 100 << 20, Total: 100 << 20})
	page = strings.Join(m.Render(80, 25), "\n")
	if strings.Contains(page, "fetch sample.wim") || !strings.Contains(page, "80.0 MiB of 200.0 MiB") {
		t.Errorf("after the fetch's end:\n%s", page)
	}
	feed(t, m, progress.Event{Kind: "step", Op: "apply-image", State: "done", Data: map[string]any{"type": "apply-image", "index": 2.0}})
	if page := strings.Join(m.Render(80, 25), "\n"); strings.Contains(page, "apply image 1") {
		t.Errorf("a bar outlives its step:\n%s", page)
	}
}

func TestRenderFailure(t *testing.T) {
	m := New()
	feed(t, m, sequence()...)
	feed(t, m,
		progress.Event{Kind: "step", Op: "apply-image", State: "failed", Error: "fetch: manifest.sig: signature does not verify", Data: map[string]any{"type": "apply-image", "index": 2.0}},
		progress.Event{Kind: "log", State: "saved", Msg: "/mnt/target/minint/failure-20260102T030405Z.log"},
		progress.Event{Kind: "pe", State: "failed", Error: "task sequence: step failed: \"apply-image\": signature does not verify", Data: map[string]any{"log": "/run/minint/pe.log"}},
	)
	m.SetMenu("[s] shell   [r] retry   [b] reboot   [p] power off      (power off in 60 s)")
	lines := m.Render(80, 25)
	has(t, lines, "!!  2. apply-image", "failed", "FAILED: task sequence", "signature does not verify",
		"What to do: The package or sequence is not signed", "Log: /run/minint/pe.log, /mnt/target/minint/failure-20260102T030405Z.log",
		"[s] shell", "[r] retry", "[b] reboot", "[p] power off", "Dell Inc. PowerEdge R640")
	if len(lines) > 25 {
		t.Errorf("%d lines", len(lines))
	}
	// On a small screen the failure and the machine still show.
	has(t, m.Render(40, 12), "FAILED", "[s] shell", "[p] power", "minint PE")
	m.Reset()
	if page := strings.Join(m.Render(80, 25), "\n"); strings.Contains(page, "FAILED") {
		t.Errorf("after Reset:\n%s", page)
	}
}

// TestRenderDone: a PE that finished says so above its menu, with no bars
// left and no failure.
func TestRenderDone(t *testing.T) {
	m := New()
	feed(t, m, sequence()...)
	feed(t, m, progress.Event{Kind: "pe", State: "done"})
	m.SetMenu("[r] reboot   [p] power off")
	page := strings.Join(m.Render(80, 25), "\n")
	has(t, strings.Split(page, "\n"), "Finished: the PE has done its work.\n\n[r] reboot [p] power off")
	if strings.Contains(page, "apply image 1 [") || strings.Contains(page, "FAILED") {
		t.Errorf("bars or a failure after done:\n%s", page)
	}
}

// TestRenderRetryAndContinued: a step waiting to try again shows which
// try comes next; one that failed with continue-on-error shows so, and
// the run goes on.
func TestRenderRetryAndContinued(t *testing.T) {
	m := New()
	feed(t, m, sequence()[:4]...)
	feed(t, m,
		progress.Event{Kind: "step", Op: "select-disk", State: "start", Data: map[string]any{"type": "select-disk", "index": 1.0, "count": 3.0}},
		progress.Event{Kind: "step", Op: "select-disk", State: "retry", Msg: "try 1 of 4 failed; again in 10s", Error: "no disk matches", Data: map[string]any{"type": "select-disk", "index": 1.0, "count": 3.0, "try": 1.0, "tries": 4.0}},
	)
	has(t, m.Render(80, 25), ">>  1. select-disk", "try 2/4")
	feed(t, m,
		progress.Event{Kind: "step", Op: "select-disk", State: "done", Data: map[string]any{"type": "select-disk", "index": 1.0, "count": 3.0}},
		progress.Event{Kind: "step", Op: "apply-image", State: "continued", Error: "exit status 3", Data: map[string]any{"type": "run", "index": 2.0, "count": 3.0}},
	)
	lines := m.Render(80, 25)
	has(t, lines, "ok  1. select-disk", "!-  2. apply-image", "continued")
	if page := strings.Join(lines, "\n"); strings.Contains(page, "try 2/4") || strings.Contains(page, "FAILED") {
		t.Errorf("page:\n%s", page)
	}
}

// TestRenderManySteps: a long sequence that failed late still shows the
// failed step on a 24-line screen, with the failure and the menu.
func TestRenderManySteps(t *testing.T) {
	m := New()
	var names []any
	for i := 1; i <= 14; i++ {
		names = append(names, fmt.Sprintf("step-%02d", i))
	}
	feed(t, m, inventory(), progress.Event{Kind: "sequence", State: "start", Msg: "long", Data: map[string]any{"step_names": names}})
	for i := 1; i <= 11; i++ {
		state := "done"
		if i == 11 {
			state = "failed"
		}
		feed(t, m, progress.Event{Kind: "step", Op: fmt.Sprintf("step-%02d", i), State: state, Data: map[string]any{"index": float64(i)}})
	}
	feed(t, m, progress.Event{Kind: "pe", State: "failed", Error: "step-11 broke"})
	m.SetMenu("[s] shell   [r] retry   [b] reboot   [p] power off")
	lines := m.Render(80, 24)
	has(t, lines, "!! 11. step-11", "steps shown", "FAILED: step-11 broke", "[p] power off", "Machine")
	if len(lines) > 24 {
		t.Errorf("%d lines", len(lines))
	}
}

func TestAdvice(t *testing.T) {
	for err, want := range map[string]string{
		"kernel command line: bad network configuration: ip=…": "boot parameters",
		"no DHCP lease on eth0":                                "static address",
		"step failed: checksum mismatch":                       "damaged",
		"something nobody foresaw":                             "Read the log",
		`step failed: "partition" (partition, line 9): refusing to partition a disk that holds a system deployed before: /dev/vda …`: "minint.redo=1",
		`step failed: "partition" (partition, line 9): refusing to touch a disk whose system is hibernated: /dev/vda partition 3 …`:  "shut it down instead of hibernating",
	} {
		if got := Advice(err, false); !strings.Contains(got, want) {
			t.Errorf("Advice(%q) = %q, want it to say %q", err, got, want)
		}
	}
	if !strings.Contains(Advice("x", true), "installed system is intact") {
		t.Error("a failed refresh that goes back does not say so")
	}
}

func TestFrame(t *testing.T) {
	f := string(Frame([]string{"a", "b"}))
	if f != "\x1b[Ha\x1b[K\r\nb\x1b[K\x1b[J" {
		t.Errorf("frame %q", f)
	}
}

func TestFormatETA(t *testing.T) {
	for d, want := range map[time.Duration]string{45 * time.Second: "45 s", 200 * time.Second: "3 min 20 s", 3900 * time.Second: "1 h 05 min"} {
		if got := FormatETA(d); got != want {
			t.Errorf("FormatETA(%s) = %q, want %q", d, got, want)
		}
	}
}
