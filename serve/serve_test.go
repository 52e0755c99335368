package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/progress"
)

const token = "s3cret-token"

// start runs a Server on dir (state in dir/.minint-serve) behind a real
// HTTP server on 127.0.0.1.
func start(t *testing.T, dir string, mod func(*Options)) (*Server, *httptest.Server) {
	t.Helper()
	o := Options{Dir: dir, Token: token}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs
}

// restart closes s and opens a new Server on the same directories.
func restart(t *testing.T, s *Server, hs *httptest.Server) (*Server, *httptest.Server) {
	t.Helper()
	hs.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o := s.opt
	return start(t, o.Dir, func(n *Options) { *n = o })
}

var pc17 = progress.NewMachine("PC17-SN", "52:54:00:12:34:56", "pc17", "10.0.2.15", "QEMU")

// post sends body to /status as machine m with the write token.
func post(t *testing.T, url string, m progress.Machine, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/status", strings.NewReader(body))
	req.SetBasicAuth("", token)
	req.Header.Set("Content-Type", "application/json")
	if m.ID != "" {
		req.Header.Set(progress.MachineHeader, m.Header())
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func event(kind, state, op string, extra string) string {
	s := fmt.Sprintf(`{"time":"2026-12-02T10:00:00Z","event":%q,"state":%q`, kind, state)
	if op != "" {
		s += fmt.Sprintf(`,"op":%q`, op)
	}
	return s + extra + "}"
}

func mustPost(t *testing.T, url string, m progress.Machine, body string) {
	t.Helper()
	if code, msg := post(t, url, m, nil, body); code != http.StatusNoContent {
		t.Fatalf("POST %s: %d %s", body, code, msg)
	}
}

func row(t *testing.T, s *Server, id string) Row {
	t.Helper()
	for _, r := range s.Rows() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no row %q in %+v", id, s.Rows())
	return Row{}
}

// TestDeploymentRow: a deployment's events add up to its row (step,
// progress with rate and ETA, done); a restart of the server keeps it, and
// the machine reporting again after a reboot continues the same row.
func TestDeploymentRow(t *testing.T) {
	dir := t.TempDir()
	s, hs := start(t, dir, nil)
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"new computer","data":{"steps":5}`))
	mustPost(t, hs.URL, pc17, event("step", "start", "fetch", `,"data":{"index":3,"count":5}`))
	mustPost(t, hs.URL, pc17, `{"time":"2026-12-02T10:00:00Z","event":"progress","op":"fetch","state":"start","total":1000,"unit":"bytes"}`)
	// Two events as JSON lines in one request.
	mustPost(t, hs.URL, pc17, `{"time":"2026-12-02T10:00:02Z","event":"progress","op":"fetch","state":"running","done":200,"total":1000,"unit":"bytes"}
{"time":"2026-12-02T10:00:04Z","event":"progress","op":"fetch","state":"running","done":400,"total":1000,"unit":"bytes"}`)
	r := row(t, s, pc17.ID)
	if r.State != "running" || r.Step != "fetch" || r.StepIndex != 3 || r.StepCount != 5 || r.Sequence != "new computer" {
		t.Errorf("running row: %+v", r)
	}
	if r.Done != 400 || r.Total != 1000 || r.Rate != 100 || r.ETA != 6 {
		t.Errorf("progress: done %d of %d, rate %v, eta %v; want 400 of 1000, 100/s, 6 s", r.Done, r.Total, r.Rate, r.ETA)
	}
	if r.Hostname != "pc17" || r.MAC != "52:54:00:12:34:56" || r.Serial != "PC17-SN" || r.IP != "10.0.2.15" {
		t.Errorf("identity: %+v", r)
	}
	s, hs = restart(t, s, hs)
	if got := row(t, s, pc17.ID); got.Done != 400 || got.Events != 5 || got.State != "running" {
		t.Errorf("after restart: %+v", got)
	}
	// Power cut, reboot: the sequence starts again and resumes.
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"new computer","data":{"steps":5}`))
	mustPost(t, hs.URL, pc17, event("sequence", "resume", "", ""))
	mustPost(t, hs.URL, pc17, event("sequence", "done", "", `,"msg":"new computer"`))
	r = row(t, s, pc17.ID)
	if r.State != "done" || r.Runs != 2 || r.Events != 8 || len(s.Rows()) != 1 || r.Note != "" {
		t.Errorf("after reboot: %+v (%d rows)", r, len(s.Rows()))
	}
	// Booted again: the journal says it finished, nothing is done, and
	// the row says so; a real run after it clears that.
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"new computer","data":{"steps":5}`))
	mustPost(t, hs.URL, pc17, event("sequence", "done", "", `,"msg":"new computer","data":{"earlier_boot":true}`))
	if r = row(t, s, pc17.ID); r.State != "done" || r.Note != EarlierBoot {
		t.Errorf("after a boot that did nothing: %+v", r)
	}
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"new computer","data":{"steps":5}`))
	if r = row(t, s, pc17.ID); r.State != "running" || r.Note != "" {
		t.Errorf("a new run keeps the note: %+v", r)
	}
}

