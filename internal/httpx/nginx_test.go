package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/testnginx"
)

// The same hostile cases against a real nginx, which is what the PE meets
// in the field: its timing, its connection handling, its error pages.

// waitLog waits until nginx has logged a line containing s.
func waitLog(t *testing.T, n *testnginx.Server, s string) {
	t.Helper()
	for range 500 {
		if strings.Contains(strings.Join(n.AccessLog(), "\n"), s) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("nginx never logged %q", s)
}

func TestNginx(t *testing.T) {
	root := t.TempDir()
	body := bytes.Repeat([]byte("minint "), 100000) // 700 kB
	os.WriteFile(filepath.Join(root, "image.wim"), body, 0o644)
	for _, d := range []string{"trickle", "flaky", "busy", "cut"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "trickle/f"), body[:100], 0o644)
	// An "endless" file: 1 TiB, sparse.
	big, _ := os.Create(filepath.Join(root, "endless"))
	big.Truncate(1 << 40)
	big.Close()
	n := testnginx.Start(t, root, testnginx.Options{Extra: []string{
		"location /trickle/ { limit_rate 1; }",
		"location /flaky/ { try_files $uri =503; }",
		"location /busy/ { try_files $uri @busy; }",
		"location @busy { add_header Retry-After 1 always; return 429; }",
		"location /cut/ { limit_rate 1m; }",
	}})
	ctx := context.Background()

	t.Run("trickling", func(t *testing.T) {
		// One byte a second, the limit is a third of that.
		_, err := quick().Get(ctx, n.URL+"/trickle/f", 1000)
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("err = %v, want ErrIdle", err)
		}
	})
	t.Run("endless", func(t *testing.T) {
		b, err := quick().Get(ctx, n.URL+"/endless", 1<<20)
		if !errors.Is(err, ErrTooLarge) || b != nil {
			t.Fatalf("%d bytes, err = %v; want ErrTooLarge", len(b), err)
		}
	})
	t.Run("503-then-200", func(t *testing.T) {
		c := quick()
		c.Tries, c.Backoff, c.MaxBackoff = 50, 20*time.Millisecond, 50*time.Millisecond
		go func() {
			waitLog(t, n, `"GET /flaky/f HTTP/1.1" 503`)
			os.WriteFile(filepath.Join(root, "flaky/f"), []byte("back"), 0o644)
		}()
		b, err := c.Get(ctx, n.URL+"/flaky/f", 100)
		if err != nil || string(b) != "back" {
			t.Fatalf("%q, %v", b, err)
		}
	})
	t.Run("429-retry-after", func(t *testing.T) {
		start := time.Now()
		go func() {
			waitLog(t, n, `"GET /busy/f HTTP/1.1" 429`)
			os.WriteFile(filepath.Join(root, "busy/f"), []byte("free"), 0o644)
		}()
		b, err := quick().Get(ctx, n.URL+"/busy/f", 100)
		if err != nil || string(b) != "free" {
			t.Fatalf("%q, %v", b, err)
		}
		// The backoff is a millisecond: only Retry-After makes it wait.
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("answered after %s: Retry-After: 1 was not honoured", d)
		}
	})
	t.Run("404", func(t *testing.T) {
		_, err := quick().Get(ctx, n.URL+"/nothing", 100)
		if !errors.Is(err, ErrNotFound) || err.Error() != "GET "+n.URL+"/nothing: 404 Not Found" {
			t.Fatalf("err = %v", err)
		}
	})
	// nginx dies in the middle of a body (connection cut) and comes back.
	t.Run("cut-mid-body", func(t *testing.T) {
		c := quick()
		c.Tries, c.Backoff, c.MaxBackoff = 50, 20*time.Millisecond, 50*time.Millisecond
		os.WriteFile(filepath.Join(root, "cut/f"), body, 0o644)
		var first error
		tries := 0
		var got []byte
		err := c.Retry(ctx, "GET", func() error {
			tries++
			req, _ := NewRequest(ctx, "GET", n.URL+"/cut/f", nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if tries == 1 {
				io.CopyN(io.Discard, resp.Body, 1000)
				n.Kill()
				go n.Start()
			}
			got, err = bounded.ReadAll(resp.Body, 1<<20)
			if tries == 1 {
				first = err
			}
			return err
		})
		if err != nil || tries < 2 || !bytes.Equal(got, body) {
			t.Fatalf("%d tries, %d bytes, err = %v", tries, len(got), err)
		}
		if !Transient(first) {
			t.Errorf("the cut was %v, not transient", first)
		}
	})
	// The file shrinks while nginx sends it: nginx announced the old
	// length and ends early (a lying Content-Length); the retry gets the
	// file as it is now.
	t.Run("lying-content-length", func(t *testing.T) {
		p := filepath.Join(root, "cut/g")
		os.WriteFile(p, body, 0o644)
		var first error
		tries := 0
		var got []byte
		err := quick().Retry(ctx, "GET", func() error {
			tries++
			req, _ := NewRequest(ctx, "GET", n.URL+"/cut/g", nil)
			resp, err := quick().Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.ContentLength != int64(len(body)) && tries == 1 {
				return fmt.Errorf("Content-Length %d", resp.ContentLength)
			}
			if tries == 1 {
				io.CopyN(io.Discard, resp.Body, 1000)
				os.Truncate(p, 300000)
			}
			got, err = bounded.ReadAll(resp.Body, 1<<20)
			if tries == 1 {
				first = err
			}
			return err
		})
		if err != nil || tries != 2 || !bytes.Equal(got, body[:300000]) {
			t.Fatalf("%d tries, %d bytes, err = %v", tries, len(got), err)
		}
		if !errors.Is(first, io.ErrUnexpectedEOF) {
			t.Errorf("the short body gave %v, want unexpected EOF", first)
		}
	})
}
