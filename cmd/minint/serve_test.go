package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/progress"
)

func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"serve"}, 2, "want 1 argument"},
		{[]string{"serve", dir, "--dashboard-auth", "nopassword"}, 2, "want USER:PASSWORD"},
		{[]string{"serve", dir, "--max-log", "12XB"}, 2, "12XB"},
		{[]string{"serve", dir, "--token", "a", "--token-file", file}, 2, "give one"},
		{[]string{"serve", file}, 1, "is not a directory"},
		{[]string{"serve", dir, "--token-file", file}, 1, "empty token"},
		{[]string{"serve", dir, "--token", "t", "--listen", "256.0.0.1:0"}, 1, "minint serve: "},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: %d %q, want %d saying %q", c.args, code, stderr, c.code, c.says)
		}
	}
}

// TestServeRuns: the command serves until its context ends, prints where
// to point a status-url, and takes events with the token.
func TestServeRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	old := serveContext
	serveContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }
	defer func() { serveContext = old }()
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		done <- runMain([]string{"serve", t.TempDir(), "--listen", "127.0.0.1:0", "--token", "tok"}, pw, io.Discard)
		pw.Close()
	}()
	rd := bufio.NewReader(pr)
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	_, url, ok := strings.Cut(strings.Fields(line)[3], "http://")
	if !strings.HasPrefix(line, "serving ") || !ok {
		t.Fatalf("first line %q", line)
	}
	go io.Copy(io.Discard, rd)
	req, _ := http.NewRequest("POST", "http://:tok@"+url+"/status", strings.NewReader(`{"event":"sequence","state":"start","msg":"s"}`))
	req.Header.Set(progress.MachineHeader, progress.NewMachine("SN1", "", "", "", "").Header())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + url + "/status/machines")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"id":"SN1"`) {
		t.Errorf("machines: %s", b)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
}
