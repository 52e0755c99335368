package serve

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

//go:embed assets
var assets embed.FS

var pageTmpl = template.Must(template.ParseFS(assets, "assets/dashboard.html"))

// csp allows the page only its own script and style: nothing a machine
// reports can run, even if it got into the markup.
const csp = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page is the dashboard. The rows of the moment are in the page (as JSON
// data, rendered by app.js), so it is complete without waiting for the
// stream, which then keeps it current.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	// json.Marshal escapes <, > and &: a hostname cannot end the script.
	rows, _ := json.Marshal(s.Rows())
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, struct{ Rows template.JS }{template.JS(rows)}); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

func serveAsset(name, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("assets/" + name)
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
	}
}

// subscriber is one open stream. dirty collects the machines changed
// since it last wrote, so a slow reader costs at most one entry per
// machine, never a queue of events.
type subscriber struct {
	dirty map[string]bool // guarded by Server.mu
	wake  chan struct{}
	stop  chan struct{}
}

// heartbeat keeps proxies from closing a quiet stream.
const heartbeat = 15 * time.Second

// stream sends server-sent events: "rows" with every row first, then
// "row" with a machine's row whenever it changes.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	sub := &subscriber{dirty: map[string]bool{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	s.mu.Lock()
	s.subs[sub] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	send := func(kind string, v any) error {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if send("rows", s.Rows()) != nil {
		return
	}
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.stop:
			return
		case <-t.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-sub.wake:
			s.mu.Lock()
			var rows []Row
			for id := range sub.dirty {
				rows = append(rows, *s.rows[id])
			}
			clear(sub.dirty)
			s.mu.Unlock()
			for _, row := range rows {
				if send("row", row) != nil {
					return
				}
			}
		}
	}
}

// closeStreams ends every open stream (they would hold a graceful
// shutdown forever).
func (s *Server) closeStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		close(sub.stop)
		delete(s.subs, sub)
	}
}
