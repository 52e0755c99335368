package fetch

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sign"
)

// pkg writes a package into a new directory: one pseudo-random file, its
// manifest and signature. It returns the dir, manifest and key pair.
func pkg(t *testing.T, size int) (string, *manifest.Manifest, []byte, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "image.wim"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	pubF, privF, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sign.ParsePublicKey(pubF)
	priv, err := sign.ParsePrivateKey(privF)
	if err != nil {
		t.Fatal(err)
	}
	m, mb, err := manifest.Build(dir, []string{"image.wim"}, manifest.BuildOptions{Name: "test", Image: &manifest.Image{File: "image.wim", Index: 1}, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, manifest.FileName), mb, 0o644)
	sig, err := sign.Sign(mb, priv, m.SignContext())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, manifest.SignatureName), sig, 0o644)
	return dir, m, mb, pub
}

func quick() *Client {
	return &Client{httpx.Client{Tries: 4, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}}
}

func TestDownloadNginx(t *testing.T) {
	dir, m, _, _ := pkg(t, 3<<20+12345)
	n := testnginx.Start(t, dir, testnginx.Options{})
	e := &m.Files[0]
	stage := t.TempDir()
	dest := filepath.Join(stage, "image.wim")
	var last int64
	if err := quick().Download(context.Background(), n.URL+"/image.wim", dest, e, func(d, _ int64) { last = d }); err != nil {
		t.Fatal(err)
	}
	if last != e.Size {
		t.Errorf("progress ended at %d of %d", last, e.Size)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatal("downloaded file differs")
	}
	if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
		t.Error(".part left behind")
	}

	// Resume: a partial file from an earlier boot is continued with Range.
	os.Remove(dest)
	os.WriteFile(dest+".part", want[:1<<20], 0o644)
	if err := quick().Download(context.Background(), n.URL+"/image.wim", dest, e, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatal("resumed file differs")
	}
	log := n.AccessLog()
	if last := log[len(log)-1]; !strings.Contains(last, fmt.Sprintf(`"GET /image.wim HTTP/1.1" 206 %d `, e.Size-1<<20)) {
		t.Errorf("resume was not a 206 of the remaining %d bytes: %s", e.Size-1<<20, last)
	}

	// A damaged partial file (power cut) does not verify, and is fetched
	// again from zero.
	os.Remove(dest)
	junk := bytes.Repeat([]byte{0}, 1<<20)
	os.WriteFile(dest+".part", junk, 0o644)
	if err := quick().Download(context.Background(), n.URL+"/image.wim", dest, e, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatal("re-downloaded file differs")
	}
	log = n.AccessLog()
	if last := log[len(log)-1]; !strings.Contains(last, fmt.Sprintf(`"GET /image.wim HTTP/1.1" 206 %d `, e.Size)) {
		t.Errorf("damaged partial was not fetched again whole: %s", last)
	}

	// A verified file already in place is kept without a request.
	before := len(n.AccessLog())
	if err := quick().Download(context.Background(), n.URL+"/image.wim", dest, e, nil); err != nil {
		t.Fatal(err)
	}
	if after := len(n.AccessLog()); after != before {
		t.Errorf("verified file was fetched again (%d requests)", after-before)
	}
}