// TestFailureAndLog: a failed machine shows its error and the log it
// uploaded, and sorts first.
func TestFailureAndLog(t *testing.T) {
	s, hs := start(t, t.TempDir(), nil)
	ok := progress.NewMachine("", "52:54:00:00:00:01", "", "", "")
	mustPost(t, hs.URL, ok, event("sequence", "done", "", ""))
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"new computer"`))
	mustPost(t, hs.URL, pc17, event("step", "failed", "fetch", `,"error":"GET http://host/os.wim: 404 Not Found"`))
	mustPost(t, hs.URL, pc17, event("sequence", "failed", "", `,"error":"step failed: \"fetch\" (fetch, line 9): GET http://host/os.wim: 404 Not Found"`))
	code, msg := post(t, hs.URL, pc17, map[string]string{"X-Minint-Log": "failure", "Content-Type": "text/plain"}, "line 1\n<script>alert(1)</script>\nFAILED: 404\n")
	if code != http.StatusCreated {
		t.Fatalf("log upload: %d %s", code, msg)
	}
	rows := s.Rows()
	if rows[0].ID != pc17.ID || rows[0].State != "failed" || !strings.Contains(rows[0].Error, "404 Not Found") || rows[1].State != "done" {
		t.Fatalf("rows: %+v", rows)
	}
	resp, err := http.Get(hs.URL + rows[0].Log)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "FAILED: 404") || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET %s: %d %v %q", rows[0].Log, resp.StatusCode, resp.Header, b)
	}
	s, hs = restart(t, s, hs)
	if r := row(t, s, pc17.ID); r.Log != rows[0].Log {
		t.Errorf("after restart the log link is %q, was %q", r.Log, rows[0].Log)
	}
}

// TestBadRequests: wrong or missing tokens, malformed, kindless,
// oversized and anonymous events are refused with a 4xx that says why,
// and what was stored before stays.
func TestBadRequests(t *testing.T) {
	s, hs := start(t, t.TempDir(), func(o *Options) { o.MaxEvent = 1024 })
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"kept"`))
	for _, c := range []struct {
		name, auth string
		m          progress.Machine
		body       string
		code       int
		says       string
	}{
		{"no token", "none", pc17, event("sequence", "done", "", ""), 401, "write token"},
		{"wrong token", "wrong", pc17, event("sequence", "done", "", ""), 401, "wrong write token"},
		{"not JSON", "", pc17, `{"event":"step",`, 400, "malformed event on line 1"},
		{"no kind", "", pc17, `{"state":"done"}`, 400, `no "event" kind`},
		{"second line bad", "", pc17, event("sequence", "done", "", "") + "\nnope", 400, "line 2"},
		{"empty", "", pc17, "\n", 400, "no event"},
		{"oversized", "", pc17, `{"event":"x","msg":"` + strings.Repeat("a", 2000) + `"}`, 413, "larger than 1024 bytes"},
		{"anonymous", "", progress.Machine{}, event("sequence", "done", "", ""), 400, "X-Minint-Machine"},
	} {
		req, _ := http.NewRequest("POST", hs.URL+"/status", strings.NewReader(c.body))
		switch c.auth {
		case "":
			req.Header.Set("Authorization", "Bearer "+token)
		case "wrong":
			req.SetBasicAuth("", "guess")
		}
		if c.m.ID != "" {
			req.Header.Set(progress.MachineHeader, c.m.Header())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, resp.StatusCode, b, c.code, c.says)
		}
	}
	if r := row(t, s, pc17.ID); r.State != "running" || r.Sequence != "kept" || r.Events != 1 {
		t.Errorf("a refused request changed the row: %+v", r)
	}
	s, _ = restart(t, s, hs)
	if r := row(t, s, pc17.ID); r.Events != 1 {
		t.Errorf("journal holds refused events: %+v", r)
	}
}

