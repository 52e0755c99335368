package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/sign"
)

// allOutput runs minint and returns everything it wrote: runMain's
// stdout and stderr and the process's own (progress and plans go there).
func allOutput(t *testing.T, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	var out, errOut bytes.Buffer
	runMain(args, &out, &errOut)
	os.Stdout, os.Stderr = oldOut, oldErr
	w.Close()
	return string(<-done) + out.String() + errOut.String()
}

// No command shows the password or token of a URL it was given, in its
// output, its events or its errors.
func TestURLsRedacted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no store at "+r.URL.String(), http.StatusNotFound)
	}))
	defer srv.Close()
	secretURL := strings.Replace(srv.URL, "http://", "http://minint:s3cret@", 1) + "/states/pc1?token=t0ken"
	seq := filepath.Join(t.TempDir(), "seq.yaml")
	os.WriteFile(seq, []byte(`version: 1
status-url: http://:s3cret@10.0.2.2:8080/-/status?token=t0ken
steps:
  - type: fetch
    manifest: http://:s3cret@10.0.2.2/pkg/manifest.json?X-Amz-Signature=t0ken
    mode: stream
`), 0o644)
	pub, _, _ := sign.GenerateKey()
	pubFile := filepath.Join(t.TempDir(), "state.pub")
	os.WriteFile(pubFile, pub, 0o644)
	for _, args := range [][]string{
		{"state", "pull", "--key", pubFile, "--json-events", "-", secretURL, filepath.Join(t.TempDir(), "s")},
		{"sequence", "check", "--json-events", "-", seq},
		{"sequence", "check", "http://u:s3cret@h/x.yaml"},
	} {
		out := allOutput(t, args...)
		if strings.Contains(out, "s3cret") || strings.Contains(out, "t0ken") || !strings.Contains(out, "xxxxx") {
			t.Errorf("minint %s:\n%s", strings.Join(args, " "), out)
		}
	}
}
