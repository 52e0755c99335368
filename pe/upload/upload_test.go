package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/internal/webdav/davtest"
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

func TestUploadVerifyAndRetry(t *testing.T) {
	fd := davtest.New(t, davtest.Config{Lie: davtest.Garbage})
	src, data := testFile(t, 100000, 3)
	_, err := File(context.Background(), src, fd.URL+"/a.wim", Options{Client: &httpx.Client{Backoff: time.Millisecond}})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("corrupting server: got %v, want ErrVerify", err)
	}
	if n := fd.Files(); n != 0 {
		t.Errorf("files left after a failed check: %d", n)
	}
	fd.Set(davtest.Config{FailPuts: 2})
	before := fd.Count("PUT")
	if _, err := File(context.Background(), src, fd.URL+"/a.wim", Options{Client: &httpx.Client{Backoff: time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := fd.File("/a.wim"); fd.Count("PUT")-before != 3 || !bytes.Equal(got, data) {
		t.Errorf("after 2 server errors: %d PUTs, stored %d bytes", fd.Count("PUT")-before, len(got))
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
	for _, lie := range []davtest.Lie{davtest.MoveNothing, davtest.MoveCopy} {
		t.Run(string(lie), func(t *testing.T) {
			fd := davtest.New(t, davtest.Config{Lie: lie})
			_, err := File(context.Background(), src, fd.URL+"/a.wim", Options{Client: &httpx.Client{Backoff: time.Millisecond}})
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
	fd := davtest.New(t, davtest.Config{})
	dest := strings.Replace(fd.URL, "http://", "http://minint:s3cret@", 1) + "/img/a.wim?token=t0ken"
	var log []string
	logf := func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
	res, err := File(context.Background(), src, dest, Options{Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.URL, "s3cret") || strings.Contains(res.URL, "t0ken") {
		t.Errorf("result URL %s", res.URL)
	}
	for _, r := range fd.Requests() {
		if strings.Contains(r.Destination, "s3cret") || strings.Contains(r.Destination, "t0ken") {
			t.Errorf("Destination %s", r.Destination)
		}
		if r.Authorization == "" {
			t.Errorf("%s without basic authentication", r.Method)
		}
	}
	if _, ok := fd.File("/img/a.wim"); !ok {
		t.Error("the partial name was not made in the path")
	}
	fd.Set(davtest.Config{Full: true})
	_, err = File(context.Background(), src, strings.Replace(dest, "a.wim", "b.wim", 1), Options{Log: logf})
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
