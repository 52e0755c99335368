package wim

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCaptureFilterAndFields(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	write := func(rel, data string) {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/machine-id", "0123456789abcdef\n")
	write("etc/hostname", "ref\n")
	write("etc/ssh/ssh_host_ed25519_key", "SECRET")
	write("var/log/syslog", "lots of log")
	write("var/cache/x/y", "cached")
	// A hard link to an emptied file keeps its data under the other name.
	if err := os.Link(filepath.Join(src, "var/log/syslog"), filepath.Join(src, "var/log/syslog.link")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	filter := func(p string, m fs.FileMode) CaptureAction {
		seen = append(seen, p)
		switch {
		case p == "/etc/machine-id", p == "/var/log/syslog":
			if !m.IsRegular() || m.Perm() != 0o640 {
				t.Errorf("%s: mode %v", p, m)
			}
			return CaptureEmpty
		case strings.HasPrefix(p, "/etc/ssh/ssh_host_"), p == "/var/cache":
			return CaptureOmit
		case p == "/var/cache/x":
			t.Errorf("filter called below an omitted directory: %s", p)
		}
		return CaptureKeep
	}
	out := filepath.Join(tmp, "x.wim")
	w, err := Create(out, WriterOptions{Compression: CompressionXPRESS})
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{"MININT/OS": "Debian GNU/Linux 12 <bookworm> & co", "MININT/KERNELS": "6.1.0", "MININT_CAPTURED": "x"}
	if err := w.AddImage(context.Background(), src, ImageOptions{Name: "ref", Filter: filter, Fields: fields}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 {
		t.Fatal("filter never called")
	}
	rc, err := OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	img, _ := rc.Image(1)
	for k, v := range fields {
		if img.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, img.Fields[k], v)
		}
	}
	want := map[string]string{"/etc/machine-id": "", "/etc/hostname": "ref\n", "/var/log/syslog": "", "/var/log/syslog.link": "lots of log"}
	for p, data := range want {
		f, err := img.Lookup(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(b) != data {
			t.Errorf("%s = %q, %v; want %q", p, b, err, data)
		}
		if f.Perm() != 0o640 {
			t.Errorf("%s: perm %o", p, f.Perm())
		}
	}
	for _, p := range []string{"/etc/ssh/ssh_host_ed25519_key", "/var/cache", "/var/cache/x/y"} {
		if _, err := img.Lookup(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", p, err)
		}
	}
	if _, err := img.Lookup("/etc/ssh"); err != nil {
		t.Errorf("/etc/ssh: %v", err)
	}
	// The source is untouched.
	if b, _ := os.ReadFile(filepath.Join(src, "etc/machine-id")); string(b) != "0123456789abcdef\n" {
		t.Errorf("source changed: %q", b)
	}
}

func TestCaptureFieldsRefused(t *testing.T) {
	tmp := t.TempDir()
	for _, k := range []string{"NAME", "DIRCOUNT/X", "1BAD", "A//B", "xmlfoo", "A B"} {
		w, err := Create(filepath.Join(tmp, "x.wim"), WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		err = w.AddImage(context.Background(), tmp, ImageOptions{Fields: map[string]string{k: "v"}})
		if err == nil {
			t.Errorf("field %q accepted", k)
		}
		w.Close()
	}
}
