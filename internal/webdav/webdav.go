// Package webdav is minint's client for the WebDAV subset its servers
// speak (nginx's dav module, `minint serve`): GET, HEAD, PUT, MOVE and
// DELETE, for captured images (package upload) and user-state stores
// (package netstore). It stands on package httpx: timeouts, idle limits,
// retries and redacted errors come from there.
//
// Servers lie, or fail in ways that look like success: a proxy that
// answers 201 to anything, a full disk that stores a truncated file, a
// store that answers HEAD with the right length for garbage, a MOVE that
// answers 201 and moves nothing. Data that leaves the machine for good
// must not be reported safe on a server's word, so every write here is
// verified before it returns:
//
//   - Put reads the file back and compares size and SHA-256 with what was
//     sent (or, when the server states the file's SHA-256 in a Repr-Digest
//     or Digest header, compares that: the server's own proof, for servers
//     that offer one);
//   - Move checks that the destination now holds the object — the same
//     file (its ETag unchanged by the rename, as nginx and minint serve
//     keep it), else by digest or read-back — and that the source is gone;
//   - Delete checks that the name is gone;
//   - Check, which callers use to skip work already done, never trusts a
//     length alone: equal size and then equal SHA-256 (digest or read-back).
//
// A check is one GET (a 404 costs no more than a HEAD), so a verified
// write costs the PUT and the GET of its read-back.
//
// Credentials go in the base URL's userinfo (http://:TOKEN@host/…): they
// are sent as basic authentication with every request, and never appear
// in a Destination header, a message or an error (package redact).
package webdav

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/redact"
)

var (
	// ErrVerify: after a write the server does not hold what was written.
	ErrVerify = errors.New("the server does not hold what was written")
	// ErrChanged: the local data changed while it was being sent.
	ErrChanged = errors.New("the data changed while it was sent")
)

// Client talks to the WebDAV tree under one base URL.
type Client struct {
	base *url.URL // as given, userinfo included (requests send it as basic auth)
	h    *httpx.Client
}

// New returns a client for base, an http(s) URL of a collection or a
// file's directory; paths given to the methods are relative to it. h nil
// means a zero httpx.Client.
func New(base string, h *httpx.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", redact.URL(base))
	}
	if h == nil {
		h = &httpx.Client{}
	}
	return &Client{base: u, h: h}, nil
}

// String is the base URL without its credentials.
func (c *Client) String() string { return c.URL("") }

// URL is rel's URL as it may be shown: no userinfo, secret query
// parameters masked.
func (c *Client) URL(rel string) string {
	u := *c.at(rel)
	u.User = nil
	return redact.URL(u.String())
}

// destination is rel's URL for a Destination header: the resource only,
// no userinfo and no query (which may carry a token).
func (c *Client) destination(rel string) string {
	u := *c.at(rel)
	u.User, u.RawQuery, u.ForceQuery = nil, "", false
	return u.String()
}

func (c *Client) at(rel string) *url.URL {
	if rel == "" {
		return c.base
	}
	return c.base.JoinPath(rel)
}

