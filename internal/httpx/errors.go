package httpx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/redact"
)

// Sentinel errors. A *StatusError matches the first three by its code.
var (
	// ErrNotFound: 404 Not Found or 410 Gone.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: 401, the server wants credentials (or other ones).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: 403, the credentials do not allow this.
	ErrForbidden = errors.New("forbidden")
	// ErrNoRange: a Range request was answered with the whole file.
	ErrNoRange = errors.New("the server ignores Range requests")
	// ErrTooLarge: a body is larger than the reader's bound (the one
	// sentinel of package bounded).
	ErrTooLarge = bounded.ErrTooLarge
	// ErrIdle: no byte moved for the client's idle limit.
	ErrIdle = errors.New("no data")
	// ErrTruncated: a body ended before the length it was announced or
	// known to have.
	ErrTruncated = errors.New("connection ended early")
)

// StatusError is a response whose status the caller did not want.
type StatusError struct {
	Method string
	URL    string // redacted
	Code   int
	Status string // as the server sent it, e.g. "404 Not Found"
	// Body is the start of a plain-text or JSON body (the server's
	// reason), at most maxExcerpt bytes, control characters removed.
	Body string
	// RetryAfter is the server's Retry-After (429, 503), 0 when none.
	RetryAfter time.Duration
}

const maxExcerpt = 200

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
	if e.Body != "" && !strings.Contains(e.Status, e.Body) {
		s += ": " + e.Body
	}
	return s
}

// Is matches ErrNotFound, ErrUnauthorized and ErrForbidden.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound || e.Code == http.StatusGone
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized
	case ErrForbidden:
		return e.Code == http.StatusForbidden
	}
	return false
}

// Temporary says whether the same request may succeed later: 408, 425,
// 429 and 5xx, but not 501 (not implemented), 505 (HTTP version), 507
// (the server is full: a person must act) or 508/510/511.
func (e *StatusError) Temporary() bool {
	switch e.Code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported, http.StatusInsufficientStorage,
		http.StatusLoopDetected, http.StatusNotExtended, http.StatusNetworkAuthenticationRequired:
		return false
	}
	return e.Code >= 500 && e.Code < 600
}

// NewStatusError describes resp, reading at most a few hundred bytes of
// its body, and closes the body.
func NewStatusError(resp *http.Response) *StatusError {
	defer resp.Body.Close()
	e := &StatusError{Code: resp.StatusCode, Status: resp.Status}
	if resp.Request != nil {
		e.Method, e.URL = resp.Request.Method, redact.URL(resp.Request.URL.String())
	}
	if e.Status == "" {
		e.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	// nginx's error pages are HTML that repeats the status: only a
	// server's own words are worth showing.
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "text/plain" || ct == "application/json" || ct == "application/problem+json" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4*maxExcerpt))
		e.Body = excerpt(redact.Text(string(b)))
	}
	return e
}

// excerpt keeps the first line-ish of s, printable, at most maxExcerpt bytes.
func excerpt(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxExcerpt {
		cut := maxExcerpt
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// retryAfter parses Retry-After: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Transient says whether err may go away by itself, so that an idempotent
// request is worth repeating: connection failures and resets, DNS
// failures (a PE's network may still be coming up), any other failure of
// the transport to get an answer, bodies cut by the idle limit or ended
// early, and temporary statuses. Not: the caller's context ending, TLS
// certificate errors, other statuses, and every error this package does
// not know (a checksum mismatch, a full local disk).
// A deadline counts as transient (a per-attempt limit); Retry stops when
// its own context ends.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	if errors.Is(err, ErrIdle) || errors.Is(err, ErrTruncated) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var (
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		recHdr   tls.RecordHeaderError
	)
	if errors.As(err, &certErr) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &recHdr) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, e := range []error{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, e) {
			return true
		}
	}
	// Whatever else the transport reports for a request that got no
	// answer ("server closed idle connection" on a kept-alive connection
	// the server had dropped, a malformed response) is worth another
	// connection; a wrong scheme fails again after a few tries.
	var ue *url.Error
	return errors.As(err, &ue)
}
