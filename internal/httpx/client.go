package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/redact"
)

// Defaults for a zero Client and zero Timeouts.
const (
	DefaultConnect    = 30 * time.Second
	DefaultTLS        = 30 * time.Second
	DefaultHeader     = 60 * time.Second
	DefaultIdle       = 60 * time.Second
	DefaultTries      = 5
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 15 * time.Second
	// maxRetryAfter caps a server's Retry-After: a server that asks for
	// an hour is waited for as long as the caller's context allows, in
	// steps of at most this.
	maxRetryAfter = 5 * time.Minute
)

// Timeouts bound the phases of a request that have no bytes to watch.
type Timeouts struct {
	Connect time.Duration // TCP connect (default DefaultConnect)
	TLS     time.Duration // TLS handshake (default DefaultTLS)
	// Header: from the request's last byte to the response's headers
	// (default DefaultHeader).
	Header time.Duration
}

// NewHTTP returns an *http.Client with these timeouts and none on the
// total time of a request (see Client.Idle), proxies from the
// environment, and its own connection pool.
func NewHTTP(t Timeouts) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: or(t.Connect, DefaultConnect), KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = or(t.TLS, DefaultTLS)
	tr.ResponseHeaderTimeout = or(t.Header, DefaultHeader)
	// A pipelined fetch reads the stream and a few ranges at once.
	tr.MaxIdleConnsPerHost = 8
	return &http.Client{Transport: tr}
}

var defaultHTTP = sync.OnceValue(func() *http.Client { return NewHTTP(Timeouts{}) })

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Client sends requests with an idle limit on bodies and retries
// idempotent operations. The zero value uses the defaults; a Client may be
// copied (copies share HTTP's connections) and used concurrently.
type Client struct {
	// HTTP sends the requests; nil: a shared client from NewHTTP with
	// default Timeouts. Its own Timeout should stay 0 (no total limit).
	HTTP *http.Client
	// Idle cuts a request that moves no byte for this long, while its
	// body is sent or its answer awaited or read (default DefaultIdle).
	Idle time.Duration
	// Tries is how many times Retry runs an operation (default
	// DefaultTries; 1: no retry).
	Tries int
	// Backoff is the first wait between tries, doubled after each up to
	// MaxBackoff, each wait drawn between half and all of it (defaults
	// DefaultBackoff, DefaultMaxBackoff).
	Backoff, MaxBackoff time.Duration
	// Log, if set, gets one line per retry (URLs redacted).
	Log func(format string, a ...any)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP()
}

func (c *Client) idle() time.Duration { return or(c.Idle, DefaultIdle) }

// NewRequest is http.NewRequestWithContext whose error does not quote
// the URL's secrets.
func NewRequest(ctx context.Context, method, rawURL string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it quotes the URL whole
		}
		return nil, fmt.Errorf("%s %s: %w", method, redact.URL(rawURL), err)
	}
	return req, nil
}

// Do sends req once. While the request body is sent, the answer awaited
// and the response body read, a gap of c.Idle without a byte cancels the
// request; the error then wraps ErrIdle. Errors name the URL redacted.
// Do does not judge the status (see NewStatusError); the caller closes
// the body.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watch{idle: c.idle(), cancel: cancel, ctx: ctx}
	w.timer = time.AfterFunc(w.idle, w.fire)
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sendBody{ReadCloser: req.Body, w: w}
	}
	resp, err := c.http().Do(req)
	if err != nil {
		w.done()
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.Op, ue.URL = req.Method, redact.URL(req.URL.String())
			ue.Err = w.cause(ue.Err)
		}
		return nil, err
	}
	w.kick()
	resp.Body = &recvBody{rc: resp.Body, w: w}
	return resp, nil
}

// watch is one request's idle limit.
type watch struct {
	idle   time.Duration
	timer  *time.Timer
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// idleError is the cause of a request cancelled for idleness.
type idleError time.Duration

func (e idleError) Error() string        { return fmt.Sprintf("%v for %s", ErrIdle, time.Duration(e)) }
func (e idleError) Is(target error) bool { return target == ErrIdle }

func (w *watch) fire() { w.cancel(idleError(w.idle)) }
func (w *watch) kick() { w.timer.Reset(w.idle) }

// done releases the request: no more limit, context freed.
func (w *watch) done() {
	w.timer.Stop()
	w.cancel(context.Canceled)
}

// cause turns the error of an idle-cancelled request into the idle error.
func (w *watch) cause(err error) error {
	if c := context.Cause(w.ctx); errors.Is(c, ErrIdle) {
		return c
	}
	return err
}

// sendBody watches a request body: each read by the transport is progress.
type sendBody struct {
	io.ReadCloser
	w *watch
}

func (b *sendBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.kick()
	}
	return n, err
}

// recvBody watches a response body.
type recvBody struct {
	rc io.ReadCloser
	w  *watch
}

func (b *recvBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.w.kick()
	}
	if err != nil && err != io.EOF {
		err = b.w.cause(err)
	}
	return n, err
}

func (b *recvBody) Close() error {
	err := b.rc.Close()
	b.w.done()
	return err
}

// Retry runs op until it succeeds, fails with an error that is not
// Transient, c.Tries attempts have failed, or ctx ends. Between attempts
// it waits the backoff (see Client), or the server's Retry-After when a
// *StatusError carries one. what names the operation in log lines and the
// final error ("GET http://host/x"); it is redacted here.
func (c *Client) Retry(ctx context.Context, what string, op func() error) error {
	what = redact.Text(what)
	tries := or(c.Tries, DefaultTries)
	wait, maxWait := or(c.Backoff, DefaultBackoff), or(c.MaxBackoff, DefaultMaxBackoff)
	for i := 1; ; i++ {
		err := op()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case !Transient(err):
			return err
		case i >= tries:
			if names(err, what) {
				return fmt.Errorf("giving up after %s: %w", plural.Count(i, "try"), err)
			}
			return fmt.Errorf("%s: giving up after %s: %w", what, plural.Count(i, "try"), err)
		}
		d := wait/2 + rand.N(wait/2+1)
		var se *StatusError
		if errors.As(err, &se) && se.RetryAfter > 0 {
			d = min(se.RetryAfter, maxRetryAfter)
		}
		if c.Log != nil {
			msg := redact.Text(err.Error())
			if !names(err, what) {
				msg = what + ": " + msg
			}
			c.Log("%s; retrying in %s", msg, d.Round(time.Millisecond))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// names says whether err's message already names what's URL ("GET
// http://host/x" names http://host/x), which then is not repeated.
func names(err error, what string) bool {
	_, u, ok := strings.Cut(what, " ")
	return ok && strings.Contains(redact.Text(err.Error()), u)
}

// Get reads the body of a 200 answer to GET rawURL whole, at most limit
// bytes (more is ErrTooLarge, also when the server announces more), with
// retries.
func (c *Client) Get(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	var out []byte
	shown := redact.URL(rawURL)
	err := c.Retry(ctx, "GET "+shown, func() error {
		req, err := NewRequest(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return NewStatusError(resp)
		}
		defer resp.Body.Close()
		if resp.ContentLength > limit {
			return fmt.Errorf("GET %s: %w: %d bytes, at most %d allowed", shown, ErrTooLarge, resp.ContentLength, limit)
		}
		b, err := bounded.ReadAll(resp.Body, limit)
		if err != nil {
			return fmt.Errorf("GET %s: %w", shown, err)
		}
		out = b
		return nil
	})
	return out, err
}
