package fetch

import "testing"

// FuzzContentRange: a server's Content-Range is accepted only when it is
// a range the client can trust its arithmetic with.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-9/*", "bytes 9-5/100", "bytes 0-99/50", "bytes -1-3/4", "bytes 0-9223372036854775807/9223372036854775807", "items 0-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, ok := parseContentRange(s)
		if ok && (start < 0 || end < start || total != -1 && total <= end) {
			t.Fatalf("%q accepted as %d-%d/%d", s, start, end, total)
		}
	})
}
