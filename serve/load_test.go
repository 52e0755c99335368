package serve

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minint/minint/internal/progress"
)

// loadMachines simulated PEs report at once, each its events one after
// another as the PE's poster sends them; at most loadConns connections
// are open at a time (the bound on the test's sockets).
const (
	loadMachines = 1000
	loadConns    = 256
)

// loadEvents is the events per machine: MININT_LOAD_EVENTS, default 12
// (a short deployment: start, steps, progress, done).
func loadEvents(t testing.TB) int {
	if v := os.Getenv("MININT_LOAD_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			t.Fatalf("MININT_LOAD_EVENTS=%q: want a number ≥ 3", v)
		}
		return n
	}
	return 12
}

// load sends the events of loadMachines machines to url and returns the
// latencies of every POST and the wall time.
func load(t *testing.T, url string, perMachine int) ([]time.Duration, time.Duration) {
	tr := &http.Transport{MaxConnsPerHost: loadConns, MaxIdleConnsPerHost: loadConns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	lat := make([]time.Duration, loadMachines*perMachine)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for m := range loadMachines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mach := progress.NewMachine(fmt.Sprintf("SN%05d", m), fmt.Sprintf("52:54:00:00:%02x:%02x", m>>8, m&0xff), fmt.Sprintf("pc%d", m), "", "")
			for i := range perMachine {
				var body string
				switch {
				case i == 0:
					body = `{"event":"sequence","state":"start","msg":"load","data":{"steps":` + strconv.Itoa(perMachine-2) + `}}`
				case i == perMachine-1 && m%10 == 9:
					body = `{"event":"sequence","state":"failed","error":"simulated failure ` + strconv.Itoa(m) + `"}`
				case i == perMachine-1:
					body = `{"event":"sequence","state":"done","msg":"load"}`
				default:
					body = `{"event":"progress","op":"apply","state":"running","done":` + strconv.Itoa(i*1000) + `,"total":` + strconv.Itoa(perMachine*1000) + `,"unit":"bytes"}`
				}
				req, _ := http.NewRequest("POST", url+"/status", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set(progress.MachineHeader, mach.Header())
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat[m*perMachine+i] = time.Since(t0)
				if err != nil || resp.StatusCode != http.StatusNoContent {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d events refused or failed", n, len(lat))
	}
	return lat, wall
}

func p99(lat []time.Duration) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// TestLoad: 1,000 machines report at once to a server on 127.0.0.1; every
// event is acknowledged, every row adds up (events, final state), and so
// it does again after a restart, from the journal. It logs throughput and
// p99 latency beside a reference measured in the same run: the same
// requests to a handler that only reads them (no journal, no fsync).
func TestLoad(t *testing.T) {
	per := loadEvents(t)
	ref := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	refLat, refWall := load(t, ref.URL, per)
	ref.Close()

	dir := t.TempDir()
	s, hs := start(t, dir, nil)
	lat, wall := load(t, hs.URL, per)
	total := float64(loadMachines * per)
	t.Logf("%d machines × %d events, ≤%d connections: serve %.0f events/s, p99 %v; reference (no journal) %.0f events/s, p99 %v; serve/reference throughput %.2f",
		loadMachines, per, loadConns, total/wall.Seconds(), p99(lat).Round(10*time.Microsecond),
		total/refWall.Seconds(), p99(refLat).Round(10*time.Microsecond), refWall.Seconds()/wall.Seconds())
	check := func(s *Server, when string) {
		rows := s.Rows()
		if len(rows) != loadMachines {
			t.Fatalf("%s: %d rows, want %d", when, len(rows), loadMachines)
		}
		failed := 0
		for _, r := range rows {
			if r.Events != int64(per) {
				t.Fatalf("%s: %s has %d events, want %d", when, r.ID, r.Events, per)
			}
			if r.State == "failed" {
				failed++
			} else if r.State != "done" {
				t.Fatalf("%s: %s is %q", when, r.ID, r.State)
			}
		}
		if failed != loadMachines/10 || rows[0].State != "failed" {
			t.Fatalf("%s: %d failed machines (first row %s), want %d first", when, failed, rows[0].State, loadMachines/10)
		}
	}
	check(s, "live")
	s, _ = restart(t, s, hs)
	check(s, "after restart")
}
