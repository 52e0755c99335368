package fetch

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginx is a real nginx serving dir on 127.0.0.1, started with a private
// configuration so that it touches nothing of the host's.
type nginx struct {
	URL    string
	Addr   string
	prefix string
	cmd    *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newNginx configures (but does not start) nginx on port (0: a free one).
func newNginx(t *testing.T, dir string, port int) *nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nginx"); e != nil {
			t.Skip("nginx not installed (scripts/setup-host.sh installs it)")
		}
		bin = "/usr/sbin/nginx"
	}
	if port == 0 {
		port = freePort(t)
	}
	prefix := t.TempDir()
	conf := fmt.Sprintf(`
master_process off;
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
    listen 127.0.0.1:%[2]d;
    root %[3]s;
  }
}
`, prefix, port, dir)
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755)
	if err := os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &nginx{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Addr: fmt.Sprintf("127.0.0.1:%d", port), prefix: prefix}
	n.cmd = exec.Command(bin, "-c", filepath.Join(prefix, "nginx.conf"), "-p", prefix, "-g", "daemon off;")
	return n
}

func (n *nginx) start(t *testing.T) {
	t.Helper()
	n.cmd.Stderr = os.Stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.cmd.Process.Kill(); n.cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", n.Addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(n.prefix, "error.log"))
	t.Fatalf("nginx did not start:\n%s", b)
}

// accessLog returns nginx's access log lines.
func (n *nginx) accessLog() []string {
	b, _ := os.ReadFile(filepath.Join(n.prefix, "access.log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func startNginx(t *testing.T, dir string) *nginx {
	n := newNginx(t, dir, 0)
	n.start(t)
	return n
}
