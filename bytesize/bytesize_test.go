package bytesize

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/minint/minint/internal/strictyaml"
	"github.com/spf13/pflag"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"1b", 1},
		{"1K", 1024},
		{"1k", 1024},
		{"1KiB", 1024},
		{"1kib", 1024},
		{"1KB", 1000},
		{"1kB", 1000},
		{"64M", 64 << 20},
		{"64MiB", 64 << 20},
		{"64MB", 64e6},
		{"8G", 8 << 30},
		{"8g", 8 << 30},
		{"8GB", 8e9},
		{"500 GB", 500e9},
		{"  2 MiB  ", 2 << 20},
		{"1T", 1 << 40},
		{"1TB", 1e12},
		{"1P", 1 << 50},
		{"1PB", 1e15},
		{"7E", 7 << 60},
		{"9EB", 9e18},
		{"1.5G", 3 << 29},
		{"1.5GB", 15e8},
		{"0.5K", 512},
		{".5K", 512},
		{"1.K", 1024},
		{"1.3G", 1395864371}, // 1395864371.2, rounded down
		{"0.0001K", 0},       // 0.1024 bytes
		{"9223372036854775807", Max},
		{"4000M", 4000 << 20},
		{"007K", 7 << 10},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"-1G", "not negative"},
		{"50%", "a percentage is not a size here"},
		{"12 parsecs", `unknown unit "parsecs"`},
		{"12X", `unknown unit "X"`},
		{"1e9", `unknown unit "e9"`},
		{"1.5", "a fraction needs a unit"},
		{"1.5B", "a fraction needs a unit"},
		{"1.2.3G", "is not a number"},
		{".G", "is not a number"},
		{"G", "no number"},
		{"+1G", "no number"},
		{"8E", "too large"},
		{"9223372036854775808", "too large"},
		{"99999999999999999999999T", "too large"},
		{strings.Repeat("9", 100), "longer than"},
		{"1 G B", `unknown unit "G B"`},
	} {
		got, err := Parse(c.in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %d, %v; want an ErrInvalid containing %q", c.in, got, err, c.want)
		}
	}
	// The message names the input and the rule.
	_, err := Parse("12X")
	if want := `invalid size "12X": unknown unit "X" (want a number with an optional unit: K/KiB`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
}

func TestString(t *testing.T) {
	for _, c := range []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{512, "512"},
		{1024, "1KiB"},
		{1000, "1KB"},
		{1536, "1536"},
		{1000 * KiB, "1000KiB"},
		{1024 * KB, "1000KiB"}, // the same number: binary wins the tie
		{1 << 30 * 1000, "1000GiB"},
		{7812500 * KiB, "8GB"},
		{3 << 19, "1536KiB"},
		{64 << 20, "64MiB"},
		{8 << 30, "8GiB"},
		{8e9, "8GB"},
		{500e9, "500GB"},
		{1e6, "1MB"},
		{1 << 40, "1TiB"},
		{4 << 60, "4EiB"},
		{1e18, "1EB"},
		{Max, "9223372036854775807"},
		{-5, "-5"},
	} {
		if got := c.in.String(); got != c.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(c.in), got, c.want)
		}
	}
}

// roundTrip checks the property every size must have.
func roundTrip(t *testing.T, s Size) {
	t.Helper()
	got, err := Parse(s.String())
	if err != nil || got != s {
		t.Fatalf("Parse(%q) = %d, %v; want %d", s.String(), got, err, int64(s))
	}
	var back Size
	if b, err := s.MarshalText(); err != nil || back.UnmarshalText(b) != nil || back != s {
		t.Fatalf("text round trip of %d: %q -> %d", int64(s), b, int64(back))
	}
}

func TestRoundTrip(t *testing.T) {
	edges := []Size{0, 1, 999, 1000, 1023, 1024, 1025, Max, Max - 1, Max / 1024 * 1024, EiB, 7 * EiB, 9 * EB, 1<<62 + 1}
	for _, u := range []Size{KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB, PB} {
		for _, k := range []Size{1, 3, 1000, 1023, 1024, 4000} {
			edges = append(edges, k*u, k*u+1, k*u-1)
		}
	}
	for _, s := range edges {
		roundTrip(t, s)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 100000; i++ {
		s := Size(r.Int63() >> r.Intn(63))
		if i%2 == 0 {
			s = s >> 20 << 20 // many multiples of units
		}
		roundTrip(t, s)
	}
}

// FuzzRoundTrip: Parse(s.String()) == s for every valid size.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []int64{0, 1, 1024, 1000, 8e9, 3 << 29, math.MaxInt64} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n < 0 {
			n = -(n + 1)
		}
		roundTrip(t, Size(n))
	})
}

