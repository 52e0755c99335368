package serve

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/internal/progress"
)

// chromium finds Debian's chromium; without it the test is skipped, or
// fails when MININT_E2E=1 says every test has to run.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("MININT_E2E") == "1" {
		t.Fatal("chromium not installed (scripts/setup-host.sh installs it)")
	}
	t.Skip("chromium not installed (scripts/setup-host.sh installs it)")
	return ""
}

// headless runs chromium on url with args (--dump-dom, --screenshot=…).
func headless(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(a, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// site fills a server with the machines of a small deployment day: one
// failed with its log, two running (one with a hostile hostname), two done
// (one of them in an earlier boot, by its journal).
func site(t *testing.T, url string) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	at := func(s int) string {
		return fmt.Sprintf(`"time":%q`, t0.Add(time.Duration(s)*time.Second).Format(time.RFC3339))
	}
	steps := `"data":{"steps":8}`
	m := func(serial, mac, host, ip string) progress.Machine {
		return progress.NewMachine(serial, mac, host, ip, "ACME Desk 600 G9")
	}
	lab1, lab2 := m("CZC2041AB1", "3c:52:82:0a:11:01", "lab-pc-01", "10.20.0.101"), m("CZC2041AB2", "3c:52:82:0a:11:02", "lab-pc-02", "10.20.0.102")
	lab3, lab4 := m("CZC2041AB3", "3c:52:82:0a:11:03", "lab-pc-03", "10.20.0.103"), m("", "3c:52:82:0a:11:04", "", "10.20.0.104")
	evil := m("CZC2041AB5", "3c:52:82:0a:11:05", `<img src=x onerror="document.title='owned'">`, "10.20.0.105")
	for _, mc := range []progress.Machine{lab1, lab2, lab3, lab4, evil} {
		mustPost(t, url, mc, `{`+at(0)+`,"event":"sequence","state":"start","msg":"Lab desktops 2026.12",`+steps+`}`)
	}
	mustPost(t, url, lab1, `{`+at(300)+`,"event":"sequence","state":"done","msg":"Lab desktops 2026.12"}`)
	mustPost(t, url, lab2, `{`+at(20)+`,"event":"sequence","state":"done","msg":"Lab desktops 2026.12","data":{"earlier_boot":true}}`)
	mustPost(t, url, lab3, `{`+at(60)+`,"event":"step","state":"start","op":"apply-image","data":{"index":5,"count":8}}`)
	mustPost(t, url, lab3, `{`+at(60)+`,"event":"progress","op":"apply","state":"start","total":4294967296,"unit":"bytes"}`)
	mustPost(t, url, lab3, `{`+at(70)+`,"event":"progress","op":"apply","state":"running","done":1395864371,"total":4294967296,"unit":"bytes"}`)
	mustPost(t, url, evil, `{`+at(40)+`,"event":"step","state":"start","op":"fetch","data":{"index":3,"count":8}}`)
	mustPost(t, url, evil, `{`+at(40)+`,"event":"progress","op":"fetch","state":"start","total":2147483648,"unit":"bytes"}`)
	mustPost(t, url, evil, `{`+at(50)+`,"event":"progress","op":"fetch","state":"running","done":524288000,"total":2147483648,"unit":"bytes"}`)
	mustPost(t, url, lab4, `{`+at(20)+`,"event":"step","state":"failed","op":"select-disk","data":{"index":2,"count":8},"error":"no disk matches transport=nvme, min-size 200GB (found: sda 128 GB sata)"}`)
	mustPost(t, url, lab4, `{`+at(20)+`,"event":"sequence","state":"failed","error":"step failed: \"select-disk\" (select-disk, line 6): no disk matches transport=nvme, min-size 200GB (found: sda 128 GB sata)"}`)
	if code, msg := post(t, url, lab4, map[string]string{"X-Minint-Log": "failure"}, "Running Lab desktops 2026.12 (8 steps)\nselect-disk: FAILED\n"); code != 201 {
		t.Fatalf("log: %d %s", code, msg)
	}
}

// TestDashboardInChromium opens the dashboard in headless Chromium and
// checks the DOM: one row per machine, the failed one first with its
// error and log link, progress with rate and ETA, a hostile hostname shown
// as text and not run, and a change made while the page is open arriving
// over the stream. Screenshots (desktop and phone) go to
// MININT_SCREENSHOTS (docs/ keeps them), else to a temporary directory.
func TestDashboardInChromium(t *testing.T) {
	bin := chromium(t)
	s, err := New(Options{Dir: t.TempDir(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	late := progress.NewMachine("CZC2041AB3", "3c:52:82:0a:11:03", "lab-pc-03", "10.20.0.103", "")
	var once sync.Once
	// Headless Chromium dumps the DOM once the page is quiet, which an
	// open stream never is: here every stream ends after its first rows,
	// and the page's EventSource reconnects. After the first, lab-pc-03
	// finishes: only a stream can bring that to the page.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status/stream" {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			r = r.WithContext(ctx)
			w = &onFlush{ResponseWriter: w, f: func() {
				once.Do(func() {
					s.j.add(record{At: time.Now().UTC(), Machine: late, Event: []byte(`{"event":"sequence","state":"done"}`)})
				})
				cancel()
			}}
		}
		s.ServeHTTP(w, r)
	}))
	defer hs.Close()
	site(t, hs.URL)

	dom := string(headless(t, bin, hs.URL+"/", "--dump-dom"))
	rowRe := regexp.MustCompile(`(?s)<tr class="(\w+)" data-id="([^"]*)">(.*?)</tr>`)
	rows := rowRe.FindAllStringSubmatch(dom, -1)
	if len(rows) != 5 {
		t.Fatalf("%d rows in the DOM:\n%s", len(rows), dom)
	}
	if rows[0][1] != "failed" || rows[0][2] != "3c:52:82:0a:11:04" || !strings.Contains(rows[0][3], "no disk matches transport=nvme") ||
		!regexp.MustCompile(`<a href="/status/logs/[^"]+\.log">log</a>`).MatchString(rows[0][3]) {
		t.Errorf("first row is not the failed machine with error and log: %q", rows[0])
	}
	if !strings.Contains(dom, "fetch 24% of 2.0 GiB, 50.0 MiB/s, 31s left") {
		t.Errorf("no progress with rate and ETA for the running machine:\n%s", dom)
	}
	if !strings.Contains(dom, "&lt;img src=x onerror=") || strings.Contains(dom, "<img") || strings.Contains(dom, "<title>owned") {
		t.Errorf("the hostile hostname was not shown as text:\n%s", dom)
	}
	var doneRow string
	for _, r := range rows {
		if r[2] == "CZC2041AB3" {
			doneRow = r[1]
		}
		if earlier := strings.Contains(r[3], `<div class="note">`+EarlierBoot+`</div>`); earlier != (r[2] == "CZC2041AB2") {
			t.Errorf("row %s: note %q shown %v", r[2], EarlierBoot, earlier)
		}
	}
	if doneRow != "done" {
		t.Errorf("lab-pc-03 finished while the page was open, the page shows %q", doneRow)
	}

	dir := os.Getenv("MININT_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, shot := range []struct{ name, size string }{{"serve-dashboard.png", "1280,560"}, {"serve-dashboard-phone.png", "412,900"}} {
		name, _ := filepath.Abs(filepath.Join(dir, shot.name))
		headless(t, bin, hs.URL+"/", "--screenshot="+name, "--window-size="+shot.size)
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w := fmt.Sprint(img.Bounds().Dx()); !strings.HasPrefix(shot.size, w+",") {
			t.Errorf("%s is %v wide, want %s", name, img.Bounds().Dx(), shot.size)
		}
	}
}

// onFlush calls f on every Flush, after the data went out.
type onFlush struct {
	http.ResponseWriter
	f func()
}

func (o *onFlush) Flush() {
	o.ResponseWriter.(http.Flusher).Flush()
	o.f()
}

func (o *onFlush) Unwrap() http.ResponseWriter { return o.ResponseWriter }
