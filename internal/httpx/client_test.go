package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minint/minint/internal/bounded"
)

// quick is a client with short limits, so that hostile servers fail fast.
func quick() *Client {
	return &Client{HTTP: NewHTTP(Timeouts{Connect: time.Second, Header: 2 * time.Second}),
		Idle: 300 * time.Millisecond, Tries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// trickle writes b one byte at a time, every gap.
func trickle(w http.ResponseWriter, b []byte, gap time.Duration) {
	for i := range b {
		if _, err := w.Write(b[i : i+1]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(gap)
	}
}

func TestIdleBodyIsCut(t *testing.T) {
	var reqs atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		trickle(w, []byte("abc"), 0)
		select { // then nothing, while the connection stays open
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	_, err := quick().Get(context.Background(), s.URL+"/stuck", 1000)
	if !errors.Is(err, ErrIdle) || !strings.Contains(err.Error(), "giving up after 3 tries") {
		t.Fatalf("err = %v, want ErrIdle after 3 tries", err)
	}
	if n := reqs.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// A slow server that keeps sending is not cut, however long it takes in
// total: the limit is on silence, not on time.
func TestSlowButSteadyIsNotCut(t *testing.T) {
	want := []byte("0123456789abcdef")
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		trickle(w, want, 75*time.Millisecond) // 1.2 s in all, 4 times the idle limit
	})
	c := quick()
	c.Tries = 1
	got, err := c.Get(context.Background(), s.URL, 100)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestSilentServerBeforeHeaders(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	c := quick()
	c.Tries = 1
	_, err := c.Get(context.Background(), s.URL, 100)
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("err = %v, want ErrIdle", err)
	}
}

// An upload the server stops reading is cut like a download.
func TestIdleUploadIsCut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(io.Discard, r.Body, 1000) // then reads no more
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	req, err := NewRequest(context.Background(), "PUT", s.URL+"/x", bytes.NewReader(make([]byte, 64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := quick().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("err = %v, want ErrIdle", err)
	}
}

func TestEndlessBody(t *testing.T) {
	// Chunked, no length announced: the bound is found by reading.
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/announced" {
			w.Header().Set("Content-Length", fmt.Sprint(int64(1)<<40))
		}
		buf := bytes.Repeat([]byte("A"), 32<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	for _, p := range []string{"/chunked", "/announced"} {
		b, err := quick().Get(context.Background(), s.URL+p, 1<<20)
		if !errors.Is(err, ErrTooLarge) || b != nil {
			t.Errorf("%s: %d bytes, err = %v; want ErrTooLarge", p, len(b), err)
		}
	}
}

func TestRetryThenSuccess(t *testing.T) {
	var reqs atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if reqs.Add(1) == 1 {
			http.Error(w, "busy rebuilding", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	var log []string
	c := quick()
	c.Log = func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
	b, err := c.Get(context.Background(), s.URL+"/m", 10)
	if err != nil || string(b) != "ok" || reqs.Load() != 2 {
		t.Fatalf("%q, %v after %d requests", b, err, reqs.Load())
	}
	if len(log) != 1 || !strings.Contains(log[0], "503 Service Unavailable: busy rebuilding; retrying in") {
		t.Errorf("log %q", log)
	}
}

func TestRetryGivesUp(t *testing.T) {
	var reqs atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	})
	_, err := quick().Get(context.Background(), s.URL+"/m", 10)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 502 || reqs.Load() != 3 {
		t.Fatalf("err = %v after %d requests; want a 502 StatusError after 3", err, reqs.Load())
	}
}

func TestPermanentNotRetried(t *testing.T) {
	for code, sentinel := range map[int]error{404: ErrNotFound, 410: ErrNotFound, 401: ErrUnauthorized, 403: ErrForbidden, 400: nil, 501: nil, 507: nil} {
		var reqs atomic.Int32
		s := server(t, func(w http.ResponseWriter, r *http.Request) {
			reqs.Add(1)
			w.WriteHeader(code)
		})
		_, err := quick().Get(context.Background(), s.URL+"/m", 10)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != code || reqs.Load() != 1 {
			t.Errorf("%d: err = %v after %d requests; want one request", code, err, reqs.Load())
		}
		if sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("%d: %v is not %v", code, err, sentinel)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	var first time.Time
	var reqs atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if reqs.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if since := time.Since(first); since < 900*time.Millisecond {
			t.Errorf("retried after %s, the server asked for 1s", since)
		}
		io.WriteString(w, "ok")
	})
	b, err := quick().Get(context.Background(), s.URL, 10)
	if err != nil || string(b) != "ok" {
		t.Fatalf("%q, %v", b, err)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"86400":                         maxRetryAfter,
		"soon":                          0,
		"Wed, 02 Dec 2026 12:00:30 GMT": 30 * time.Second,
		"Wed, 02 Dec 2026 11:00:00 GMT": 0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

// A connection reset in the middle of a body is retried.
func TestResetMidBody(t *testing.T) {
	var reqs atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if reqs.Add(1) == 1 {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 300))
			buf.Flush()
			time.Sleep(50 * time.Millisecond)
			conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
			conn.Close()
			return
		}
		io.WriteString(w, strings.Repeat("y", 1000))
	})
	var log []string
	c := quick()
	c.Log = func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
	b, err := c.Get(context.Background(), s.URL, 2000)
	if err != nil || string(b) != strings.Repeat("y", 1000) {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	if len(log) != 1 || !strings.Contains(log[0], "reset") {
		t.Errorf("log %q, want one retry after a reset", log)
	}
}

// A server that announces more than it sends (and closes) is an early
// end, retried; one that never gets it right fails with it.
func TestLyingContentLength(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, _ := http.NewResponseController(w).Hijack()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 300))
		buf.Flush()
		conn.Close()
	})
	_, err := quick().Get(context.Background(), s.URL, 2000)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "giving up after 3 tries") {
		t.Fatalf("err = %v, want unexpected EOF after 3 tries", err)
	}
}