func TestDownloadFailClosed(t *testing.T) {
	dir, m, _, _ := pkg(t, 200000)
	n := testnginx.Start(t, dir, testnginx.Options{})
	ctx := context.Background()
	stage := t.TempDir()
	e := m.Files[0]

	t.Run("404", func(t *testing.T) {
		err := quick().Download(ctx, n.URL+"/missing.wim", filepath.Join(stage, "a"), &e, nil)
		if !errors.Is(err, httpx.ErrNotFound) || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong sha256", func(t *testing.T) {
		// Without chunk hashes the whole-file SHA-256 is the check.
		bad := e
		bad.ChunkSize, bad.Chunks = 0, nil
		bad.SHA256 = strings.Repeat("0", 64)
		dest := filepath.Join(stage, "b")
		err := quick().Download(ctx, n.URL+"/image.wim", dest, &bad, nil)
		if !errors.Is(err, manifest.ErrChecksum) || !strings.Contains(err.Error(), bad.SHA256) || !strings.Contains(err.Error(), e.SHA256) || !strings.Contains(err.Error(), "image.wim") {
			t.Fatalf("err = %v (want the file and both hashes)", err)
		}
		for _, p := range []string{dest, dest + ".part"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed verification", p)
			}
		}
	})
	t.Run("wrong chunk hash", func(t *testing.T) {
		// With them, the chunks are (manifest.Check).
		bad := e
		bad.Chunks = slices.Clone(e.Chunks)
		bad.Chunks[2] = strings.Repeat("0", 64)
		dest := filepath.Join(stage, "e")
		err := quick().Download(ctx, n.URL+"/image.wim", dest, &bad, nil)
		if !errors.Is(err, manifest.ErrChecksum) || !strings.Contains(err.Error(), fmt.Sprintf("bytes %d-%d", 2*e.ChunkSize, 3*e.ChunkSize-1)) {
			t.Fatalf("err = %v (want the chunk's bytes)", err)
		}
		for _, p := range []string{dest, dest + ".part"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed verification", p)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		// The server's file is shorter than the manifest says.
		full, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
		os.WriteFile(filepath.Join(dir, "short.wim"), full[:150000], 0o644)
		err := quick().Download(ctx, n.URL+"/short.wim", filepath.Join(stage, "c"), &e, nil)
		if !errors.Is(err, manifest.ErrSize) {
			t.Fatalf("err = %v, want manifest.ErrSize", err)
		}
		// Same with a partial file already as long as the server's.
		os.WriteFile(filepath.Join(stage, "d.part"), full[:150000], 0o644)
		err = quick().Download(ctx, n.URL+"/short.wim", filepath.Join(stage, "d"), &e, nil)
		if !errors.Is(err, manifest.ErrSize) {
			t.Fatalf("resumed: err = %v, want manifest.ErrSize", err)
		}
	})
}

func TestDownloadServerComesUp(t *testing.T) {
	dir, m, _, _ := pkg(t, 100000)
	n := testnginx.New(t, dir, testnginx.Options{})
	// Started late from another goroutine, where Start reports instead
	// of calling t.Fatal (which belongs to the test's goroutine).
	started := make(chan error, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		started <- n.Start()
	}()
	var retries int
	c := &Client{httpx.Client{Tries: 21, Backoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Log: func(string, ...any) { retries++ }}}
	dest := filepath.Join(t.TempDir(), "x")
	if err := c.Download(context.Background(), n.URL+"/image.wim", dest, &m.Files[0], nil); err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if retries == 0 {
		t.Error("no retry logged although the server was down at first")
	}
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

func TestDownloadBoundedTime(t *testing.T) {
	_, m, _, _ := pkg(t, 1000)
	url := fmt.Sprintf("http://127.0.0.1:%d/x", freePort(t)) // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	start := time.Now()
	c := &Client{httpx.Client{Tries: 1000, Backoff: 50 * time.Millisecond}}
	err := c.Download(ctx, url, filepath.Join(t.TempDir(), "x"), &m.Files[0], nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %s, bound was 800ms", d)
	}
}

// TestDownloadConnectionDrop: the server cuts the first response halfway;
// the client resumes with a Range request and ends with the right bytes.
func TestDownloadConnectionDrop(t *testing.T) {
	dir, m, _, _ := pkg(t, 500000)
	data, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	var ranges []string
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		if first {
			first = false
			w.Header().Set("Content-Length", "500000")
			w.Write(data[:200000])
			panic(http.ErrAbortHandler) // drop the connection
		}
		http.ServeContent(w, r, "image.wim", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "x")
	if err := quick().Download(context.Background(), srv.URL+"/image.wim", dest, &m.Files[0], nil); err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 2 || ranges[0] != "bytes=0-" || ranges[1] != "bytes=200000-" {
		t.Errorf("requests' Range headers = %q", ranges)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Error("file differs")
	}
}

func TestFileRangeReads(t *testing.T) {
	dir, m, _, _ := pkg(t, 1<<20+777)
	n := testnginx.Start(t, dir, testnginx.Options{})
	data, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	f, err := quick().OpenFile(context.Background(), n.URL+"/image.wim", &m.Files[0], 4*64<<10)
	if err != nil {
		t.Fatal(err)
	}
	// Whole file through a SectionReader equals the original.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatal("range-read content differs")
	}
	reqs := f.Requests
	if reqs != 17 {
		t.Errorf("%d requests for 17 chunks", reqs)
	}
	// Random reads across chunk boundaries; cached chunks cost nothing.
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		off := rng.Int63n(int64(len(data)))
		buf := make([]byte, rng.Intn(100000))
		k, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:k], data[off:off+int64(k)]) {
			t.Fatalf("ReadAt(%d, %d) differs", len(buf), off)
		}
	}
	f.ReadAt(make([]byte, 10), 100)
	before := f.Requests
	f.ReadAt(make([]byte, 10), 100)
	if f.Requests != before {
		t.Error("a chunk just read was not cached")
	}

	// A tampered server byte: the chunk is refused, no bytes returned.
	data[70000] ^= 1
	os.WriteFile(filepath.Join(dir, "image.wim"), data, 0o644)
	g, _ := quick().OpenFile(context.Background(), n.URL+"/image.wim", &m.Files[0], 0)
	k, err := g.ReadAt(make([]byte, 100), 65536+4000)
	if !errors.Is(err, manifest.ErrChecksum) || k != 0 {
		t.Fatalf("tampered chunk: n=%d err=%v", k, err)
	}
	// Without chunk hashes, streaming is refused up front.
	e := m.Files[0]
	e.ChunkSize, e.Chunks = 0, nil
	if _, err := quick().OpenFile(context.Background(), n.URL+"/image.wim", &e, 0); !errors.Is(err, manifest.ErrFormat) {
		t.Errorf("no chunks: err = %v", err)
	}
}

