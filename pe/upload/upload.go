// Package upload puts a captured image on an HTTP server with WebDAV
// (nginx's dav module, `minint serve`) so that nothing half-uploaded ever
// appears under the final name, and a repeated upload after a power cut or
// a network failure finishes the job instead of starting over blindly.
//
// nginx's WebDAV has no partial PUT (no Content-Range), so the unit of
// restart is the file: the data goes to NAME.partial, is read back and
// checked against the local SHA-256 and size, and only then MOVEd to NAME;
// the MOVE is checked too (NAME holds the file, NAME.partial is gone) —
// a server's 201 proves nothing (package webdav). A later run that finds
// NAME already holding the same bytes, or a complete NAME.partial, skips
// the work already done.
//
// Credentials go in the URL's userinfo (http://user:TOKEN@host/…): they
// are sent as basic authentication with every request and taken out of
// the URL everywhere else (Destination headers, messages, the Result).
package upload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/redact"
	"github.com/minint/minint/internal/webdav"
)

// ErrExists: the final name holds different data and Overwrite is off.
var ErrExists = errors.New("destination exists with different content")

// ErrVerify: what the server holds after the upload is not what was sent.
var ErrVerify = webdav.ErrVerify

// Options tune an upload.
type Options struct {
	// Client sends the requests (timeouts, retries); nil: a zero
	// httpx.Client. Its Log, when unset, becomes Log.
	Client *httpx.Client
	// Overwrite replaces a different file under the final name.
	Overwrite bool
	// Progress gets bytes sent and the total, for the PUT and the
	// read-back check (each counted once: total = 2 * size).
	Progress func(done, total int64)
	// Log gets one line per decision and retry.
	Log func(format string, a ...any)
}

// Result says what Upload did.
type Result struct {
	URL    string `json:"url"` // without credentials
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Skipped: the final name already held exactly this file.
	Skipped bool `json:"skipped,omitempty"`
	// ReusedPartial: a complete NAME.partial from an earlier run was moved
	// into place without sending the data again.
	ReusedPartial bool `json:"reused_partial,omitempty"`
}

// File uploads the local file path to dest (http:// or https:// URL of the
// final name).
func File(ctx context.Context, path, dest string, opts Options) (*Result, error) {
	c, name, err := open(dest, opts)
	if err != nil {
		return nil, err
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
	obj, err := webdav.SumReader(f)
	if err != nil {
		return nil, fmt.Errorf("upload: reading %s: %w", path, err)
	}
	logf := func(format string, a ...any) {
		if opts.Log != nil {
			opts.Log(format, a...)
		}
	}
	total := 2 * obj.Size
	progress := func(done int64) {
		if opts.Progress != nil {
			opts.Progress(min(done, total), total)
		}
	}
	res := &Result{URL: c.URL(name), Size: obj.Size, SHA256: obj.SHA256}
	partial := name + ".partial"

	// Already there (an earlier run finished, or the report got lost)?
	switch m, err := c.Check(ctx, name, obj, nil); {
	case err != nil:
		return nil, fmt.Errorf("upload: %w", err)
	case m == webdav.Same:
		logf("%s already holds this file (sha256 %s)", res.URL, obj.SHA256)
		res.Skipped = true
		progress(total)
		return res, nil
	case m == webdav.Differs && !opts.Overwrite:
		return nil, fmt.Errorf("upload: %s: %w (set overwrite to replace it)", res.URL, ErrExists)
	}
	if m, err := c.Check(ctx, partial, obj, nil); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	} else if m == webdav.Same {
		logf("%s is complete from an earlier run: not sent again", c.URL(partial))
		res.ReusedPartial = true
	} else if err := c.Put(ctx, partial, f, obj, progress); err != nil {
		if errors.Is(err, webdav.ErrVerify) {
			c.Delete(ctx, partial)
		}
		return nil, fmt.Errorf("upload: %w", err)
	}
	err = c.Move(ctx, partial, name, obj, opts.Overwrite)
	var se *httpx.StatusError
	if errors.As(err, &se) && se.Code == http.StatusPreconditionFailed {
		return nil, fmt.Errorf("upload: %s: %w (set overwrite to replace it)", res.URL, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	progress(total)
	return res, nil
}

// open checks dest and returns a client for its directory and the name.
func open(dest string, opts Options) (*webdav.Client, string, error) {
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(u.Path, "/") || u.Path == "" {
		return nil, "", fmt.Errorf("upload: destination %q is not an http(s) URL of a file", redact.URL(dest))
	}
	name := path.Base(u.Path)
	u.Path, u.RawPath = path.Dir(u.Path), ""
	h := httpx.Client{}
	if opts.Client != nil {
		h = *opts.Client
	}
	if h.Log == nil {
		h.Log = opts.Log
	}
	c, err := webdav.New(u.String(), &h)
	if err != nil {
		return nil, "", fmt.Errorf("upload: %w", err)
	}
	return c, name, nil
}
