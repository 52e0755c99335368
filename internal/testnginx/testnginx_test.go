package testnginx

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func do(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestStatic(t *testing.T) {
	root := t.TempDir()
	want := bytes.Repeat([]byte("minint "), 10000)
	os.WriteFile(filepath.Join(root, "image.wim"), want, 0o644)
	s := Start(t, root, Options{Extra: []string{"add_header X-Minint-Test yes;"}})

	resp, err := http.Get(s.URL + "/image.wim")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("GET: %s, %d bytes, want 200 and %d bytes", resp.Status, len(got), len(want))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("X-Minint-Test") != "yes" {
		t.Error("extra directive not applied")
	}

	req, _ := http.NewRequest("GET", s.URL+"/image.wim", nil)
	req.Header.Set("Range", "bytes=7-")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || !bytes.Equal(got, want[7:]) {
		t.Fatalf("range GET: %s, %d bytes", resp.Status, len(got))
	}

	if code, _ := do(t, "PUT", s.URL+"/new.wim", []byte("x")); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT without WebDAV: %d, want 405", code)
	}
	if _, err := os.Stat(filepath.Join(root, "new.wim")); !os.IsNotExist(err) {
		t.Errorf("PUT without WebDAV wrote a file: %v", err)
	}
	if code, _ := do(t, "GET", s.URL+"/missing", nil); code != 404 {
		t.Errorf("missing file: %d", code)
	}

	log := s.AccessLog()
	if len(log) != 4 {
		t.Fatalf("access log has %d lines, want 4:\n%s", len(log), strings.Join(log, "\n"))
	}
	for i, w := range []string{`"GET /image.wim HTTP/1.1" 200 70000 `, `"GET /image.wim HTTP/1.1" 206 69993 `, `"PUT /new.wim HTTP/1.1" 405 `, `"GET /missing HTTP/1.1" 404 `} {
		if !strings.Contains(log[i], w) {
			t.Errorf("access log line %d: %s, want %s", i, log[i], w)
		}
	}
}

func TestWebDAV(t *testing.T) {
	root := t.TempDir()
	s := Start(t, root, Options{WebDAV: true, Extra: []string{"location /static/ { dav_methods off; }"}})
	data := bytes.Repeat([]byte{0xa5}, 3<<20) // above nginx's default 1m body limit
	if code, _ := do(t, "PUT", s.URL+"/a/b/c.wim", data); code != http.StatusCreated {
		t.Fatalf("PUT: %d, want 201", code)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "a/b/c.wim")); !bytes.Equal(got, data) {
		t.Fatalf("server holds %d bytes, want %d", len(got), len(data))
	}
	req, _ := http.NewRequest("MOVE", s.URL+"/a/b/c.wim", nil)
	req.Header.Set("Destination", s.URL+"/a/d.wim")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("MOVE: %s", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(root, "a/d.wim")); err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	if code, _ := do(t, "DELETE", s.URL+"/a/d.wim", nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d, want 204", code)
	}
	if _, err := os.Stat(filepath.Join(root, "a/d.wim")); !os.IsNotExist(err) {
		t.Errorf("DELETE left the file: %v", err)
	}
	os.Mkdir(filepath.Join(root, "static"), 0o755)
	if code, _ := do(t, "PUT", s.URL+"/static/x", []byte("x")); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT where Extra switched WebDAV off: %d, want 405", code)
	}
}

func TestLateStart(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("late"), 0o644)
	s := New(t, root, Options{})
	if _, err := http.Get(s.URL + "/f"); err == nil {
		t.Fatal("a request succeeded before Start")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if code, b := do(t, "GET", s.URL+"/f", nil); code != 200 || string(b) != "late" {
		t.Fatalf("GET after Start: %d %q", code, b)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start did not fail")
	}
}

func TestKill(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 300<<10), 0o644)
	s := Start(t, root, Options{Extra: []string{"limit_rate 100k;"}})
	resp, err := http.Get(s.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if n, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatalf("the response went on after Kill (%d more bytes)", n)
	}
	if _, err := http.Get(s.URL + "/f"); err == nil {
		t.Fatal("a request succeeded after Kill")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if code, b := do(t, "GET", s.URL+"/f", nil); code != 200 || len(b) != 300<<10 {
		t.Fatalf("GET after a new Start: %d, %d bytes", code, len(b))
	}
}

func TestBadConfig(t *testing.T) {
	s := New(t, t.TempDir(), Options{Extra: []string{"no_such_directive on;"}})
	err := s.Start()
	if err == nil || !strings.Contains(err.Error(), "no_such_directive") {
		t.Fatalf("err = %v, want nginx's complaint about the directive", err)
	}
}