func TestContextEndsRetries(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c := quick()
	c.Tries, c.Backoff, c.MaxBackoff = 100, time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, s.URL, 10)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want the deadline with the last error", err)
	}
}

func TestStatusErrorBody(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plain":
			http.Error(w, "writing needs the server's write token\n(bearer)\x00"+strings.Repeat("z", 500), 401)
		case "/html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(404)
			io.WriteString(w, "<html><title>404 Not Found</title></html>")
		}
	})
	_, err := quick().Get(context.Background(), s.URL+"/plain", 10)
	var se *StatusError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Body, "writing needs the server's write token (bearer)zzz") || len(se.Body) > maxExcerpt+3 {
		t.Errorf("excerpt %q", se.Body)
	}
	_, err = quick().Get(context.Background(), s.URL+"/html", 10)
	if want := "GET " + s.URL + "/html: 404 Not Found"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// No secret of a URL reaches an error or a log line: not the userinfo
// password, not a token in the query, not from the server's own words.
func TestSecretsRedacted(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy":
			w.WriteHeader(503)
		case "/echo":
			http.Error(w, "you asked for "+r.URL.String()+" at http://u:"+"s3cret@"+r.Host, 404)
		}
	})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()
	var out []string
	c := quick()
	c.Log = func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) }
	for _, u := range []string{
		strings.Replace(s.URL, "http://", "http://u:s3cret@", 1) + "/busy?token=t0ken&x=1",
		strings.Replace(s.URL, "http://", "http://u:s3cret@", 1) + "/echo?token=t0ken",
		strings.Replace(closed, "http://", "http://:s3cret@", 1) + "/x?access_token=t0ken",
		"http://u:s3cret@" + s.URL[len("http://"):] + "/bad%zz?token=t0ken",
	} {
		_, err := c.Get(context.Background(), u, 10)
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		out = append(out, err.Error())
	}
	for _, line := range out {
		if strings.Contains(line, "s3cret") || strings.Contains(line, "t0ken") {
			t.Errorf("a secret shows: %s", line)
		}
		if !strings.Contains(line, "xxxxx") {
			t.Errorf("no redacted URL in: %s", line)
		}
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("x: %w", ErrTruncated), true},
		{idleError(time.Second), true},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{&StatusError{Code: 503}, true},
		{&StatusError{Code: 404}, false},
		{context.Canceled, false},
		{errors.New("checksum mismatch"), false},
		{fmt.Errorf("x: %w", ErrTooLarge), false},
		{fmt.Errorf("x: %w", ErrNoRange), false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v", tc.err, got)
		}
	}
}

func TestLimitReader(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int64
		err   bool
	}{{"", 0, false}, {"abc", 3, false}, {"abcd", 3, true}, {"abc", 10, false}, {"a", 0, true}} {
		b, err := bounded.ReadAll(strings.NewReader(tc.in), tc.limit)
		if tc.err != errors.Is(err, ErrTooLarge) || !tc.err && string(b) != tc.in || int64(len(b)) > tc.limit {
			t.Errorf("ReadAll(%q, %d) = %q, %v", tc.in, tc.limit, b, err)
		}
	}
}

// A kept-alive connection the server closed meanwhile fails the next
// request with "server closed idle connection" when the body cannot be
// sent again by the transport itself: that is retried too.
func TestServerClosedIdleIsTransient(t *testing.T) {
	err := &url.Error{Op: "PUT", URL: "http://h/x", Err: errors.New("http: server closed idle connection")}
	if !Transient(err) {
		t.Error("not transient")
	}
}
