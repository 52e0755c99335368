// Package upload puts a captured image on an HTTP server with WebDAV
// (nginx's dav module, `minint serve`) so that nothing half-uploaded ever
// appears under the final name, and a repeated upload after a power cut or
// a network failure finishes the job instead of starting over blindly.
//
// nginx's WebDAV has no partial PUT (no Content-Range), so the unit of
// restart is the file: the data goes to NAME.partial, is read back and
// checked against the local SHA-256 and size, and only then MOVEd to NAME.
// A later run that finds NAME already holding the same bytes, or a
// complete NAME.partial, skips the work already done.
package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

var (
	// ErrExists: the final name holds different data and Overwrite is off.
	ErrExists = errors.New("destination exists with different content")
	// ErrVerify: what the server holds after the PUT is not what was sent.
	ErrVerify = errors.New("uploaded data does not match")
)

// StatusError is a refusal by the server.
type StatusError struct {
	Method, URL string
	Code        int
	Status      string
}

func (e *StatusError) Error() string {
	hint := ""
	switch e.Code {
	case http.StatusForbidden:
		hint = " (the server refuses writes here: check its WebDAV permissions)"
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		hint = " (the server does not accept this method: WebDAV PUT/MOVE/DELETE not enabled, e.g. nginx dav_methods)"
	case http.StatusConflict:
		hint = " (parent collection missing: enable nginx create_full_put_path or create it)"
	case http.StatusRequestEntityTooLarge:
		hint = " (the file is larger than the server allows: nginx client_max_body_size)"
	case http.StatusInsufficientStorage:
		hint = " (the server is out of space)"
	case http.StatusPreconditionFailed:
		hint = " (the destination exists and overwriting was not allowed)"
	}
	return fmt.Sprintf("upload: %s %s: %s%s", e.Method, e.URL, e.Status, hint)
}

// transient says whether a request is worth repeating.
func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusTooManyRequests || se.Code >= 500 && se.Code != http.StatusInsufficientStorage &&
			se.Code != http.StatusNotImplemented
	}
	return !errors.Is(err, ErrExists) && !errors.Is(err, ErrVerify) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// Options tune an upload.
type Options struct {
	Client *http.Client // nil: http.DefaultClient (ctx bounds the time)
	// Overwrite replaces a different file under the final name.
	Overwrite bool
	// Retries is how many times a failed step is retried (default 4), with
	// Backoff (default 1s) doubled between tries.
	Retries int
	Backoff time.Duration
	// Progress gets bytes sent and the total, for the PUT and the
	// read-back check (each counted once: total = 2 * size).
	Progress func(done, total int64)
	// Log gets one line per decision and retry.
	Log func(format string, a ...any)
}

// Result says what Upload did.
type Result struct {
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Skipped: the final name already held exactly this file.
	Skipped bool `json:"skipped,omitempty"`
	// ReusedPartial: a complete NAME.partial from an earlier run was moved
	// into place without sending the data again.
	ReusedPartial bool `json:"reused_partial,omitempty"`
}

type uploader struct {
	ctx   context.Context
	opts  Options
	c     *http.Client
	size  int64
	sum   string
	done  int64
	total int64
}

