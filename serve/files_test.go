package serve

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/webdav"
)

func do(t *testing.T, method, url string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var auth = map[string]string{"Authorization": "Bearer " + token}

// TestFiles: packages are served with Range and nginx's ETag; PUT, MOVE,
// DELETE and MKCOL need the token and behave as WebDAV says.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "images/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "images/b/os.wim"), []byte("0123456789"), 0o644)
	_, hs := start(t, dir, nil)
	u := hs.URL

	code, body, h := do(t, "GET", u+"/images/b/os.wim", map[string]string{"Range": "bytes=2-5"}, "")
	if code != http.StatusPartialContent || body != "2345" || h.Get("Content-Range") != "bytes 2-5/10" || !strings.HasPrefix(h.Get("ETag"), `"`) {
		t.Errorf("Range GET: %d %q %v", code, body, h)
	}
	if code, _, _ := do(t, "PUT", u+"/states/pc17/x", nil, "data"); code != http.StatusUnauthorized {
		t.Errorf("PUT without token: %d", code)
	}
	if code, msg, _ := do(t, "PUT", u+"/states/pc17/objects/ab/cd", auth, "data"); code != http.StatusCreated {
		t.Errorf("PUT into missing collections: %d %s", code, msg)
	}
	if code, _, _ := do(t, "PUT", u+"/states/pc17/objects/ab/cd", auth, "data2"); code != http.StatusNoContent {
		t.Errorf("PUT replacing: %d", code)
	}
	_, _, before := do(t, "HEAD", u+"/states/pc17/objects/ab/cd", nil, "")
	if code, msg, _ := do(t, "MOVE", u+"/states/pc17/objects/ab/cd", map[string]string{"Authorization": auth["Authorization"], "Destination": u + "/states/pc17/done", "Overwrite": "F"}, ""); code != http.StatusCreated {
		t.Errorf("MOVE: %d %s", code, msg)
	}
	_, _, after := do(t, "HEAD", u+"/states/pc17/done", nil, "")
	if before.Get("ETag") == "" || before.Get("ETag") != after.Get("ETag") {
		t.Errorf("MOVE changed the ETag: %q -> %q", before.Get("ETag"), after.Get("ETag"))
	}
	do(t, "PUT", u+"/states/pc17/again", auth, "x")
	if code, _, _ := do(t, "MOVE", u+"/states/pc17/again", map[string]string{"Authorization": auth["Authorization"], "Destination": "/states/pc17/done", "Overwrite": "F"}, ""); code != http.StatusPreconditionFailed {
		t.Errorf("MOVE onto an existing name with Overwrite: F: %d", code)
	}
	if code, _, _ := do(t, "MKCOL", u+"/new", auth, ""); code != http.StatusCreated {
		t.Errorf("MKCOL: %d", code)
	}
	if code, _, _ := do(t, "MKCOL", u+"/new", auth, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("MKCOL existing: %d", code)
	}
	if code, _, _ := do(t, "DELETE", u+"/states/pc17", auth, ""); code != http.StatusNoContent {
		t.Errorf("DELETE collection: %d", code)
	}
	if code, _, _ := do(t, "GET", u+"/states/pc17/done", nil, ""); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d", code)
	}
}

// TestPrivateFolders: files in a private folder (user state) are read
// with the write token only; the rest stays public.
func TestPrivateFolders(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "states/pc17"), 0o755)
	os.WriteFile(filepath.Join(dir, "states/pc17/index.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "statesman"), []byte("public"), 0o644)
	_, hs := start(t, dir, func(o *Options) { o.Private = []string{"/states/"} })
	for _, c := range []struct {
		path string
		hdr  map[string]string
		code int
	}{
		{"/states/pc17/index.json", nil, 401},
		{"/states/pc17/index.json", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"/states/pc17/index.json", auth, 200},
		{"/statesman", nil, 200},
	} {
		if code, _, _ := do(t, "GET", hs.URL+c.path, c.hdr, ""); code != c.code {
			t.Errorf("GET %s %v: %d, want %d", c.path, c.hdr, code, c.code)
		}
	}
}

// TestFilesConfined: no request reaches outside DIR or into the server's
// own state: ".." segments, encoded or not, symbolic links pointing out,
// MOVE destinations.
func TestFilesConfined(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "srv")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("secret"), 0o600)
	os.Symlink("../secret", filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "ok"), []byte("ok"), 0o644)
	s, hs := start(t, dir, nil)
	mustPost(t, hs.URL, pc17, event("sequence", "start", "", ""))
	raw := func(method, path string, hdr map[string]string) int {
		req, _ := http.NewRequest(method, hs.URL+"/", nil)
		req.URL.Path, req.URL.RawPath = path, ""
		req.URL.Opaque = path
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
		code         int
	}{
		{"GET", "/../secret", nil, 400},
		{"GET", "/%2e%2e/secret", nil, 400},
		{"PUT", "/x/../../secret", auth, 400},
		{"GET", "/link", nil, 404},
		{"PUT", "/link", auth, 201}, // replaces the link, not what it points to
		{"GET", "/.minint-serve/events.jsonl", nil, 403},
		{"PUT", "/.minint-serve/events.jsonl", auth, 403},
		{"MOVE", "/ok", map[string]string{"Authorization": auth["Authorization"], "Destination": "/../moved"}, 400},
		{"MOVE", "/ok", map[string]string{"Authorization": auth["Authorization"], "Destination": "/.minint-serve/events.jsonl"}, 403},
		{"DELETE", "/", auth, 403},
	} {
		if got := raw(c.method, c.path, c.hdr); got != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.code)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(base, "secret")); string(b) != "secret" {
		t.Errorf("the file outside was changed: %q", b)
	}
	if r := row(t, s, pc17.ID); r.Events != 1 {
		t.Errorf("the journal was touched: %+v", r)
	}
}

// TestWebDAVClient: package webdav's verified writes (read-back, ETag
// kept by MOVE, gone after DELETE) succeed against serve, as the PE's
// capture upload and state stores use them.
func TestWebDAVClient(t *testing.T) {
	dir := t.TempDir()
	_, hs := start(t, dir, nil)
	c := capture(t, hs.URL, dir)
	if err := c.Delete(context.Background(), "ref.wim"); err != nil {
		t.Fatal(err)
	}
	bad, _ := webdav.New(strings.Replace(hs.URL, "http://", "http://:wrong@", 1)+"/captures", &httpx.Client{Tries: 1})
	if err := bad.Put(context.Background(), "x", strings.NewReader("x"), webdav.Sum([]byte("x")), nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
}

// capture uploads a WIM as the PE's capture does (verified PUT of
// captures/ref.wim.partial, MOVE to captures/ref.wim) through base, and
// checks that dir holds it. It returns the client.
func capture(t *testing.T, base, dir string) *webdav.Client {
	t.Helper()
	c, err := webdav.New(strings.Replace(base, "http://", "http://:"+token+"@", 1)+"/captures", &httpx.Client{Tries: 1})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("wim!"), 300000)
	obj := webdav.Sum(data)
	ctx := context.Background()
	if err := c.Put(ctx, "ref.wim.partial", bytes.NewReader(data), obj, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(ctx, "ref.wim.partial", "ref.wim", obj, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "captures/ref.wim")); !bytes.Equal(got, data) {
		t.Errorf("stored %d bytes, want %d", len(got), len(data))
	}
	return c
}