func (c *Client) request(ctx context.Context, method, rel string, body io.Reader) (*http.Request, error) {
	u := *c.at(rel)
	user := u.User
	u.User = nil
	req, err := httpx.NewRequest(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if user != nil {
		pw, _ := user.Password()
		req.SetBasicAuth(user.Username(), pw)
	}
	return req, nil
}

// do sends one request and turns a status outside ok into a
// *httpx.StatusError with a hint for WebDAV setups.
func (c *Client) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.h.Do(req)
	if err != nil {
		return nil, err
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	if len(ok) == 0 && resp.StatusCode/100 == 2 {
		return resp, nil
	}
	return nil, hinted(req.Method, httpx.NewStatusError(resp))
}

// hinted adds what a WebDAV user can do about a refusal.
func hinted(method string, se *httpx.StatusError) error {
	hint := ""
	switch se.Code {
	case http.StatusUnauthorized:
		hint = "the server wants credentials: put its write token in the URL, http://:TOKEN@host/…"
	case http.StatusForbidden:
		hint = "the server refuses reads here: check its permissions"
		if method != http.MethodGet && method != http.MethodHead {
			hint = "the server refuses writes here: check its WebDAV permissions"
		}
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		hint = "the server does not accept this method: WebDAV PUT/MOVE/DELETE not enabled, e.g. nginx dav_methods"
	case http.StatusConflict:
		hint = "parent collection missing: enable nginx create_full_put_path or create it"
	case http.StatusRequestEntityTooLarge:
		hint = "the file is larger than the server allows: nginx client_max_body_size"
	case http.StatusInsufficientStorage:
		hint = "the server is out of space"
	case http.StatusPreconditionFailed:
		hint = "the destination exists and overwriting was not allowed"
	}
	if hint == "" {
		return se
	}
	return fmt.Errorf("%w (%s)", se, hint)
}

// Object is the content a name should hold: its size and SHA-256 (hex).
type Object struct {
	Size   int64
	SHA256 string
}

// info is what HEAD says about a name.
type info struct {
	Size int64
	ETag string
}

// head asks for rel's size and ETag. A missing name is an error matching
// httpx.ErrNotFound.
func (c *Client) head(ctx context.Context, rel string) (info, error) {
	var in info
	err := c.h.Retry(ctx, "HEAD "+c.URL(rel), func() error {
		req, err := c.request(ctx, http.MethodHead, rel, nil)
		if err != nil {
			return err
		}
		resp, err := c.do(req, http.StatusOK)
		if err != nil {
			return err
		}
		resp.Body.Close()
		in = info{Size: resp.ContentLength, ETag: resp.Header.Get("ETag")}
		return nil
	})
	return in, err
}

// digest finds a SHA-256 of the content in Repr-Digest (RFC 9530:
// sha-256=:BASE64:) or Digest (RFC 3230: SHA-256=BASE64).
func digest(h http.Header) string {
	for _, name := range []string{"Repr-Digest", "Digest"} {
		for _, v := range h.Values(name) {
			for _, item := range strings.Split(v, ",") {
				k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
				if !ok || !strings.EqualFold(k, "sha-256") {
					continue
				}
				b, err := base64.StdEncoding.DecodeString(strings.Trim(val, ":"))
				if err == nil && len(b) == sha256.Size {
					return hex.EncodeToString(b)
				}
			}
		}
	}
	return ""
}

// Get GETs rel and hands the body to consume, retrying the whole
// exchange (consume included, so it must start over) on transient
// failures. A missing name matches httpx.ErrNotFound.
func (c *Client) Get(ctx context.Context, rel string, consume func(body io.Reader) error) error {
	return c.h.Retry(ctx, "GET "+c.URL(rel), func() error {
		req, err := c.request(ctx, http.MethodGet, rel, nil)
		if err != nil {
			return err
		}
		resp, err := c.do(req, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := consume(resp.Body); err != nil {
			return fmt.Errorf("GET %s: %w", c.URL(rel), err)
		}
		return nil
	})
}

// ReadAll reads rel whole, at most limit bytes (more: httpx.ErrTooLarge).
func (c *Client) ReadAll(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var b []byte
	err := c.Get(ctx, rel, func(body io.Reader) (err error) {
		b, err = bounded.ReadAll(body, limit)
		return err
	})
	return b, err
}

// Match is what a name holds compared to an Object.
type Match int

const (
	Absent  Match = iota // nothing under the name
	Differs              // something else
	Same                 // exactly the object
)

// Check says whether rel holds want: equal size, then equal SHA-256 —
// the server's digest if it gives one, else the bytes read back and
// hashed (progress, if not nil, gets the bytes read so far).
func (c *Client) Check(ctx context.Context, rel string, want Object, progress func(done int64)) (Match, error) {
	got, err := c.examine(ctx, rel, want, progress)
	if err != nil || got == nil {
		return Absent, err
	}
	if *got != want {
		return Differs, nil
	}
	return Same, nil
}

// examine returns what rel holds as far as it matters for want: nil when
// absent, its size alone when that differs, else size and SHA-256. One
// GET does it all: its headers give the size and perhaps a digest (then
// the body is not read), else the body is hashed.
func (c *Client) examine(ctx context.Context, rel string, want Object, progress func(done int64)) (*Object, error) {
	var got *Object
	err := c.h.Retry(ctx, "GET "+c.URL(rel), func() error {
		got = nil
		req, err := c.request(ctx, http.MethodGet, rel, nil)
		if err != nil {
			return err
		}
		resp, err := c.do(req, http.StatusOK)
		if errors.Is(err, httpx.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got = &Object{Size: resp.ContentLength}
		// A length of -1 (chunked) says nothing: read on.
		if got.Size >= 0 && got.Size != want.Size {
			return nil
		}
		if got.SHA256 = digest(resp.Header); got.SHA256 != "" && got.Size >= 0 {
			return nil
		}
		h := sha256.New()
		// One byte more than expected shows a longer file.
		n, err := io.Copy(h, &counter{r: io.LimitReader(resp.Body, want.Size+1), f: progress})
		if err != nil {
			return fmt.Errorf("GET %s: %w", c.URL(rel), err)
		}
		got.Size, got.SHA256 = n, hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return got, err
}

// counter reports bytes read so far.
type counter struct {
	r io.Reader
	n int64
	f func(int64)
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.f != nil && n > 0 {
		c.f(c.n)
	}
	return n, err
}

// Put stores want.Size bytes of src under rel (creating missing parents
// where the server does, like nginx's create_full_put_path) and returns
// only once the server is shown to hold them (see the package doc). The
// bytes sent are hashed: if they are not want.SHA256, the local data
// changed and nothing is verified (ErrChanged). progress, if not nil, gets
// the bytes sent, then want.Size plus the bytes read back.
func (c *Client) Put(ctx context.Context, rel string, src io.ReaderAt, want Object, progress func(done int64)) error {
	what := "PUT " + c.URL(rel)
	err := c.h.Retry(ctx, what, func() error {
		h := sha256.New()
		var body io.Reader = io.TeeReader(io.NewSectionReader(src, 0, want.Size), h)
		body = &counter{r: body, f: progress}
		if want.Size == 0 {
			body = http.NoBody
		}
		req, err := c.request(ctx, http.MethodPut, rel, body)
		if err != nil {
			return err
		}
		req.ContentLength = want.Size
		resp, err := c.do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if sum := hex.EncodeToString(h.Sum(nil)); sum != want.SHA256 {
			return fmt.Errorf("%s: %w: sent %s, expected sha256 %s", what, ErrChanged, sum, want.SHA256)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var readBack func(int64)
	if progress != nil {
		readBack = func(n int64) { progress(want.Size + n) }
	}
	return c.verify(ctx, "PUT", rel, want, readBack)
}

// verify checks that rel holds want after a write the server accepted.
func (c *Client) verify(ctx context.Context, method, rel string, want Object, progress func(int64)) error {
	got, err := c.examine(ctx, rel, want, progress)
	if err != nil {
		return fmt.Errorf("verifying %s %s: %w", method, c.URL(rel), err)
	}
	switch {
	case got == nil:
		return fmt.Errorf("%s %s: %w: the server accepted it but has no such file", method, c.URL(rel), ErrVerify)
	case got.Size != want.Size:
		return fmt.Errorf("%s %s: %w: the server holds %d bytes, %d were written", method, c.URL(rel), ErrVerify, got.Size, want.Size)
	case got.SHA256 != want.SHA256:
		return fmt.Errorf("%s %s: %w: the server holds sha256 %s, %s was written", method, c.URL(rel), ErrVerify, got.SHA256, want.SHA256)
	}
	return nil
}

// Move renames from to to (Overwrite: T or F) and returns once the server
// is shown to hold want under to and nothing under from. A MOVE whose
// reply was lost and that is repeated finds from gone and to in place:
// that is success. Overwrite refused is a *httpx.StatusError with code
// 412.
func (c *Client) Move(ctx context.Context, from, to string, want Object, overwrite bool) error {
	pre, err := c.head(ctx, from)
	if errors.Is(err, httpx.ErrNotFound) {
		// Moved by an earlier try whose answer got lost?
		if m, cerr := c.Check(ctx, to, want, nil); cerr == nil && m == Same {
			return nil
		}
		return fmt.Errorf("MOVE %s: nothing to move: %w", c.URL(from), err)
	}
	if err != nil {
		return err
	}
	ow := "F"
	if overwrite {
		ow = "T"
	}
	what := "MOVE " + c.URL(from)
	hdr := http.Header{"Destination": {c.destination(to)}, "Overwrite": {ow}}
	err = c.send(ctx, what, "MOVE", from, hdr, func() bool {
		// The MOVE happened, its answer was lost?
		m, err := c.Check(ctx, to, want, nil)
		return err == nil && m == Same
	})
	if err != nil {
		return err
	}
	// The same file under the new name keeps its ETag (nginx and minint
	// serve derive it from mtime and size, which a rename keeps): then
	// nothing needs reading back.
	post, err := c.head(ctx, to)
	switch {
	case errors.Is(err, httpx.ErrNotFound):
		return fmt.Errorf("%s: %w: the server answered success but has no %s", what, ErrVerify, c.URL(to))
	case err != nil:
		return fmt.Errorf("verifying %s: %w", what, err)
	case post.Size != want.Size:
		return fmt.Errorf("%s: %w: %s holds %d bytes, %d were moved", what, ErrVerify, c.URL(to), post.Size, want.Size)
	case pre.ETag == "" || post.ETag != pre.ETag:
		if err := c.verify(ctx, "MOVE", to, want, nil); err != nil {
			return err
		}
	}
	return c.gone(ctx, what, from)
}

// Delete removes rel (a missing name is fine) and checks that it is gone.
func (c *Client) Delete(ctx context.Context, rel string) error {
	what := "DELETE " + c.URL(rel)
	if err := c.send(ctx, what, http.MethodDelete, rel, nil, func() bool { return true }); err != nil {
		return err
	}
	return c.gone(ctx, what, rel)
}

// send makes a request without a body, with retries; a 404 is success
// when notFoundOK says so.
func (c *Client) send(ctx context.Context, what, method, rel string, hdr http.Header, notFoundOK func() bool) error {
	return c.h.Retry(ctx, what, func() error {
		req, err := c.request(ctx, method, rel, nil)
		if err != nil {
			return err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.do(req)
		if errors.Is(err, httpx.ErrNotFound) && notFoundOK() {
			return nil
		}
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// gone checks that rel no longer exists after what removed it.
func (c *Client) gone(ctx context.Context, what, rel string) error {
	_, err := c.head(ctx, rel)
	switch {
	case errors.Is(err, httpx.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("verifying %s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: the server answered success but still has %s", what, ErrVerify, c.URL(rel))
}

// Sum returns the Object of b.
func Sum(b []byte) Object {
	s := sha256.Sum256(b)
	return Object{Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])}
}

// SumReader returns the Object of everything r yields.
func SumReader(r io.Reader) (Object, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return Object{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}