// FuzzParse: Parse never panics, accepts only valid sizes, and its result
// round-trips.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"512MiB", "1.5G", "500 GB", "50%", "-1", "1e9", "8E", ".5k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if v < 0 {
			t.Fatalf("Parse(%q) = %d", s, int64(v))
		}
		roundTrip(t, v)
	})
}

func TestHumanAndExplain(t *testing.T) {
	for _, c := range []struct {
		in             Size
		human, explain string
	}{
		{0, "0 B", "0 bytes"},
		{1, "1 B", "1 byte"},
		{1023, "1023 B", "1023 bytes"},
		{1 << 20, "1.0 MiB", "1MiB (1048576 bytes)"},
		{8e9, "7.5 GiB", "8GB (8000000000 bytes)"},
		{256060514304, "238.5 GiB", "250059096KiB (256060514304 bytes)"},
		{1500001, "1.4 MiB", "1500001 bytes"},
		{Max, "8.0 EiB", "9223372036854775807 bytes"},
	} {
		if got := c.in.Human(); got != c.human {
			t.Errorf("Size(%d).Human() = %q, want %q", int64(c.in), got, c.human)
		}
		if got := c.in.Explain(); got != c.explain {
			t.Errorf("Size(%d).Explain() = %q, want %q", int64(c.in), got, c.explain)
		}
	}
}

func TestJSON(t *testing.T) {
	type doc struct {
		S Size  `json:"s"`
		P *Size `json:"p,omitempty"`
	}
	b, err := json.Marshal(doc{S: 4 * GiB})
	if err != nil || string(b) != `{"s":"4GiB"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	for in, want := range map[string]Size{`{"s":"4GiB"}`: 4 * GiB, `{"s":4294967296}`: 4 * GiB, `{"s":"500 GB"}`: 500 * GB, `{"s":0}`: 0} {
		var d doc
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.S != want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", in, int64(d.S), err, int64(want))
		}
	}
	d := doc{S: 7}
	if err := json.Unmarshal([]byte(`{"s":null}`), &d); err != nil || d.S != 7 {
		t.Errorf("null: %d, %v", int64(d.S), err)
	}
	for _, in := range []string{`{"s":1.5}`, `{"s":"lots"}`, `{"s":-1}`, `{"s":true}`} {
		var d doc
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("Unmarshal(%s) = %d, want an error", in, int64(d.S))
		}
	}
}

func TestYAML(t *testing.T) {
	type doc struct {
		A Size `yaml:"a"`
		B Size `yaml:"b"`
		C Size `yaml:"c"`
	}
	var d doc
	if err := yaml.Unmarshal([]byte("a: 8G\nb: 4096\nc: \"500 GB\"\n"), &d); err != nil {
		t.Fatal(err)
	}
	if d.A != 8*GiB || d.B != 4096 || d.C != 500*GB {
		t.Errorf("decoded %+v", d)
	}
	out, err := yaml.Marshal(d)
	if err != nil || string(out) != "a: 8GiB\nb: 4KiB\nc: 500GB\n" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
	for _, c := range []struct {
		src       string
		line, col int
		msg       string
	}{
		{"a: 1G\nb: 12 parsecs\n", 2, 4, `invalid size "12 parsecs": unknown unit "parsecs"`},
		{"a: 1.5\n", 1, 4, "a fraction needs a unit"},
		{"a: 1G\nc: [1, 2]\n", 2, 4, "want a size such as 512MiB or 8G here, not Sequence"},
	} {
		var d doc
		err := yaml.Unmarshal([]byte(c.src), &d)
		var e *strictyaml.Error
		if !errors.As(err, &e) || e.Line != c.line || e.Col != c.col || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%q: error %v; want %d:%d: …%s…", c.src, err, c.line, c.col, c.msg)
		}
	}
}

func TestFlag(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	s := 4 * MiB
	fs.Var(&s, "chunk-size", "chunk `SIZE`")
	if err := fs.Parse([]string{"--chunk-size", "1.5M"}); err != nil || s != 3<<19 {
		t.Fatalf("Parse: %d, %v", int64(s), err)
	}
	if got := fs.Lookup("chunk-size").DefValue; got != "4MiB" {
		t.Errorf("default shown as %q", got)
	}
	err := fs.Parse([]string{"--chunk-size", "4 parsecs"})
	if err == nil || !strings.Contains(err.Error(), `invalid size "4 parsecs"`) {
		t.Errorf("bad flag: %v", err)
	}
}
