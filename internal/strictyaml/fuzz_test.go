package strictyaml

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any input parses or fails with an *Error (positioned when the
// parser knows where); whatever is nested deeper than MaxDepth or is larger
// than MaxSize fails before the parser runs. The corpus keeps the 200 KB
// run of "[" that took 15 GB, shortened.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\nsteps:\n  - type: run\n    shell: ls\n"))
	f.Add([]byte(strings.Repeat("[", 2000)))
	f.Add([]byte(strings.Repeat("- ", 100) + "x"))
	f.Add([]byte("a: &x [1, 2]\nb: *x\nc: {d: [e, {f: g}]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		if len(b) > MaxSize || strings.Count(string(b), "[") > 1000 && !strings.ContainsAny(string(b), "]\"'#|>") {
			t.Fatalf("parsed %d bytes with %d unclosed [", len(b), strings.Count(string(b), "["))
		}
	})
}
