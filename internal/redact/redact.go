// Package redact keeps secrets out of what people and logs see. A write
// token travels as the password of a URL's userinfo
// (http://:TOKEN@host/…), which minint's HTTP clients send as basic
// authentication, or as a query parameter of a signed URL
// (…?X-Amz-Signature=…, …?token=…); every message, plan and event names
// such a URL through URL, and text that may quote URLs (error messages
// from anywhere) goes through Text before it is printed or sent.
//
// Redaction rewrites only the secret parts, in place: everything else of
// the text stays byte for byte what it was, so a redacted URL still shows
// which server and file were meant.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// URL returns s with the password of its userinfo and the values of
// query parameters that look like secrets (see secretParam) replaced by
// Mask. Anything that is not an absolute URL ("medium:/…", a path) is
// returned as is.
func URL(s string) string {
	i := strings.Index(s, "://")
	if i <= 0 || !isScheme(s[:i]) {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		if c := strings.IndexByte(authority[:at], ':'); c >= 0 {
			authority = authority[:c+1] + Mask + authority[at:]
		}
	}
	return s[:i+3] + authority + redactQuery(tail)
}

func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// redactQuery masks secret parameter values in the path-and-after part
// of a URL.
func redactQuery(tail string) string {
	q := strings.IndexByte(tail, '?')
	if q < 0 {
		return tail
	}
	query, frag := tail[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	params := strings.Split(query, "&")
	for j, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || v == "" {
			continue
		}
		if name, err := url.QueryUnescape(k); err == nil && secretParam(name) && !strings.HasPrefix(v, Mask) {
			params[j] = k + "=" + Mask
		}
	}
	return tail[:q+1] + strings.Join(params, "&") + frag
}

// secretParam says whether a query parameter's name marks a credential:
// tokens, keys, signatures and passwords as signed URLs (S3, GCS, Azure
// SAS, CloudFront) and token-in-URL servers name them.
func secretParam(name string) bool {
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "").Replace(name))
	switch n {
	case "key", "sig", "sign", "pass", "pwd", "code", "jwt", "sid", "otp", "policy":
		return true
	}
	for _, w := range []string{"token", "secret", "passw", "signature", "credential", "apikey", "auth", "session"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// urlInText finds absolute URLs in free text: a scheme, "://", and
// everything up to white space, a quote or a backslash (so that a URL
// quoted inside a JSON string stops before the escape of its closing
// quote, and masking keeps the JSON valid).
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>\\` + "`" + `]+`)

// paramInText finds query parameters of relative URLs in free text (a
// server's error page that quotes the request's path and query).
var paramInText = regexp.MustCompile(`([?&;])([A-Za-z0-9_.%-]+)=([^&;\s"'<>#\\` + "`" + `]+)`)

// Text returns s with every URL in it passed through URL, and secret
// query parameters masked wherever they appear: for error messages and
// log lines that may quote URLs from anywhere.
func Text(s string) string {
	if strings.Contains(s, "://") {
		s = urlInText.ReplaceAllStringFunc(s, func(u string) string {
			// "GET http://h/x?token=t: 404": the colon ends the sentence's
			// URL, not the token.
			core := strings.TrimRight(u, ".,:;!?)]}")
			return URL(core) + u[len(core):]
		})
	}
	if !strings.Contains(s, "=") {
		return s
	}
	return paramInText.ReplaceAllStringFunc(s, func(m string) string {
		sub := paramInText.FindStringSubmatch(m)
		if name, err := url.QueryUnescape(sub[2]); err == nil && secretParam(name) && !strings.HasPrefix(sub[3], Mask) {
			return sub[1] + sub[2] + "=" + Mask
		}
		return m
	})
}
