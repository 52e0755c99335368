package sequence

import (
	"fmt"
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

// example is a YAML sequence found in the documentation.
type example struct {
	where string // file:line, for errors
	src   string
	// fragment: a doc example that shows steps without the rest of a
	// sequence (it starts with steps:, not version:).
	fragment bool
}

// docExamples returns the code blocks of the Go doc comments in dir that
// hold a sequence or steps, keyed also by the declaration they document.
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
				if !ok || !regexp.MustCompile(`(?m)^(version|steps):`).MatchString(code.Text) {
					continue
				}
				all = append(all, example{
					where:    fset.Position(cg.Pos()).String(),
					src:      code.Text,
					fragment: !strings.HasPrefix(code.Text, "version:"),
				})
				if typ := docOf[cg]; typ != "" {
					byType[typ] = append(byType[typ], code.Text)
				}
			}
		}
	}
	return all, byType
}

// readmeExamples returns the ```yaml blocks of a Markdown file: sequences
// a reader pastes into a file, so they must be complete.
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
		out = append(out, example{where: path + ":" + strconv.Itoa(start), src: strings.Join(lines[start:i], "\n") + "\n"})
	}
	return out
}

// TestDocExamples runs every sequence example of the documentation
// (godoc of this package and of the engine, and README.md's yaml blocks)
// through what `minint sequence check` does, so that an example that no
// longer parses, uses a renamed key or an impossible order fails here,
// not in a user's hands. Fragments (steps: without version:) are checked
// as steps, without the order rules that need the steps around them.
func TestDocExamples(t *testing.T) {
	var all []example
	seqEx, byType := docExamples(t, ".")
	peEx, _ := docExamples(t, "../pe")
	all = append(append(all, seqEx...), peEx...)
	readme := readmeExamples(t, "../README.md")
	if len(readme) == 0 {
		t.Fatal("README.md has no ```yaml block: the extraction is broken")
	}
	all = append(all, readme...)
	t.Logf("%d examples", len(all))
	for _, ex := range all {
		var err error
		if ex.fragment {
			_, err = parse([]byte("version: 1\n" + ex.src))
		} else {
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
