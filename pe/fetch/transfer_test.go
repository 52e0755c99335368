package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/manifest"
)

// readAll reads the transfer like an apply does: several goroutines, the
// end of the file first (a WIM's tables), then the body in order.
func readAll(t *testing.T, tr *Transfer) ([]byte, error) {
	t.Helper()
	out := make([]byte, tr.Size())
	tail := min(int64(100000), tr.Size())
	if _, err := tr.ReadAt(out[tr.Size()-tail:], tr.Size()-tail); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	piece := (tr.Size() + 3) / 4
	for w := int64(0); w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := w * piece; off < min((w+1)*piece, tr.Size()); off += 30000 {
				end := min(off+30000, (w+1)*piece, tr.Size())
				if _, err := tr.ReadAt(out[off:end], off); err != nil && err != io.EOF {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

func TestTransferReadWhileDownloading(t *testing.T) {
	dir, m, _, _ := pkg(t, 2<<20+4321)
	want, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	// 4 MB/s: the download takes about half a second, readers wait for it.
	n := testnginx.Start(t, dir, testnginx.Options{Extra: []string{"limit_rate 4m;"}})
	dest := filepath.Join(t.TempDir(), "image.wim")
	var last int64
	var mu sync.Mutex
	tr, err := quick().StartTransfer(context.Background(), n.URL+"/image.wim", dest, &m.Files[0], func(d, _ int64) {
		mu.Lock()
		last = max(last, d)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Error("the final name exists before the download is verified")
	}
	got, err := readAll(t, tr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes read during the download differ from the file")
	}
	if err := tr.Wait(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, want) {
		t.Error("the staged file differs")
	}
	if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
		t.Error(".part left behind")
	}
	if last != m.Files[0].Size {
		t.Errorf("progress ended at %d of %d", last, m.Files[0].Size)
	}
	// The tail was read first, long before the stream got there: it came
	// by Range requests of its own, and the stream was one GET.
	if tr.RangeFetches == 0 {
		t.Error("the end of the file was waited for instead of fetched")
	}
	var whole, ranged int
	for _, l := range n.AccessLog() {
		if strings.Contains(l, fmt.Sprintf(`"GET /image.wim HTTP/1.1" 206 %d `, m.Files[0].Size)) {
			whole++
		} else if strings.Contains(l, `"GET /image.wim HTTP/1.1" 206 `) {
			ranged++
		}
	}
	if whole != 1 || ranged != tr.RangeFetches {
		t.Errorf("%d whole GETs and %d range GETs, want 1 and %d:\n%s", whole, ranged, tr.RangeFetches, strings.Join(n.AccessLog(), "\n"))
	}
}

func TestTransferFailClosed(t *testing.T) {
	dir, m, _, _ := pkg(t, 700000)
	n := testnginx.Start(t, dir, testnginx.Options{})
	ctx := context.Background()
	e := m.Files[0]
	full, _ := os.ReadFile(filepath.Join(dir, "image.wim"))

	t.Run("tampered", func(t *testing.T) {
		bad := bytes.Clone(full)
		bad[400000] ^= 1 // chunk 6
		os.WriteFile(filepath.Join(dir, "bad.wim"), bad, 0o644)
		dest := filepath.Join(t.TempDir(), "x")
		tr, err := quick().StartTransfer(ctx, n.URL+"/bad.wim", dest, &e, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		// Chunks before the tampered one are served; the tampered one is
		// never handed out, not even its good bytes.
		p := make([]byte, 1000)
		if _, err := tr.ReadAt(p, 100000); err != nil || !bytes.Equal(p, full[100000:101000]) {
			t.Fatalf("good chunk: %v", err)
		}
		k, err := tr.ReadAt(p, 6*65536)
		if !errors.Is(err, manifest.ErrChecksum) || k != 0 {
			t.Fatalf("tampered chunk: n=%d err=%v", k, err)
		}
		if err := tr.Wait(); !errors.Is(err, manifest.ErrChecksum) || !strings.Contains(err.Error(), "393216-458751") {
			t.Fatalf("Wait = %v, want manifest.ErrChecksum naming the bytes", err)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Error("a file that failed verification got its final name")
		}
	})
	t.Run("truncated", func(t *testing.T) {
		os.WriteFile(filepath.Join(dir, "short.wim"), full[:500000], 0o644)
		_, err := quick().StartTransfer(ctx, n.URL+"/short.wim", filepath.Join(t.TempDir(), "x"), &e, nil)
		if !errors.Is(err, manifest.ErrSize) || !strings.Contains(err.Error(), "the manifest says") {
			t.Fatalf("err = %v, want manifest.ErrSize", err)
		}
	})
	t.Run("404", func(t *testing.T) {
		_, err := quick().StartTransfer(ctx, n.URL+"/missing.wim", filepath.Join(t.TempDir(), "x"), &e, nil)
		if !errors.Is(err, httpx.ErrNotFound) || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("no chunk hashes", func(t *testing.T) {
		e := e
		e.ChunkSize, e.Chunks = 0, nil
		if _, err := quick().StartTransfer(ctx, n.URL+"/image.wim", filepath.Join(t.TempDir(), "x"), &e, nil); !errors.Is(err, manifest.ErrFormat) {
			t.Fatalf("err = %v, want manifest.ErrFormat", err)
		}
	})
}

func TestTransferResume(t *testing.T) {
	dir, m, _, _ := pkg(t, 1<<20+999)
	want, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	n := testnginx.Start(t, dir, testnginx.Options{})
	e := &m.Files[0]
	dest := filepath.Join(t.TempDir(), "image.wim")
	// What a power cut may leave: chunks 0-3 good, chunk 4 half-written
	// garbage, a hole, and the last chunk fetched out of order.
	part := make([]byte, e.Size)
	copy(part, want[:4*65536])
	rand.New(rand.NewSource(9)).Read(part[4*65536 : 4*65536+30000])
	last := int64(len(e.Chunks)-1) * 65536
	copy(part[last:], want[last:])
	os.WriteFile(dest+".part", part, 0o644)

	tr, err := quick().StartTransfer(context.Background(), n.URL+"/image.wim", dest, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if want := 4*65536 + e.Size - last; tr.Resumed != want {
		t.Errorf("kept %d bytes of the partial file, want %d", tr.Resumed, want)
	}
	got, err := readAll(t, tr)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("resumed read differs (err %v)", err)
	}
	if err := tr.Wait(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, want) {
		t.Fatal("resumed file differs")
	}
	if log := strings.Join(n.AccessLog(), "\n"); !strings.Contains(log, fmt.Sprintf(`"GET /image.wim HTTP/1.1" 206 %d `, e.Size-4*65536)) {
		t.Errorf("resume did not continue at chunk 4:\n%s", log)
	}

	// A verified file already in place is checked again but not fetched.
	before := len(n.AccessLog())
	tr2, err := quick().StartTransfer(context.Background(), n.URL+"/image.wim", dest, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.Wait(); err != nil {
		t.Fatal(err)
	}
	tr2.Close()
	if after := len(n.AccessLog()); after != before {
		t.Errorf("a complete file was fetched again (%d requests)", after-before)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, want) {
		t.Fatal("file differs after the second check")
	}
}

// TestTransferCloseAndRestart: Close stops a transfer whose server went
// silent, readers get ErrClosed, the partial file stays, and a new transfer
// continues it.
func TestTransferCloseAndRestart(t *testing.T) {
	dir, m, _, _ := pkg(t, 1<<20)
	data, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	var hang sync.Mutex
	hang.Lock() // held: the server sends 200000 bytes, then nothing
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hang.TryLock() {
			if r.Header.Get("Range") == "bytes=0-" {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
				w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(data[:200000])
				w.(http.Flusher).Flush()
			}
			<-r.Context().Done()
			return
		}
		hang.Unlock()
		http.ServeContent(w, r, "image.wim", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	dest := filepath.Join(t.TempDir(), "image.wim")
	tr, err := quick().StartTransfer(context.Background(), srv.URL+"/image.wim", dest, &m.Files[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ReadAt(make([]byte, 10), 100000); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 2)
	for _, off := range []int64{250000, 900000} { // next to the stream, far ahead
		go func() {
			_, err := tr.ReadAt(make([]byte, 10), off)
			blocked <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-blocked; !errors.Is(err, ErrClosed) {
			t.Errorf("blocked reader got %v, want ErrClosed", err)
		}
	}
	if err := tr.Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait = %v", err)
	}
	if _, err := os.Stat(dest + ".part"); err != nil {
		t.Fatalf("partial file after Close: %v", err)
	}
	hang.Unlock()
	tr2, err := quick().StartTransfer(context.Background(), srv.URL+"/image.wim", dest, &m.Files[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	if tr2.Resumed != 3*65536 {
		t.Errorf("restart kept %d bytes, want the 3 whole chunks of the 200000 sent", tr2.Resumed)
	}
	if err := tr2.Wait(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, data) {
		t.Fatal("file differs")
	}
}

// TestTransferDropAndStall: the first response is cut, the second goes
// silent; each is retried from the first missing chunk.
func TestTransferDropAndStall(t *testing.T) {
	dir, m, _, _ := pkg(t, 500000)
	data, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		k := len(ranges)
		mu.Unlock()
		switch k {
		case 1:
			w.Header().Set("Content-Range", "bytes 0-499999/500000")
			w.Header().Set("Content-Length", "500000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:200000])
			panic(http.ErrAbortHandler)
		case 2:
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-499999/500000", 3*65536))
			w.Header().Set("Content-Length", fmt.Sprint(500000-3*65536))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[3*65536 : 4*65536+100])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // silent until the client gives up
			return
		}
		http.ServeContent(w, r, "image.wim", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	c := quick()
	c.Idle = 300 * time.Millisecond
	dest := filepath.Join(t.TempDir(), "x")
	tr, err := c.StartTransfer(context.Background(), srv.URL+"/image.wim", dest, &m.Files[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 3 || ranges[0] != "bytes=0-" || ranges[1] != "bytes=196608-" || ranges[2] != "bytes=262144-" {
		t.Errorf("requests' Range headers = %q", ranges)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Error("file differs")
	}
}

// TestTransferRangeStall: an out-of-order chunk request that goes silent
// is dropped after the stall limit and asked again.
func TestTransferRangeStall(t *testing.T) {
	dir, m, _, _ := pkg(t, 500000)
	data, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	var ranged atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rg := r.Header.Get("Range"); rg != "bytes=0-" && ranged.Add(1) == 1 {
			w.Header().Set("Content-Range", strings.Replace(rg, "=", " ", 1)+"/500000")
			w.WriteHeader(http.StatusPartialContent)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		if r.Header.Get("Range") == "bytes=0-" {
			// The stream: slow, so the reader's chunk cannot come from it.
			w.Header().Set("Content-Range", "bytes 0-499999/500000")
			w.Header().Set("Content-Length", "500000")
			w.WriteHeader(http.StatusPartialContent)
			for off := 0; off < len(data); off += 16 << 10 {
				time.Sleep(30 * time.Millisecond)
				if _, err := w.Write(data[off:min(off+16<<10, len(data))]); err != nil {
					return
				}
			}
			return
		}
		http.ServeContent(w, r, "image.wim", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	c := quick()
	c.Idle = 200 * time.Millisecond
	tr, err := c.StartTransfer(context.Background(), srv.URL+"/image.wim", filepath.Join(t.TempDir(), "x"), &m.Files[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := make([]byte, 1000)
	if _, err := tr.ReadAt(p, 490000); err != nil || !bytes.Equal(p, data[490000:491000]) {
		t.Fatalf("read of the last chunk: %v", err)
	}
	if n := ranged.Load(); n != 2 {
		t.Errorf("%d range requests, want the stalled one and its retry", n)
	}
	if err := tr.Wait(); err != nil {
		t.Fatal(err)
	}
}

// noRange is nginx with byte ranges switched off: every request gets the
// whole file with 200, as from python3 -m http.server.
func noRange(t *testing.T, dir string) *testnginx.Server {
	return testnginx.Start(t, dir, testnginx.Options{Extra: []string{"max_ranges 0;"}})
}

// A server that ignores Range still gets the file pipelined: the readers
// wait for the one sequential stream instead of fetching ahead, and a
// resume starts from byte 0 keeping the chunks that verified.
func TestTransferServerIgnoresRange(t *testing.T) {
	dir, m, _, _ := pkg(t, 1<<20+999)
	want, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	n := noRange(t, dir)
	e := &m.Files[0]
	for _, resume := range []bool{false, true} {
		dest := filepath.Join(t.TempDir(), "image.wim")
		if resume {
			part := make([]byte, 5*65536)
			copy(part, want[:4*65536])
			rand.New(rand.NewSource(3)).Read(part[4*65536:])
			os.WriteFile(dest+".part", part, 0o644)
		}
		var log []string
		c := quick()
		c.Log = func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }
		tr, err := c.StartTransfer(context.Background(), n.URL+"/image.wim", dest, e, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !tr.IgnoresRange() {
			t.Error("IgnoresRange is false")
		}
		got, err := readAll(t, tr)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read over a server without Range: %v", err)
		}
		if err := tr.Wait(); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		if b, _ := os.ReadFile(dest); !bytes.Equal(b, want) {
			t.Fatal("staged file differs")
		}
		if tr.RangeFetches != 0 || len(log) != 1 || !strings.Contains(log[0], "the server ignores Range requests") {
			t.Errorf("%d range fetches, log %q", tr.RangeFetches, log)
		}
		if resume && tr.Resumed != 4*65536 {
			t.Errorf("resume kept %d bytes, want the 4 good chunks", tr.Resumed)
		}
	}
	for _, l := range n.AccessLog() {
		if !strings.Contains(l, fmt.Sprintf(`"GET /image.wim HTTP/1.1" 200 %d `, e.Size)) {
			t.Errorf("not one whole GET: %s", l)
		}
	}
}

// A server that honours the stream's Range request but then answers a
// chunk's request with the whole file (one node of a CDN without Range):
// the chunk is taken from that answer and readers wait for the stream.
func TestTransferRangeIgnoredLater(t *testing.T) {
	dir, m, _, _ := pkg(t, 500000)
	data, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	// The stream's body waits until a reader's own request was answered
	// (with the whole file), so that readers fetch ahead.
	answered := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") == "bytes=0-" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.(http.Flusher).Flush()
			select {
			case <-answered:
			case <-r.Context().Done():
				return
			}
			w.Write(data)
			return
		}
		r.Header.Del("Range")
		http.ServeContent(w, r, "image.wim", time.Time{}, bytes.NewReader(data))
		once.Do(func() { close(answered) })
	}))
	defer srv.Close()
	tr, err := quick().StartTransfer(context.Background(), srv.URL+"/image.wim", filepath.Join(t.TempDir(), "x"), &m.Files[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	got, err := readAll(t, tr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
	if err := tr.Wait(); err != nil {
		t.Fatal(err)
	}
	if !tr.IgnoresRange() || tr.RangeFetches == 0 {
		t.Errorf("IgnoresRange %v, %d chunks fetched ahead; want true and the first one taken from the whole answer", tr.IgnoresRange(), tr.RangeFetches)
	}
}

// TestChunkHashes: the readers check chunks with the hash the entry names,
// SHA-256 (manifests from before BLAKE3 chunks) as well as BLAKE3, and a
// chunk list read with the other hash matches nothing.
func TestChunkHashes(t *testing.T) {
	dir, m, _, _ := pkg(t, 300000)
	full, _ := os.ReadFile(filepath.Join(dir, "image.wim"))
	bad := bytes.Clone(full)
	bad[200000] ^= 1 // chunk 3: bytes 196608-262143
	os.WriteFile(filepath.Join(dir, "bad.wim"), bad, 0o644)
	old, _, err := manifest.Build(dir, []string{"image.wim"}, manifest.BuildOptions{ChunkSize: 64 << 10, ChunkHash: manifest.ChunkSHA256})
	if err != nil {
		t.Fatal(err)
	}
	if m.Files[0].ChunkHash != manifest.ChunkBLAKE3 || old.Files[0].ChunkHash != "" {
		t.Fatalf("chunk hashes %q and %q, want blake3 and none (SHA-256)", m.Files[0].ChunkHash, old.Files[0].ChunkHash)
	}
	swapped := old.Files[0]
	swapped.ChunkHash = manifest.ChunkBLAKE3
	n := testnginx.Start(t, dir, testnginx.Options{})
	ctx := context.Background()
	for name, e := range map[string]manifest.Entry{"blake3": m.Files[0], "sha256": old.Files[0]} {
		t.Run(name, func(t *testing.T) {
			tr, err := quick().StartTransfer(ctx, n.URL+"/image.wim", filepath.Join(t.TempDir(), "x"), &e, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if got, err := readAll(t, tr); err != nil || !bytes.Equal(got, full) {
				t.Fatalf("Transfer read: %v", err)
			}
			if err := tr.Wait(); err != nil {
				t.Fatal(err)
			}
			f, err := quick().OpenFile(ctx, n.URL+"/image.wim", &e, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size())); err != nil || !bytes.Equal(got, full) {
				t.Fatalf("File read: %v", err)
			}
			g, err := quick().OpenFile(ctx, n.URL+"/bad.wim", &e, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if k, err := g.ReadAt(make([]byte, 10), 200000); !errors.Is(err, manifest.ErrChecksum) || k != 0 {
				t.Errorf("File, tampered chunk: %d %v", k, err)
			}
			tb, err := quick().StartTransfer(ctx, n.URL+"/bad.wim", filepath.Join(t.TempDir(), "x"), &e, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close()
			if err := tb.Wait(); !errors.Is(err, manifest.ErrChecksum) || !strings.Contains(err.Error(), "196608-262143") {
				t.Errorf("Transfer, tampered chunk: %v", err)
			}
		})
	}
	if _, err := quick().OpenFile(ctx, n.URL+"/image.wim", &swapped, 1<<20); !errors.Is(err, manifest.ErrChecksum) {
		t.Errorf("SHA-256 chunks read as BLAKE3: %v", err)
	}
}
