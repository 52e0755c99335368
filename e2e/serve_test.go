package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minint/minint/serve"
)

// statusServer runs `minint serve`'s server on a free 127.0.0.1 port and
// returns it with the status-url a guest uses (10.0.2.2 is the host) and
// the host's base URL.
func statusServer(t *testing.T) (s *serve.Server, statusURL, base string) {
	t.Helper()
	const token = "e2e-write-token"
	s, err := serve.New(serve.Options{Dir: t.TempDir(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range s.Rows() {
				t.Logf("dashboard row: %+v", r)
			}
		}
		hs.Close()
		s.Close()
	})
	port := hs.Listener.Addr().(*net.TCPAddr).Port
	return s, fmt.Sprintf("http://:%s@10.0.2.2:%d/status", token, port), hs.URL
}

// withStatus adds status-url to a sequence.
func withStatus(seq, url string) string {
	return strings.Replace(seq, "name: e2e\n", "name: e2e\nstatus-url: "+url+"\n", 1)
}

// onlyRow is the one machine that reported to s.
func onlyRow(t *testing.T, s *serve.Server) serve.Row {
	t.Helper()
	rows := s.Rows()
	if len(rows) != 1 {
		t.Fatalf("%d rows on the dashboard, want the one machine: %+v", len(rows), rows)
	}
	return rows[0]
}

// getText reads a URL's body.
func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
