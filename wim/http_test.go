package wim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// httpReaderAt reads byte ranges of a URL: the simplest HTTP-backed source.
type httpReaderAt struct {
	url string
}

func (h httpReaderAt) ReadAt(p []byte, off int64) (int, error) {
	req, _ := http.NewRequest("GET", h.url, nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("range request: %s", resp.Status)
	}
	n, err := io.ReadFull(resp.Body, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// A WIM served over HTTP ranges applies exactly, with few requests.
func TestReaderOverHTTP(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	genTreeSeed(t, src, 9)
	w := filepath.Join(tmp, "x.wim")
	capture(t, src, w, WriterOptions{Compression: CompressionLZX}, ImageOptions{})
	data, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.ServeContent(rw, r, "x.wim", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	r, err := NewReader(httpReaderAt{srv.URL}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "out")
	before := requests.Load()
	if err := r.Apply(context.Background(), 1, dst, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, src, dst)
	var blobs int64
	for _, b := range r.blobs {
		if b.res.rh.uncompSize > 0 {
			blobs++
		}
	}
	// One request per blob at most (small resources are read whole).
	if n := requests.Load() - before; n > blobs+2 {
		t.Errorf("apply made %d range requests for %d blobs", n, blobs)
	}
}