// TestStalledAndEndlessLogs: a log upload that stops sending is cut after
// Idle (408), one that never ends is cut at MaxLog (413); neither leaves a
// file or a row change behind.
func TestStalledAndEndlessLogs(t *testing.T) {
	dir := t.TempDir()
	s, hs := start(t, dir, func(o *Options) { o.Idle = 300 * time.Millisecond; o.MaxLog = 1 << 20 })
	addr := strings.TrimPrefix(hs.URL, "http://")
	head := func(length string) string {
		return "POST /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\nX-Minint-Log: failure\r\n" +
			progress.MachineHeader + ": " + pc17.Header() + "\r\n" + length + "\r\n"
	}
	// Stalled: announces 1 MiB, sends 10 bytes, then nothing.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, head("Content-Length: 1000000\r\n")+"0123456789")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "nothing received for 300ms") {
		t.Errorf("stalled log: %d %q", resp.StatusCode, b)
	}
	// Endless: chunked, sends until the server stops it.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprint(c2, head("Transfer-Encoding: chunked\r\n"))
	go func() {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("y", 64<<10))
		for {
			if _, err := io.WriteString(c2, chunk); err != nil {
				return
			}
		}
	}()
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than 1048576 bytes") {
		t.Errorf("endless log: %d %q", resp.StatusCode, b)
	}
	c2.Close()
	if len(s.Rows()) != 0 {
		t.Errorf("refused logs made rows: %+v", s.Rows())
	}
	var files []string
	filepath.Walk(filepath.Join(dir, ".minint-serve/logs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Errorf("refused logs left files: %v", files)
	}
}

// TestJournalRecovery: a last line torn by a crash is dropped (it was
// never acknowledged) and the server starts; a damaged line in the middle
// stops it with an error naming the line instead of dropping what follows.
func TestJournalRecovery(t *testing.T) {
	dir := t.TempDir()
	s, hs := start(t, dir, nil)
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"one"`))
	mustPost(t, hs.URL, pc17, event("sequence", "done", "", ""))
	hs.Close()
	s.Close()
	name := filepath.Join(dir, ".minint-serve/events.jsonl")
	good, _ := os.ReadFile(name)
	os.WriteFile(name, append(append([]byte{}, good...), `{"seq":3,"at":"2026-12-02T10:`...), 0o600)
	s, hs = start(t, dir, nil)
	if r := row(t, s, pc17.ID); r.State != "done" || r.Events != 2 {
		t.Errorf("after a torn tail: %+v", r)
	}
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"two"`))
	hs.Close()
	s.Close()
	after, _ := os.ReadFile(name)
	lines := strings.Split(strings.TrimSuffix(string(after), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"seq":3`) {
		t.Errorf("journal after the torn tail and one more event:\n%s", after)
	}
	damaged := strings.Replace(string(after), `"seq":2`, `"seq":2,,`, 1)
	os.WriteFile(name, []byte(damaged), 0o600)
	if _, err := New(Options{Dir: dir, Token: token}); err == nil || !strings.Contains(err.Error(), "events.jsonl:2: damaged journal line") {
		t.Errorf("damaged middle line: %v", err)
	}
}

// TestDashboardAuthAndStream: the dashboard, its JSON and its stream need
// the dashboard's credentials when set; the stream sends all rows, then a
// row whenever its machine reports.
func TestDashboardAuthAndStream(t *testing.T) {
	_, hs := start(t, t.TempDir(), func(o *Options) { o.DashboardUser, o.DashboardPassword = "tech", "pw" })
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", `,"msg":"new computer"`))
	for _, p := range []string{"/", "/status/machines", "/status/stream", "/status/app.js"} {
		resp, err := http.Get(hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s without credentials: %d", p, resp.StatusCode)
		}
	}
	get := func(p string) *http.Response {
		req, _ := http.NewRequest("GET", hs.URL+p, nil)
		req.SetBasicAuth("tech", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("/")
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") || !strings.Contains(string(page), `"sequence":"new computer"`) {
		t.Errorf("page: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	resp = get("/status/stream")
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	next := func() (string, Row, []Row) {
		var kind, data string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			case line == "" && kind != "":
				var r Row
				var rs []Row
				if kind == "rows" {
					json.Unmarshal([]byte(data), &rs)
				} else {
					json.Unmarshal([]byte(data), &r)
				}
				return kind, r, rs
			}
		}
	}
	if kind, _, rs := next(); kind != "rows" || len(rs) != 1 || rs[0].State != "running" {
		t.Fatalf("first stream event: %s %+v", kind, rs)
	}
	mustPost(t, hs.URL, pc17, event("sequence", "failed", "", `,"error":"disk on fire"`))
	if kind, r, _ := next(); kind != "row" || r.State != "failed" || r.Error != "disk on fire" {
		t.Errorf("update: %s %+v", kind, r)
	}
}

func TestServeShutsDown(t *testing.T) {
	s, err := New(Options{Dir: t.TempDir(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, ln) }()
	mustPost(t, "http://"+ln.Addr().String(), pc17, event("sequence", "start", "", ""))
	// An open stream must not hold the shutdown.
	resp, err := http.Get("http://" + ln.Addr().String() + "/status/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
