package sequence

import (
	"errors"
	"strings"
	"testing"
)

// TestParseNestingBound: a sequence nested absurdly deep (200 KB of "["
// took 15 GB in the YAML parser) is refused with its place, before the
// parser runs.
func TestParseNestingBound(t *testing.T) {
	_, err := Parse("deep.yaml", []byte("version: 1\nsteps: "+strings.Repeat("[", 200<<10)))
	var le *LoadError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "deep.yaml:2:") || !strings.Contains(err.Error(), "nested more than 64 levels deep") {
		t.Fatalf("got %v", err)
	}
}
