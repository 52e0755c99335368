package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/redact"
	"github.com/minint/minint/manifest"
)

// Client fetches package files over HTTP(S). Its httpx.Client gives every
// request its timeouts, the idle limit on bodies (a server that stops
// sending is dropped and asked again), retries with backoff, and redacted
// errors; Get reads small files (manifests, signatures) within a bound.
type Client struct {
	httpx.Client
}

func (c *Client) logf(format string, a ...any) {
	if c.Log != nil {
		c.Log(format, a...)
	}
}

// open requests bytes [off, end) of url, a file of size bytes (end < 0:
// to the end, as an open range "bytes=off-"), always with a Range header,
// so that the answer tells whether the server honours Range: ranged
// reports a 206 (checked against the request and size) or a 200 (the
// whole file, from byte 0, checked against size). The caller closes the
// body.
func (c *Client) open(ctx context.Context, url string, off, end, size int64) (resp *http.Response, ranged bool, err error) {
	req, err := httpx.NewRequest(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, err
	}
	if end < 0 {
		end = size
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	} else {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end-1))
	}
	resp, err = c.Do(req)
	if err != nil {
		return nil, false, err
	}
	shown := redact.URL(url)
	bad := func(err error) (*http.Response, bool, error) {
		resp.Body.Close()
		return nil, false, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		start, last, total, ok := parseContentRange(cr)
		if ok && total >= 0 && total != size {
			return bad(fmt.Errorf("%w: %s is %d bytes on the server, the manifest says %d", manifest.ErrSize, shown, total, size))
		}
		if !ok || start != off || last != end-1 {
			return bad(fmt.Errorf("GET %s: asked for bytes %d-%d, got Content-Range %q", shown, off, end-1, cr))
		}
		return resp, true, nil
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return bad(fmt.Errorf("%w: %s is %d bytes on the server, the manifest says %d", manifest.ErrSize, shown, resp.ContentLength, size))
		}
		return resp, false, nil
	case http.StatusRequestedRangeNotSatisfiable:
		return bad(fmt.Errorf("%w: %s ends before byte %d, the manifest says %d bytes", manifest.ErrSize, shown, off, size))
	}
	return nil, false, httpx.NewStatusError(resp)
}

// Download fetches url into dest and verifies it against e. A verified dest
// already there is kept. Otherwise bytes go to dest+".part", continued with
// a Range request if it exists (from an earlier try or an earlier boot) —
// from zero when the server ignores Range — and dest appears, fsync'd and
// renamed, only once it passes manifest.Check (its chunk hashes, on every
// CPU, when e has them; else size and SHA-256). A mismatch after a resumed
// download starts over once from zero (the partial file may have been
// damaged by a power cut); a mismatch of a fresh download is
// manifest.ErrChecksum. progress may be nil.
func (c *Client) Download(ctx context.Context, url, dest string, e *manifest.Entry, progress func(done, total int64)) error {
	if err := notRegularGone(dest); err != nil {
		return err
	}
	if err := manifest.Check(ctx, dest, e, nil); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		os.Remove(dest)
	}
	part := dest + ".part"
	shown := redact.URL(url)
	for fresh := false; ; fresh = true {
		if fresh {
			os.Remove(part)
		}
		resumed := false
		err := c.Retry(ctx, "GET "+shown, func() error {
			r, err := c.fetchPart(ctx, url, part, e, progress)
			resumed = resumed || r
			return err
		})
		if err != nil {
			return err
		}
		err = manifest.Check(ctx, part, e, nil)
		if err == nil {
			break
		}
		if !resumed || fresh {
			os.Remove(part)
			return fmt.Errorf("%s: %w", shown, err)
		}
		c.logf("%s: resumed download does not verify (%v); downloading again from the start", shown, err)
	}
	return durable.Rename(part, dest)
}

// fetchPart makes one request, appending to part. It reports whether it
// continued an existing partial file.
func (c *Client) fetchPart(ctx context.Context, url, part string, e *manifest.Entry, progress func(done, total int64)) (resumed bool, err error) {
	f, err := openPart(part)
	if err != nil {
		return false, err
	}
	defer func() {
		// Whatever arrived is kept for the next try, durably.
		if serr := f.Sync(); err == nil {
			err = serr
		}
		f.Close()
	}()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, err
	}
	if off > e.Size {
		if err := f.Truncate(0); err != nil {
			return false, err
		}
		off, _ = f.Seek(0, io.SeekStart)
	}
	if off == e.Size {
		return off > 0, nil
	}
	resp, ranged, err := c.open(ctx, url, off, -1, e.Size)
	if err != nil {
		return off > 0, err
	}
	defer resp.Body.Close()
	if !ranged && off > 0 {
		// The server ignores Range and sends everything again.
		c.logf("%s: the server ignores Range requests: downloading again from the start", redact.URL(url))
		if err := f.Truncate(0); err != nil {
			return false, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		off = 0
	}
	resumed = off > 0
	done := off
	buf := make([]byte, 256<<10)
	sinceSync, lastSync := int64(0), time.Now()
	limited := io.LimitReader(resp.Body, e.Size-off+1)
	for {
		n, rerr := limited.Read(buf)
		if n > 0 {
			if done+int64(n) > e.Size {
				return resumed, fmt.Errorf("%w: %s is longer than the manifest's %d bytes", manifest.ErrSize, redact.URL(url), e.Size)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return resumed, err
			}
			done += int64(n)
			// Synced often: after a power cut only what arrived since
			// the last sync is fetched again (unsynced appends may be
			// lost whole, file size included).
			if sinceSync += int64(n); sinceSync >= 4<<20 || time.Since(lastSync) >= 2*time.Second {
				f.Sync()
				sinceSync, lastSync = 0, time.Now()
			}
			if progress != nil {
				progress(done, e.Size)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return resumed, fmt.Errorf("GET %s: %w", redact.URL(url), rerr)
		}
	}
	if done < e.Size {
		return resumed, fmt.Errorf("GET %s: %w at byte %d of %d", redact.URL(url), httpx.ErrTruncated, done, e.Size)
	}
	return resumed, nil
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(s string) (start, end, total int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	rng, tot, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, 0, false
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		var err error
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= end {
			return 0, 0, 0, false
		}
	}
	return start, end, total, true
}
