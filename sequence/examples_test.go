package sequence

import (
	"fmt"
	"github.com/minint/minint/diskops"
	"go/ast"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// example is a YAML document found in the documentation: a sequence, or a
// partition layout (`minint disk partition --layout`).
type example struct {
	where string // file:line, for errors
	src   string
	// fragment: a doc example that shows steps without the rest of a
	// sequence (it starts with steps:, not version:).
	fragment bool
	// layout: a partition layout (table:, partitions:), not a sequence.
	layout bool
}

var (
	sequenceRE = regexp.MustCompile(`(?m)^(version|steps):`)
	layoutRE   = regexp.MustCompile(`(?m)^(table|partitions):`)
)

// classify tells a sequence from a layout; ok is false for other YAML.
func classify(where, src string) (example, bool) {
	switch {
	case sequenceRE.MatchString(src):
		return example{where: where, src: src, fragment: !regexp.MustCompile(`(?m)^version:`).MatchString(src)}, true
	case layoutRE.MatchString(src):
		return example{where: where, src: src, layout: true}, true
	}
	return example{}, false
}

// docExamples returns the code blocks of the Go doc comments in dir that
// hold a sequence, steps or a layout, keyed also by the declaration they
// document.
func docExamples(t *testing.T, dir string) (all []example, byType map[string][]string) {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	byType = map[string][]string{}
	var p comment.Parser
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		docOf := map[*ast.CommentGroup]string{}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok {
				for _, s := range g.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok {
						if ts.Doc != nil {
							docOf[ts.Doc] = ts.Name.Name
						} else if g.Doc != nil {
							docOf[g.Doc] = ts.Name.Name
						}
					}
				}
			}
		}
		for _, cg := range f.Comments {
			for _, b := range p.Parse(cg.Text()).Content {
				code, ok := b.(*comment.Code)
				if !ok {
					continue
				}
				ex, ok := classify(fset.Position(cg.Pos()).String(), code.Text)
				if !ok {
					continue
				}
				all = append(all, ex)
				if typ := docOf[cg]; typ != "" {
					byType[typ] = append(byType[typ], code.Text)
				}
			}
		}
	}
	return all, byType
}

// readmeExamples returns the ```yaml blocks of a Markdown file: sequences
// and layouts a reader pastes into a file, so they must be complete.
func readmeExamples(t *testing.T, path string) []example {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```yaml" {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
		}
		where := path + ":" + strconv.Itoa(start)
		ex, ok := classify(where, strings.Join(lines[start:i], "\n")+"\n")
		if !ok {
			t.Errorf("%s: a yaml block that is neither a sequence nor a layout", where)
			continue
		}
		if ex.fragment {
			t.Errorf("%s: a README sequence must be complete (version: 1 and steps:)", where)
		}
		out = append(out, ex)
	}
	return out
}

// TestDocExamples runs every sequence example of the documentation
// (godoc of this package and of the engine, README.md's yaml blocks and
// the sequences in scripts/) through what `minint sequence check` does,
// and every layout example (godoc of diskops, README.md) through what
// `minint disk partition --layout` reads, so that an example that no
// longer parses, uses a renamed key or an impossible order fails here,
// not in a user's hands. Fragments (steps: without version:) are checked
// as steps, without the order rules that need the steps around them.
func TestDocExamples(t *testing.T) {
	var all []example
	seqEx, byType := docExamples(t, ".")
	all = append(all, seqEx...)
	for _, dir := range []string{"../pe", "../diskops"} {
		ex, _ := docExamples(t, dir)
		all = append(all, ex...)
	}
	readme := readmeExamples(t, "../README.md")
	if len(readme) == 0 {
		t.Fatal("README.md has no ```yaml block: the extraction is broken")
	}
	all = append(all, readme...)
	scripts, _ := filepath.Glob("../scripts/*.yaml")
	if len(scripts) == 0 {
		t.Fatal("no scripts/*.yaml: the demo sequence moved?")
	}
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ex, ok := classify(f, string(b))
		if !ok {
			t.Errorf("%s is neither a sequence nor a layout", f)
		}
		all = append(all, ex)
	}
	kinds := map[bool]int{}
	for _, ex := range all {
		kinds[ex.layout]++
	}
	t.Logf("%d examples (%d layouts)", len(all), kinds[true])
	if kinds[true] == 0 {
		t.Error("no layout example found: the extraction is broken")
	}
	for _, ex := range all {
		var err error
		switch {
		case ex.layout:
			_, err = diskops.ParseLayout([]byte(ex.src))
		case ex.fragment:
			_, err = parse([]byte("version: 1\n"+ex.src), loadBinding)
		default:
			_, err = Parse(ex.where, []byte(ex.src))
		}
		if err != nil {
			t.Errorf("%s: example does not check: %v\n%s", ex.where, err, ex.src)
		}
	}
	// Every step type documents itself with an example that renders as a
	// code block (an indented YAML list would render as a Go doc list).
	for typ, mk := range stepTypes {
		goType := strings.TrimPrefix(fmt.Sprintf("%T", mk()), "*sequence.")
		found := false
		for _, src := range byType[goType] {
			if regexp.MustCompile(`type: ` + regexp.QuoteMeta(typ) + `([\s,}]|$)`).MatchString(src) {
				found = true
			}
		}
		if !found {
			t.Errorf("step type %s: the doc comment of %s has no code-block example with type: %s", typ, goType, typ)
		}
	}
}
