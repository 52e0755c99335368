package serve

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minint/minint/internal/testnginx"
)

// TestNginxConfig runs docs/nginx-minint.conf in a real nginx in front of
// serve: packages come from nginx with Range (serve never sees those
// GETs), events, logs, the dashboard and its stream and WebDAV writes
// pass through to serve, and the token is still required.
func TestNginxConfig(t *testing.T) {
	conf, err := os.ReadFile("../docs/nginx-minint.conf")
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "images/b"), 0o755)
	os.WriteFile(filepath.Join(tree, "images/b/os.wim"), []byte("0123456789"), 0o644)
	s, err := New(Options{Dir: tree, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var fileGets atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/images/") {
			fileGets.Add(1)
		}
		s.ServeHTTP(w, r)
	}))
	defer hs.Close()
	n := testnginx.Start(t, tree, testnginx.Options{Extra: []string{
		strings.ReplaceAll(string(conf), "127.0.0.1:8080", strings.TrimPrefix(hs.URL, "http://")),
	}})

	code, body, h := do(t, "GET", n.URL+"/images/b/os.wim", map[string]string{"Range": "bytes=4-"}, "")
	if code != http.StatusPartialContent || body != "456789" || h.Get("ETag") == "" {
		t.Errorf("package via nginx: %d %q %v", code, body, h)
	}
	if code, _, _ := do(t, "GET", n.URL+"/.minint-serve/events.jsonl", nil, ""); code != http.StatusForbidden {
		t.Errorf("serve's state via nginx: %d", code)
	}
	mustPost(t, n.URL, pc17, event("sequence", "start", "", `,"msg":"via nginx"`))
	if code, _ := post(t, n.URL, pc17, map[string]string{"X-Minint-Log": "failure"}, "the log\n"); code != http.StatusCreated {
		t.Errorf("log via nginx: %d", code)
	}
	if r := row(t, s, pc17.ID); r.Sequence != "via nginx" || r.Log == "" {
		t.Errorf("row: %+v", r)
	}
	req, _ := http.NewRequest("POST", n.URL+"/status", strings.NewReader(event("x", "", "", "")))
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token via nginx: %d", resp.StatusCode)
	}

	// A capture upload: verified PUT, then MOVE (its Destination names
	// nginx's host, which serve must accept).
	capture(t, n.URL, tree)

	code, page, _ := do(t, "GET", n.URL+"/", nil, "")
	if code != 200 || !strings.Contains(page, "via nginx") {
		t.Errorf("dashboard via nginx: %d", code)
	}
	resp, err = http.Get(n.URL + "/status/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "event: rows\n" {
		t.Errorf("stream via nginx starts with %q", line)
	}
	if n := fileGets.Load(); n != 0 {
		t.Errorf("serve answered %d package GETs that nginx should have", n)
	}
}
