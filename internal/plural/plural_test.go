package plural

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int64
		noun string
		want string
	}{
		{0, "file", "0 files"},
		{1, "file", "1 file"},
		{2, "file", "2 files"},
		{1, "entry", "1 entry"},
		{3, "entry", "3 entries"},
		{2, "directory", "2 directories"},
		{2, "key", "2 keys"},
		{2, "index", "2 indexes"},
		{2, "match", "2 matches"},
		{2, "CPU", "2 CPUs"},
		{-1, "byte", "-1 bytes"},
	} {
		if got := Count(c.n, c.noun); got != c.want {
			t.Errorf("Count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
	if got := Count(uint8(1), "step"); got != "1 step" {
		t.Errorf("uint8: %q", got)
	}
	if got := Noun(len([]int{1}), "image"); got != "image" {
		t.Errorf("Noun(1) = %q", got)
	}
}
