package redact

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzURL: whatever the input, a URL that still parses carries no
// password but the mask, redacting is idempotent, and Text agrees.
func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"http://:s3cret@10.0.2.2:8080/-/status",
		"https://u:p@ss:w@rd@host:1/a?b=c",
		"https://h/x?X-Amz-Signature=f00&X-Amz-Date=2026#frag",
		"http://a:b@c@d/e?token=f&token=g#h?token=i",
		"ftp://u:p@h",
		"GET \"http://u:p@h/x?sig=s\": 404",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := URL(s)
		if URL(r) != r {
			t.Fatalf("URL not idempotent: %q -> %q -> %q", s, r, URL(r))
		}
		// (Scheme-relative "//u:p@h" is no URL a client is given.)
		if u, err := url.Parse(r); err == nil && u.Scheme != "" && strings.Contains(r, "://") && u.User != nil {
			if p, ok := u.User.Password(); ok && p != Mask {
				t.Fatalf("URL(%q) = %q keeps the password %q", s, r, p)
			}
		}
		if u, err := url.Parse(r); err == nil && u.Scheme != "" && strings.Contains(r, "://") {
			for k, vs := range u.Query() {
				for _, v := range vs {
					if secretParam(k) && v != "" && v != Mask {
						t.Fatalf("URL(%q) = %q keeps %s=%q", s, r, k, v)
					}
				}
			}
		}
		if t2 := Text(Text(s)); t2 != Text(s) {
			t.Fatalf("Text not idempotent: %q -> %q -> %q", s, Text(s), t2)
		}
	})
}
