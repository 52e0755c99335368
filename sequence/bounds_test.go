package sequence

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/bounded"
)

// TestLoadFileBound: a sequence file past MaxSize (the PE reads those on
// its boot medium, which anyone with the stick can write) is refused
// before it is read whole.
func TestLoadFileBound(t *testing.T) {
	f := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(f, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, MaxSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(f); !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), "huge.yaml") {
		t.Fatalf("got %v", err)
	}
}

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
