package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://:s3cret@10.0.2.2:8080/-/status":                  "http://:xxxxx@10.0.2.2:8080/-/status",
		"http://minint:s3cret@host/states/pc17":                  "http://minint:xxxxx@host/states/pc17",
		"http://host/pkg/manifest.json":                          "http://host/pkg/manifest.json",
		"http://user@host/x":                                     "http://user@host/x",
		"medium:/minint/image/manifest.json":                     "medium:/minint/image/manifest.json",
		"/srv/states/pc17":                                       "/srv/states/pc17",
		"":                                                       "",
		"https://u:p@ss:w@rd@host:1/a?b=c":                       "https://u:xxxxx@host:1/a?b=c",
		"https://h/x.wim?token=abc&v=2":                          "https://h/x.wim?token=xxxxx&v=2",
		"https://h/x?X-Amz-Signature=f00&X-Amz-Date=2026#frag":   "https://h/x?X-Amz-Signature=xxxxx&X-Amz-Date=2026#frag",
		"https://h/x?sig=a%2Fb&se=2026&sv=1":                     "https://h/x?sig=xxxxx&se=2026&sv=1",
		"https://h/x?access_token=a&api-key=b&Password=c&page=4": "https://h/x?access_token=xxxxx&api-key=xxxxx&Password=xxxxx&page=4",
		"https://h/x?token=":                                     "https://h/x?token=",
		"https://h/x?flag":                                       "https://h/x?flag",
		// Nothing else changes, not even odd escapes.
		"http://h/a%2fb%20c/?q=%zz": "http://h/a%2fb%20c/?q=%zz",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		`Get "http://:tok@h:8/x?token=t2": dial tcp: connection refused`:    `Get "http://:xxxxx@h:8/x?token=xxxxx": dial tcp: connection refused`,
		"PUT https://u:pw@h/a.wim.partial: 507 Insufficient Storage":        "PUT https://u:xxxxx@h/a.wim.partial: 507 Insufficient Storage",
		"two: http://a:1@x/ and ftp://b:2@y/?key=3 end":                     "two: http://a:xxxxx@x/ and ftp://b:xxxxx@y/?key=xxxxx end",
		"no urls here: user:pass@host":                                      "no urls here: user:pass@host",
		"GET http://h/x?token=t0ken: 404 (see http://h/y?sig=s).":           "GET http://h/x?token=xxxxx: 404 (see http://h/y?sig=xxxxx).",
		"state store \"http://:s@h/s\": give an http(s) URL or a directory": "state store \"http://:xxxxx@h/s\": give an http(s) URL or a directory",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

func TestTextRelative(t *testing.T) {
	for in, want := range map[string]string{
		"404: no /echo?token=t0ken&page=2 here": "404: no /echo?token=xxxxx&page=2 here",
		"a=b c?d=e":                             "a=b c?d=e",
		"x?sig=abc#f":                           "x?sig=xxxxx#f",
		`{"error":"GET \"http://h/x?page=2&token=abc\": 404"}`: `{"error":"GET \"http://h/x?page=2&token=xxxxx\": 404"}`,
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// Redacting twice changes nothing more: text that went through Text
// (an error wrapped again) keeps its punctuation.
func TestIdempotent(t *testing.T) {
	for _, s := range []string{
		"GET http://u:p@h/x/index?token=t0ken: giving up after 5 tries: Get \"http://u:p@h/x/index?token=t0ken\": refused",
		"a?key=k, b?sig=s; c http://h/?pass=p.",
	} {
		once := Text(s)
		if twice := Text(once); twice != once {
			t.Errorf("Text(Text(%q))\n = %q\nwant %q", s, twice, once)
		}
		if strings.Contains(once, "t0ken") {
			t.Errorf("Text(%q) = %q", s, once)
		}
	}
}