// File uploads the local file path to dest (http:// or https:// URL of the
// final name).
func File(ctx context.Context, path, dest string, opts Options) (*Result, error) {
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(u.Path, "/") || u.Path == "" {
		return nil, fmt.Errorf("upload: destination %q is not an http(s) URL of a file", dest)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("upload: %s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("upload: reading %s: %w", path, err)
	}
	up := &uploader{ctx: ctx, opts: opts, c: opts.Client, size: fi.Size(), sum: hex.EncodeToString(h.Sum(nil)), total: 2 * fi.Size()}
	if up.c == nil {
		up.c = http.DefaultClient
	}
	res := &Result{URL: dest, Size: up.size, SHA256: up.sum}
	partial := dest + ".partial"

	// Already there (an earlier run finished, or the report got lost)?
	var same bool
	err = up.retry("check "+dest, func() (err error) { same, err = up.holds(dest, false); return })
	if err != nil {
		return nil, err
	}
	if same {
		up.logf("%s already holds this file (sha256 %s)", dest, up.sum)
		res.Skipped = true
		up.progress(up.total)
		return res, nil
	}
	err = up.retry("check "+partial, func() (err error) { same, err = up.holds(partial, true); return })
	if err != nil {
		return nil, err
	}
	if same {
		up.logf("%s is complete from an earlier run: not sent again", partial)
		res.ReusedPartial = true
	} else {
		err = up.retry("PUT "+partial, func() error {
			up.done = 0
			if err := up.put(f, partial); err != nil {
				return err
			}
			ok, err := up.holds(partial, true)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("upload: %s: %w (size or sha256 differ from %s)", partial, ErrVerify, path)
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrVerify) {
				up.do("DELETE", partial, nil)
			}
			return nil, err
		}
	}
	err = up.retry("MOVE "+partial, func() error {
		err := up.move(partial, dest)
		var se *StatusError
		if errors.As(err, &se) && se.Code == http.StatusPreconditionFailed {
			return fmt.Errorf("upload: %s: %w (set overwrite to replace it)", dest, ErrExists)
		}
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			// A MOVE answered after all but its reply lost: the file is in place.
			if ok, herr := up.holds(dest, false); herr == nil && ok {
				return nil
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	up.progress(up.total)
	return res, nil
}

func (up *uploader) logf(format string, a ...any) {
	if up.opts.Log != nil {
		up.opts.Log(format, a...)
	}
}

func (up *uploader) progress(done int64) {
	up.done = done
	if up.opts.Progress != nil {
		up.opts.Progress(min(done, up.total), up.total)
	}
}

func (up *uploader) retry(what string, f func() error) error {
	tries := up.opts.Retries
	if tries <= 0 {
		tries = 4
	}
	wait := up.opts.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	for i := 0; ; i++ {
		err := f()
		if err == nil || !transient(err) || up.ctx.Err() != nil || i >= tries {
			if err != nil && up.ctx.Err() != nil {
				return fmt.Errorf("upload: %s: %w", what, up.ctx.Err())
			}
			return err
		}
		up.logf("%s: %v; retrying in %s", what, err, wait)
		select {
		case <-time.After(wait):
		case <-up.ctx.Done():
		}
		wait *= 2
	}
}

func (up *uploader) do(method, u string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(up.ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := up.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upload: %s %s: %w", method, u, err)
	}
	return resp, nil
}

func statusErr(resp *http.Response) error {
	return &StatusError{Method: resp.Request.Method, URL: resp.Request.URL.String(), Code: resp.StatusCode, Status: resp.Status}
}

// holds reports whether u holds exactly the local file (size by HEAD, then
// the SHA-256 of a full GET). A different file under the final name is
// ErrExists unless overwriting; a different partial is just stale.
func (up *uploader) holds(u string, isPartial bool) (bool, error) {
	resp, err := up.do("HEAD", u, nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, statusErr(resp)
	}
	differ := func() (bool, error) {
		if isPartial || up.opts.Overwrite {
			return false, nil
		}
		return false, fmt.Errorf("upload: %s: %w (set overwrite to replace it)", u, ErrExists)
	}
	if resp.ContentLength != up.size {
		return differ()
	}
	resp, err = up.do("GET", u, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, statusErr(resp)
	}
	h := sha256.New()
	start := up.done
	n, err := io.Copy(h, &countReader{r: resp.Body, up: up, base: start})
	if err != nil {
		return false, fmt.Errorf("upload: reading back %s: %w", u, err)
	}
	if n != up.size || hex.EncodeToString(h.Sum(nil)) != up.sum {
		return differ()
	}
	return true, nil
}

type countReader struct {
	r    io.Reader
	up   *uploader
	base int64
	n    int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.up.progress(c.base + c.n)
	return n, err
}

func (up *uploader) put(f *os.File, u string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	body := io.NopCloser(&countReader{r: io.LimitReader(f, up.size), up: up})
	req, err := http.NewRequestWithContext(up.ctx, "PUT", u, body)
	if err != nil {
		return err
	}
	req.ContentLength = up.size
	req.GetBody = nil
	resp, err := up.c.Do(req)
	if err != nil {
		return fmt.Errorf("upload: PUT %s: %w", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusErr(resp)
	}
	return nil
}

func (up *uploader) move(from, to string) error {
	ow := "F"
	if up.opts.Overwrite {
		ow = "T"
	}
	resp, err := up.do("MOVE", from, http.Header{"Destination": {to}, "Overwrite": {ow}})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusErr(resp)
	}
	return nil
}
