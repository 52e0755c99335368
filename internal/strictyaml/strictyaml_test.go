package strictyaml

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml/ast"
)

type inner struct {
	MinSize   int    `yaml:"min-size"`
	Transport string `yaml:"transport"`
}

type Base struct {
	Type string `yaml:"type"`
}

type selfDecoding struct{ v string }

func (s *selfDecoding) UnmarshalYAML(n ast.Node) error { s.v = n.String(); return nil }

type doc struct {
	Base       `yaml:",inline"`
	Name       string           `yaml:"name"`
	Disk       *inner           `yaml:"disk"`
	Parts      []inner          `yaml:"parts"`
	ByName     map[string]inner `yaml:"by-name"`
	Free       map[string]any   `yaml:"free"`
	Self       selfDecoding     `yaml:"self"`
	Untagged   string
	JSONOnly   string `json:"json-only"`
	Skipped    string `yaml:"-"`
	unexported string
	When       time.Duration `yaml:"when"`
}

func TestUnmarshal(t *testing.T) {
	var d doc
	src := "type: x\nname: n\ndisk: {min-size: 3, transport: nvme}\nparts:\n  - {min-size: 1}\nby-name:\n  a: {transport: usb}\nfree: {anything: [1, {goes: here}]}\nself: {whatever: 1}\nuntagged: u\njson-only: j\n"
	if err := Unmarshal([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	if d.Type != "x" || d.Name != "n" || d.Disk.MinSize != 3 || d.Parts[0].MinSize != 1 || d.ByName["a"].Transport != "usb" || d.Untagged != "u" || d.JSONOnly != "j" || d.Self.v == "" {
		t.Errorf("decoded %+v", d)
	}
}

func TestUnknownKeys(t *testing.T) {
	for _, c := range []struct {
		src       string
		line, col int
		msg       string
	}{
		{"type: x\nnmae: n\n", 2, 1, `unknown key "nmae": did you mean "name"?`},
		{"disk: {min_size: 3}\n", 1, 8, `unknown key "min_size": did you mean "min-size"?`},
		{"disk: {minSize: 3}\n", 1, 8, `unknown key "minSize": did you mean "min-size"?`},
		{"disk: {MIN_SIZE: 3}\n", 1, 8, `unknown key "MIN_SIZE": did you mean "min-size"?`},
		{"parts:\n  - {transport: a}\n  - {trasnport: b}\n", 3, 6, `unknown key "trasnport": did you mean "transport"?`},
		{"by-name:\n  a:\n    colour: red\n", 3, 5, `unknown key "colour" (want min-size, transport)`},
		{"by_name: {}\n", 1, 1, `unknown key "by_name": did you mean "by-name"?`},
		{"skipped: x\n", 1, 1, `unknown key "skipped"`},
		{"unexported: x\n", 1, 1, `unknown key "unexported"`},
		{"\"min-size\": 3\n", 1, 1, `unknown key "min-size" (want by-name, disk, free, json-only, name, parts, self, type, untagged, when)`},
	} {
		var d doc
		err := Unmarshal([]byte(c.src), &d)
		var e *Error
		if !errors.As(err, &e) || e.Line != c.line || e.Col != c.col || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%q: %v; want %d:%d: %s", c.src, err, c.line, c.col, c.msg)
		}
	}
}

func TestDecoderErrorsAreOneLine(t *testing.T) {
	var d doc
	err := Unmarshal([]byte("name: n\ndisk: {min-size: lots}\n"), &d)
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q (%T)", err, err)
	}
	if err := Unmarshal([]byte("a: b\n---\nc: d\n"), &d); err == nil || !strings.Contains(err.Error(), "one YAML document") {
		t.Errorf("two documents: %v", err)
	}
	if err := Unmarshal([]byte("a: [\n"), &d); err == nil {
		t.Error("syntax error accepted")
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"by-path", "first-largest", "largest", "max-size", "min-size", "name", "removable", "serial", "smallest", "transport", "wwn"}
	for w, want := range map[string]string{
		"min_size":      "min-size",
		"first_largest": "first-largest",
		"firstLargest":  "first-largest",
		"FirstLargest":  "first-largest",
		"by_path":       "by-path",
		"byPath":        "by-path",
		"min-sise":      "min-size",
		"trnasport":     "transport",
		"removeable":    "removable",
		"nmae":          "name",
		"wnn":           "wwn",
		"largets":       "largest",
		"colour":        "",
		"size":          "",
		"x":             "",
		"":              "",
	} {
		if got := Suggest(w, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", w, got, want)
		}
	}
}

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{
		"min_size": "min-size", "minSize": "min-size", "MinSize": "min-size", "SSHHostKeys": "ssh-host-keys",
		"machine_id": "machine-id", "min size": "min-size", "already-kebab": "already-kebab", "disk2Size": "disk2-size",
		"MIN_SIZE": "min-size",
	} {
		if got := Kebab(in); got != want {
			t.Errorf("Kebab(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParseBounds: documents too big or nested too deep are refused before
// the parser sees them (200 KB of "[" took 15 GB), with the place.
func TestParseBounds(t *testing.T) {
	stair := func(n int) string { // block mappings, each key indented one more
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		return b.String()
	}
	for _, c := range []struct {
		name, doc, err string
	}{
		{"flow sequences", strings.Repeat("[", 200<<10), "1:64: nested more than 64 levels deep"},
		{"flow mappings", "a: " + strings.Repeat("{b: ", 100), "1:"},
		{"closed flow", "a: " + strings.Repeat("[", 65) + strings.Repeat("]", 65), "1:67: nested more than 64 levels deep"},
		{"block dashes", strings.Repeat("- ", 200<<10), "1:129: nested more than 64 levels deep"},
		{"block mappings", stair(100), "65:65: nested more than 64 levels deep"},
		{"comments do not reset", stairDashes(100), "nested more than 64 levels deep"},
		{"too big", "a: " + strings.Repeat("x", MaxSize), "more than the 1048576 a YAML document may have"},
		{"deep but allowed", "a: " + strings.Repeat("[", 60) + strings.Repeat("]", 60), ""},
		{"brackets in strings", "a: \"" + strings.Repeat("[", 1000) + "\"\nb: '" + strings.Repeat("{", 1000) + "'\nc: |\n  " + strings.Repeat("[", 1000) + "\n", ""},
		{"many flat entries", strings.Repeat("- [a, {b: c}]\n", 2000), ""},
	} {
		_, err := Parse([]byte(c.doc))
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
	// Unmarshal, the entry point of layouts, rules and the rest, applies
	// the same bounds.
	var v any
	if err := Unmarshal([]byte(strings.Repeat("[", 200<<10)), &v); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("Unmarshal: %v", err)
	}
}

// stairDashes nests block sequences over n lines, with a comment at column
// 1 between every two: the count must not restart at the comments.
func stairDashes(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", i) + "-\n#\n")
	}
	return b.String()
}
