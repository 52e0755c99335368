// Package testnginx runs a real nginx on 127.0.0.1 for tests: a private
// configuration and prefix in the test's temporary directory, a free port,
// and a process that dies with the test. The PE talks to plain HTTP and
// WebDAV servers in the field; tests against nginx catch what a Go
// httptest server is too forgiving to show (Range, 206, MOVE, 405, 507).
package testnginx

import (
	"errors"
	"fmt"
	"github.com/minint/minint/internal/child"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options add to the plain static server.
type Options struct {
	// WebDAV turns on PUT, DELETE, MKCOL, COPY and MOVE for the whole
	// server, with missing parent directories created on PUT and no limit
	// on the body size. A location in Extra can switch it off again with
	// "dav_methods off;".
	WebDAV bool
	// Extra server directives, each a complete directive or block, such
	// as "limit_rate 1m;" or "location /ro/ { ... }".
	Extra []string
}

// Server is one nginx serving a directory.
type Server struct {
	// Port and URL ("http://127.0.0.1:port", no trailing slash) are fixed
	// from New on, before the server runs.
	Port int
	URL  string

	bin, prefix string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	stopped bool
}

// skipMsg is what a test sees on a host without nginx.
const skipMsg = "nginx not installed (scripts/setup-host.sh installs it)"

// Start serves root and returns once nginx accepts connections. Without
// nginx on the host the test is skipped, or fails when MININT_E2E=1 says
// every test has to run.
func Start(t testing.TB, root string, opts Options) *Server {
	t.Helper()
	var err error
	// Another process may take the free port between choosing and
	// binding it; a fresh port then is the only fix.
	for range 3 {
		s := New(t, root, opts)
		if err = s.Start(); err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

// New configures nginx to serve root on a free port without starting it,
// for tests where the server comes up late. Stopping it is registered
// with t.Cleanup.
func New(t testing.TB, root string, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx" // not in a non-root user's PATH on Debian
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("MININT_E2E") == "1" {
				t.Fatal("MININT_E2E=1 but " + skipMsg)
			}
			t.Skip(skipMsg)
		}
	}
	root, err = filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{
		Port:   port,
		URL:    fmt.Sprintf("http://127.0.0.1:%d", port),
		bin:    bin,
		prefix: t.TempDir(),
	}
	if err := os.Mkdir(filepath.Join(s.prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	var server []string
	if opts.WebDAV {
		server = append(server,
			"dav_methods PUT DELETE MKCOL COPY MOVE;",
			"dav_access user:rw group:r all:r;",
			"create_full_put_path on;",
			"client_max_body_size 0;")
	}
	server = append(server, opts.Extra...)
	conf := Config(s.prefix, fmt.Sprintf("127.0.0.1:%d", port), root, server)
	if err := os.WriteFile(s.conf(), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("nginx %s access log:\n%s", s.URL, tail(s.path("access.log"), 30))
			t.Logf("nginx %s error log:\n%s", s.URL, tail(s.path("error.log"), 30))
		}
	})
	return s
}

// Config is the configuration New writes: nginx as one process in the
// foreground with its files under prefix, serving root on listen
// ("ADDR:PORT") with the server directives extra. Tests that start nginx
// themselves (in a network namespace) use it too.
func Config(prefix, listen, root string, extra []string) string {
	// master_process off: one process, running as the test's user, so
	// that files PUT are the test's and nothing switches to nobody.
	return fmt.Sprintf(`master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  types { application/octet-stream wim; application/json json; }
  server {
    listen %[2]s;
    root %[3]s;
    location = %[5]s { access_log off; return 204; }
    %[4]s
  }
}
`, prefix, listen, root, strings.Join(extra, "\n    "), syncPath)
}

func (s *Server) path(name string) string { return filepath.Join(s.prefix, name) }
func (s *Server) conf() string            { return s.path("nginx.conf") }

// Start runs nginx and waits until it accepts connections. Unlike the
// package's Start it reports instead of failing the test, so a test may
// call it from another goroutine.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errors.New("testnginx: test already finished")
	}
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("testnginx: started twice")
	}
	// -e: nginx opens its error log before reading the configuration;
	// the compiled-in one under /var/log is not the test's to write.
	s.cmd = exec.Command(s.bin, "-p", s.prefix+"/", "-c", s.conf(), "-e", s.path("error.log"), "-g", "daemon off;")
	stderr, err := os.Create(s.path("stderr.log"))
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = stderr, stderr
	err = child.Start(s.cmd) // no nginx left behind by a killed test
	stderr.Close()
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("testnginx: %w", err)
	}
	s.exited = make(chan struct{})
	cmd, exited := s.cmd, s.exited
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Unlock()

	addr := fmt.Sprintf("127.0.0.1:%d", s.Port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("nginx exited at start (%v):\n%s%s", cmd.ProcessState,
				tail(s.path("stderr.log"), 20), tail(s.path("error.log"), 20))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nginx did not accept connections on %s within 10s:\n%s", addr, tail(s.path("error.log"), 20))
}

// Kill ends nginx at once, as a crash would: connections are cut in the
// middle of their responses. Start may run it again on the same port.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// syncPath answers 204 and is not logged. nginx logs a request only after
// its last byte went out, so a client that has its response may read the
// log before the line is there. One worker handles one event at a time:
// once it has answered a request for syncPath, every earlier response
// the client has read completely is logged.
const syncPath = "/.testnginx-sync"

var syncClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// AccessLog returns the lines nginx has logged so far, oldest first, in
// nginx's "combined" format: `... "GET /x HTTP/1.1" 206 1234 ...`,
// including every request whose response the test has read completely.
func (s *Server) AccessLog() []string {
	if resp, err := syncClient.Get(s.URL + syncPath); err == nil {
		resp.Body.Close()
	}
	b, _ := os.ReadFile(s.path("access.log"))
	t := strings.TrimSpace(string(b))
	if t == "" {
		return nil
	}
	return strings.Split(t, "\n")
}

// tail returns the last n lines of a file, or a note why there are none.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)\n", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
