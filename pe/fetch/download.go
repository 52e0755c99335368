package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/manifest"
	"github.com/minint/minint/sign"
)

// ErrHTTP: the server answered with a status that retrying won't fix.
var ErrHTTP = errors.New("http error")

// Client fetches package files over HTTP(S) with retries.
type Client struct {
	HTTP *http.Client // nil: a client without overall timeout (ctx bounds it)
	// Retries is how many times a failed request is retried (default 8).
	Retries int
	// Backoff is the first wait between tries, doubled each time up to
	// MaxBackoff (defaults 500ms, 15s).
	Backoff, MaxBackoff time.Duration
	// Stall drops and retries a Transfer's connection that has sent
	// nothing for this long (default 60s).
	Stall time.Duration
	// Log receives one line per retry; nil for none.
	Log func(format string, a ...any)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) logf(format string, a ...any) {
	if c.Log != nil {
		c.Log(format, a...)
	}
}

// retry runs f until it succeeds, fails permanently (ErrHTTP, manifest.ErrChecksum,
// manifest.ErrSize, context done) or runs out of tries.
func (c *Client) retry(ctx context.Context, what string, f func() error) error {
	tries := c.Retries
	if tries == 0 {
		tries = 8
	}
	wait, maxWait := c.Backoff, c.MaxBackoff
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 15 * time.Second
	}
	var err error
	for i := 0; ; i++ {
		err = f()
		if err == nil || permanent(err) || ctx.Err() != nil {
			break
		}
		if i >= tries {
			err = fmt.Errorf("%s: giving up after %s: %w", what, plural.Count(i+1, "try"), err)
			break
		}
		c.logf("%s: %v; retrying in %s", what, err, wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if wait *= 2; wait > maxWait {
			wait = maxWait
		}
	}
	if ctx.Err() != nil && !permanent(err) {
		return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
	}
	return err
}

func permanent(err error) bool {
	return errors.Is(err, ErrHTTP) || errors.Is(err, manifest.ErrChecksum) || errors.Is(err, manifest.ErrSize) ||
		errors.Is(err, sign.ErrSignature) || errors.Is(err, manifest.ErrFormat) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrPermission)
}

// statusErr classifies an HTTP status: 5xx and 429 are worth retrying,
// other 4xx are not.
func statusErr(url string, resp *http.Response) error {
	err := fmt.Errorf("GET %s: %s", url, resp.Status)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return err
	}
	return fmt.Errorf("%w: %w", ErrHTTP, err)
}

// Get reads a small file (a manifest, a signature) whole; at most limit bytes.
func (c *Client) Get(ctx context.Context, url string, limit int64) ([]byte, error) {
	var out []byte
	err := c.retry(ctx, "GET "+url, func() error {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrHTTP, err)
		}
		resp, err := c.http().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return statusErr(url, resp)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("%w: %s is larger than %d bytes", manifest.ErrSize, url, limit)
		}
		out = b
		return nil
	})
	return out, err
}

// Download fetches url into dest and verifies it against e. A verified dest
// already there is kept. Otherwise bytes go to dest+".part", continued with
// a Range request if it exists (from an earlier try or an earlier boot),
// and dest appears — fsync'd and renamed — only once size and SHA-256
// match. A mismatch after a resumed download starts over once from zero
// (the partial file may have been damaged by a power cut); a mismatch of a
// fresh download is manifest.ErrChecksum. progress may be nil.
func (c *Client) Download(ctx context.Context, url, dest string, e *manifest.Entry, progress func(done, total int64)) error {
	if err := manifest.VerifyFile(dest, e, nil); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		os.Remove(dest)
	}
	part := dest + ".part"
	for fresh := false; ; fresh = true {
		if fresh {
			os.Remove(part)
		}
		resumed := false
		err := c.retry(ctx, "GET "+url, func() error {
			r, err := c.fetchPart(ctx, url, part, e, progress)
			resumed = resumed || r
			return err
		})
		if err != nil {
			return err
		}
		err = manifest.VerifyFile(part, e, nil)
		if err == nil {
			break
		}
		if !resumed || fresh {
			os.Remove(part)
			return fmt.Errorf("%s: %w", url, err)
		}
		c.logf("%s: resumed download does not verify (%v); downloading again from the start", url, err)
	}
	if err := os.Rename(part, dest); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dest))
}

// fetchPart makes one request, appending to part. It reports whether it
// continued an existing partial file.
func (c *Client) fetchPart(ctx context.Context, url, part string, e *manifest.Entry, progress func(done, total int64)) (resumed bool, err error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
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
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrHTTP, err)
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			return false, fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", url, off, resp.Header.Get("Content-Range"))
		}
		if total >= 0 && total != e.Size {
			return true, fmt.Errorf("%w: %s is %d bytes on the server, the manifest says %d", manifest.ErrSize, url, total, e.Size)
		}
		resumed = true
	case resp.StatusCode == http.StatusOK:
		// A server that ignores Range sends everything again.
		if off > 0 {
			if err := f.Truncate(0); err != nil {
				return false, err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return false, err
			}
			off = 0
		}
		if resp.ContentLength >= 0 && resp.ContentLength != e.Size {
			return false, fmt.Errorf("%w: %s is %d bytes on the server, the manifest says %d", manifest.ErrSize, url, resp.ContentLength, e.Size)
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return true, fmt.Errorf("%w: %s ends before byte %d, the manifest says %d bytes", manifest.ErrSize, url, off, e.Size)
	default:
		return false, statusErr(url, resp)
	}
	done := off
	buf := make([]byte, 256<<10)
	sinceSync, lastSync := int64(0), time.Now()
	limited := io.LimitReader(resp.Body, e.Size-off+1)
	for {
		n, rerr := limited.Read(buf)
		if n > 0 {
			if done+int64(n) > e.Size {
				return resumed, fmt.Errorf("%w: %s is longer than the manifest's %d bytes", manifest.ErrSize, url, e.Size)
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
			return resumed, rerr
		}
	}
	if done < e.Size {
		return resumed, fmt.Errorf("GET %s: connection ended at byte %d of %d", url, done, e.Size)
	}
	return resumed, nil
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	a, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