// A download resumed from a server that ignores Range starts again from
// zero and ends with the right file.
func TestDownloadServerIgnoresRange(t *testing.T) {
	dir, m, _, _ := pkg(t, 1<<20+5)
	want, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	n := testnginx.Start(t, dir, testnginx.Options{Extra: []string{"max_ranges 0;"}})
	e := &m.Files[0]
	dest := filepath.Join(t.TempDir(), "image.wim")
	os.WriteFile(dest+".part", want[:300000], 0o644)
	if err := quick().Download(context.Background(), n.URL+"/image.wim", dest, e, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatal("file differs")
	}
}

// Reading straight from the server needs Range: refused, saying why.
func TestFileServerIgnoresRange(t *testing.T) {
	dir, m, _, _ := pkg(t, 300000)
	n := testnginx.Start(t, dir, testnginx.Options{Extra: []string{"max_ranges 0;"}})
	_, err := quick().OpenFile(context.Background(), n.URL+"/image.wim", &m.Files[0], 0)
	if !errors.Is(err, httpx.ErrNoRange) || !strings.Contains(err.Error(), "the server ignores Range requests") {
		t.Fatalf("err = %v, want httpx.ErrNoRange", err)
	}
	if l := n.AccessLog(); len(l) != 1 {
		t.Errorf("refusal retried: %q", l)
	}
}

// TestPlantedLinks: the staging folder is on the target disk, where
// whoever ran a system on it could leave links under the names a download
// uses, pointing at another disk (here a file standing in for it). Neither
// a staged download nor a pipelined one writes through them, and both
// still end with the verified file.
func TestPlantedLinks(t *testing.T) {
	dir, m, _, _ := pkg(t, 300000)
	want, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	n := testnginx.Start(t, dir, testnginx.Options{})
	e := &m.Files[0]
	staged := func(dest string) error {
		return quick().Download(context.Background(), n.URL+"/image.wim", dest, e, nil)
	}
	pipelined := func(dest string) error {
		tr, err := quick().StartTransfer(context.Background(), n.URL+"/image.wim", dest, e, nil)
		if err != nil {
			return err
		}
		defer tr.Close()
		return tr.Wait()
	}
	for _, c := range []struct {
		name, link string
		get        func(dest string) error
	}{
		{"staged, the partial file", ".part", staged},
		{"staged, the file", "", staged},
		{"pipelined, the partial file", ".part", pipelined},
		{"pipelined, the file", "", pipelined},
	} {
		t.Run(c.name, func(t *testing.T) {
			victim := filepath.Join(t.TempDir(), "other-disk")
			data := bytes.Repeat([]byte("precious "), 1000)
			os.WriteFile(victim, data, 0o644)
			dest := filepath.Join(t.TempDir(), "image.wim")
			if err := os.Symlink(victim, dest+c.link); err != nil {
				t.Fatal(err)
			}
			if err := c.get(dest); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(victim); !bytes.Equal(got, data) {
				t.Error("the download wrote through the planted link")
			}
			if fi, err := os.Lstat(dest); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("%s is not a regular file: %v", dest, err)
			}
			if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
				t.Error("the downloaded file differs")
			}
		})
	}
}
