package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/testnginx"
)

// nginx is testnginx with WebDAV: "/" accepts PUT/DELETE/MKCOL/COPY/MOVE,
// "/ro/" refuses writes (403), "/full/" answers PUT with 507, "/static/"
// has no WebDAV at all.
type nginx struct {
	*testnginx.Server
	root string
	seen int // access log lines methods has returned
}

func startNginx(t *testing.T) *nginx {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "static"), 0o755)
	s := testnginx.Start(t, root, testnginx.Options{WebDAV: true, Extra: []string{
		"location /ro/ { limit_except GET HEAD { deny all; } }",
		"location /full/ { if ($request_method = PUT) { return 507; } }",
		"location /static/ { dav_methods off; }",
	}})
	return &nginx{Server: s, root: root}
}

// methods returns the request methods nginx logged since the last call.
func (n *nginx) methods(t *testing.T) []string {
	log := n.AccessLog()
	var m []string
	for _, l := range log[min(n.seen, len(log)):] {
		if i := strings.Index(l, "\""); i >= 0 {
			m = append(m, strings.Fields(l[i+1:])[0])
		}
	}
	n.seen = len(log)
	return m
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func testFile(t *testing.T, size int, seed int64) (string, []byte) {
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	p := filepath.Join(t.TempDir(), "ref.wim")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestUploadNginx(t *testing.T) {
	n := startNginx(t)
	ctx := context.Background()
	src, data := testFile(t, 3<<20+17, 1)
	dest := n.URL + "/images/2026/ref.wim"
	final := filepath.Join(n.root, "images/2026/ref.wim")
	var last, total int64
	res, err := File(ctx, src, dest, Options{Progress: func(d, tot int64) { last, total = d, tot }})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(final); !bytes.Equal(got, data) {
		t.Fatalf("server holds %d bytes, want the %d sent", len(got), len(data))
	}
	if _, err := os.Stat(final + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial left behind: %v", err)
	}
	if res.Skipped || res.ReusedPartial || res.Size != int64(len(data)) || len(res.SHA256) != 64 {
		t.Errorf("result %+v", res)
	}
	if last != total || total != 2*int64(len(data)) {
		t.Errorf("progress ended at %d/%d", last, total)
	}
	if m := n.methods(t); !contains(m, "PUT") || !contains(m, "MOVE") {
		t.Errorf("methods %v", m)
	}

	t.Run("again", func(t *testing.T) {
		res, err := File(ctx, src, dest, Options{})
		if err != nil || !res.Skipped {
			t.Fatalf("%+v %v", res, err)
		}
		if m := n.methods(t); contains(m, "PUT") || contains(m, "MOVE") {
			t.Errorf("second run sent data: %v", m)
		}
	})
	t.Run("complete-partial", func(t *testing.T) {
		// A power cut after the PUT, before the MOVE.
		d2 := n.URL + "/images/cut.wim"
		f2 := filepath.Join(n.root, "images/cut.wim")
		os.WriteFile(f2+".partial", data, 0o644)
		res, err := File(ctx, src, d2, Options{})
		if err != nil || !res.ReusedPartial {
			t.Fatalf("%+v %v", res, err)
		}
		if m := n.methods(t); contains(m, "PUT") {
			t.Errorf("complete partial sent again: %v", m)
		}
		if got, _ := os.ReadFile(f2); !bytes.Equal(got, data) {
			t.Error("moved partial differs")
		}
	})
	t.Run("stale-partial", func(t *testing.T) {
		d2 := n.URL + "/images/stale.wim"
		f2 := filepath.Join(n.root, "images/stale.wim")
		os.WriteFile(f2+".partial", data[:1000], 0o644)
		if _, err := File(ctx, src, d2, Options{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(f2); !bytes.Equal(got, data) {
			t.Error("upload over a stale partial differs")
		}
	})
	t.Run("exists", func(t *testing.T) {
		other, odata := testFile(t, 4096, 2)
		_, err := File(ctx, other, dest, Options{})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("got %v, want ErrExists", err)
		}
		if got, _ := os.ReadFile(final); !bytes.Equal(got, data) {
			t.Error("refused upload changed the destination")
		}
		if _, err := File(ctx, other, dest, Options{Overwrite: true}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(final); !bytes.Equal(got, odata) {
			t.Error("overwrite did not replace")
		}
	})
	for _, tc := range []struct {
		path string
		code int
		hint string
	}{{"/ro/x.wim", 403, "WebDAV permissions"}, {"/full/x.wim", 507, "out of space"}, {"/static/x.wim", 405, "WebDAV"}} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			n.methods(t)
			_, err := File(ctx, src, n.URL+tc.path, Options{Client: &httpx.Client{Tries: 2, Backoff: time.Millisecond}})
			var se *httpx.StatusError
			if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(err.Error(), tc.hint) {
				t.Fatalf("got %v, want status %d with %q", err, tc.code, tc.hint)
			}
			if m := n.methods(t); len(m) > 4 {
				t.Errorf("refusal retried: %v", m)
			}
			if _, err := os.Stat(filepath.Join(n.root, tc.path)); !os.IsNotExist(err) {
				t.Errorf("file appeared: %v", err)
			}
		})
	}
}

// fakeDAV is a minimal WebDAV store whose faults tests choose.
type fakeDAV struct {
	mu       sync.Mutex
	files    map[string][]byte
	corrupt  bool // GET returns flipped data
	fail500s int  // the first PUTs answer 500
	puts     int
	// moveLie: MOVE answers 201 and "nothing" does nothing, "copy"
	// copies and keeps the source.
	moveLie string
	full    bool     // PUT answers 507
	dests   []string // Destination headers seen
	auth    []string // Authorization headers seen
}

func (f *fakeDAV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	p := r.URL.Path
	switch r.Method {
	case "HEAD", "GET":
		b, ok := f.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if f.corrupt && len(b) > 0 {
			b = append([]byte{b[0] ^ 1}, b[1:]...)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if r.Method == "GET" {
			w.Write(b)
		}
	case "PUT":
		if f.full {
			http.Error(w, "no space left on /srv", http.StatusInsufficientStorage)
			return
		}
		f.puts++
		b, _ := io.ReadAll(r.Body)
		if f.fail500s > 0 {
			f.fail500s--
			w.WriteHeader(500)
			return
		}
		f.files[p] = b
		w.WriteHeader(201)
	case "DELETE":
		delete(f.files, p)
		w.WriteHeader(204)
	case "MOVE":
		f.dests = append(f.dests, r.Header.Get("Destination"))
		u, _ := http.NewRequest("GET", r.Header.Get("Destination"), nil)
		if f.moveLie != "nothing" {
			f.files[u.URL.Path] = f.files[p]
		}
		if f.moveLie == "" {
			delete(f.files, p)
		}
		w.WriteHeader(201)
	}
}

func TestUploadVerifyAndRetry(t *testing.T) {
	fd := &fakeDAV{files: map[string][]byte{}, corrupt: true}
	srv := httptest.NewServer(fd)
	defer srv.Close()
	src, data := testFile(t, 100000, 3)
	_, err := File(context.Background(), src, srv.URL+"/a.wim", Options{Client: &httpx.Client{Backoff: time.Millisecond}})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("corrupting server: got %v, want ErrVerify", err)
	}
	if len(fd.files) != 0 {
		t.Errorf("files left after a failed check: %d", len(fd.files))
	}
	fd.corrupt, fd.fail500s, fd.puts = false, 2, 0
	if _, err := File(context.Background(), src, srv.URL+"/a.wim", Options{Client: &httpx.Client{Backoff: time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if fd.puts != 3 || !bytes.Equal(fd.files["/a.wim"], data) {
		t.Errorf("after 2 server errors: %d PUTs, stored %d bytes", fd.puts, len(fd.files["/a.wim"]))
	}
	for _, bad := range []string{"ftp://x/a", "http:///a", "http://h/dir/", "relative"} {
		if _, err := File(context.Background(), src, bad, Options{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A server that answers MOVE with 201 but moves nothing, or copies and
// keeps the partial, does not get an upload reported done.
func TestUploadLyingMove(t *testing.T) {
	src, _ := testFile(t, 100000, 4)
	for _, lie := range []string{"nothing", "copy"} {
		t.Run(lie, func(t *testing.T) {
			fd := &fakeDAV{files: map[string][]byte{}, moveLie: lie}
			srv := httptest.NewServer(fd)
			defer srv.Close()
			_, err := File(context.Background(), src, srv.URL+"/a.wim", Options{Client: &httpx.Client{Backoff: time.Millisecond}})
			if err == nil || !strings.Contains(err.Error(), "does not hold what was written") {
				t.Fatalf("upload = %v, want a verification failure", err)
			}
		})
	}
}

// The write token in the URL goes as basic authentication only: never in
// a Destination header, an error, a log line or the result.
func TestUploadCredentials(t *testing.T) {
	src, _ := testFile(t, 1000, 5)
	fd := &fakeDAV{files: map[string][]byte{}}
	srv := httptest.NewServer(fd)
	defer srv.Close()
	dest := strings.Replace(srv.URL, "http://", "http://minint:s3cret@", 1) + "/img/a.wim?token=t0ken"
	var log []string
	res, err := File(context.Background(), src, dest, Options{Log: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.URL, "s3cret") || strings.Contains(res.URL, "t0ken") {
		t.Errorf("result URL %s", res.URL)
	}
	for _, d := range fd.dests {
		if strings.Contains(d, "s3cret") || strings.Contains(d, "minint@") {
			t.Errorf("Destination %s", d)
		}
	}
	if len(fd.auth) == 0 || fd.auth[0] == "" {
		t.Error("no basic authentication sent")
	}
	fd.full = true
	_, err = File(context.Background(), src, strings.Replace(dest, "a.wim", "b.wim", 1), Options{Log: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }})
	if err == nil {
		t.Fatal("507 accepted")
	}
	for _, l := range append(log, err.Error()) {
		if strings.Contains(l, "s3cret") || strings.Contains(l, "t0ken") {
			t.Errorf("a secret shows: %s", l)
		}
	}
	if _, err := File(context.Background(), src, "ftp://u:s3cret@h/x.wim", Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad scheme: %v", err)
	}
}
