// Package strictyaml decodes the YAML documents people write for minint
// (task sequences, partition layouts, disk rules, answer files) strictly
// and explains what is wrong where: every key must be one that a field
// takes, and one that is not gets an error at its line and column naming
// the key that was probably meant — the kebab-case spelling of a
// snake_case or camelCase key (min_size → min-size: every key is
// kebab-case) or the known key nearest by edit distance (sise → size).
//
// goccy/go-yaml's own strict mode only says `unknown field "min_size"`; a
// walk over the document guided by the destination's type comes first,
// then goccy decodes as usual.
package strictyaml

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Error is a problem at a place in a YAML document. It has the methods of
// goccy/go-yaml's positioned errors (GetToken, GetMessage), so callers
// that report FILE:LINE:COLUMN treat both alike.
type Error struct {
	Line, Col int // 1-based; 0 when unknown
	Msg       string
	tok       *token.Token
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
}

// GetToken is the token the error is about (nil when unknown).
func (e *Error) GetToken() *token.Token { return e.tok }

// GetMessage is the message without the position.
func (e *Error) GetMessage() string { return e.Msg }

// Errorf is an error about the node n.
func Errorf(n ast.Node, format string, a ...any) error {
	var tk *token.Token
	if n != nil {
		tk = n.GetToken()
	}
	return errorAt(tk, fmt.Sprintf(format, a...))
}

func errorAt(tk *token.Token, msg string) *Error {
	e := &Error{Msg: msg, tok: tk}
	if tk != nil && tk.Position != nil {
		e.Line, e.Col = tk.Position.Line, tk.Position.Column
	}
	return e
}

// positioned is what goccy/go-yaml's errors implement.
type positioned interface {
	GetToken() *token.Token
	GetMessage() string
}

// wrap turns goccy/go-yaml's multi-line errors (with a source excerpt)
// into an *Error of one line.
func wrap(err error) error {
	var e *Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	var p positioned
	if errors.As(err, &p) {
		return errorAt(p.GetToken(), p.GetMessage())
	}
	return err
}

// Limits on a document, checked before it is parsed. goccy/go-yaml's
// parser takes time and memory quadratic in the nesting depth (200 KB of
// "[" took 15 GB) and its lexer some hundred bytes per byte of input; a
// sequence, layout, rule or answer file is a few kilobytes, nested a few
// levels, and whoever can write one must not be able to exhaust the PE's
// memory with it.
const (
	MaxSize  = 1 << 20
	MaxDepth = 64
)

// Parse parses b after checking it against MaxSize and MaxDepth. It is
// the only way minint parses YAML.
func Parse(b []byte) (*ast.File, error) {
	if len(b) > MaxSize {
		return nil, &Error{Msg: fmt.Sprintf("the document is %d bytes, more than the %d a YAML document may have", len(b), MaxSize)}
	}
	tks := lexer.Tokenize(string(b))
	if err := checkDepth(tks); err != nil {
		return nil, err
	}
	f, err := parser.Parse(tks, 0)
	return f, wrap(err)
}

// checkDepth bounds the nesting depth, from the tokens alone (the lexer is
// linear): flow collections ([ {) count one level each; block collections
// are found by columns, as the parser finds them: a line's first token and
// each "-" or "?" nest below the open ones left of them. Comments do not
// count: one at column 1 must not reset the count.
func checkDepth(tks token.Tokens) error {
	flow, line := 0, 0
	var cols []int // columns of the open block collections
	for _, tk := range tks {
		if tk.Type == token.CommentType || tk.Position == nil {
			continue
		}
		if flow == 0 && (tk.Position.Line != line || tk.Type == token.SequenceEntryType || tk.Type == token.MappingKeyType) {
			for len(cols) > 0 && cols[len(cols)-1] >= tk.Position.Column {
				cols = cols[:len(cols)-1]
			}
			cols = append(cols, tk.Position.Column)
		}
		line = tk.Position.Line
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow = max(0, flow-1)
		}
		if len(cols)+flow > MaxDepth {
			return errorAt(tk, fmt.Sprintf("nested more than %d levels deep", MaxDepth))
		}
	}
	return nil
}

// Unmarshal decodes the one YAML document in b into v (a pointer),
// checking its keys first.
func Unmarshal(b []byte, v any) error {
	f, err := Parse(b)
	if err != nil {
		return err
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return &Error{Msg: fmt.Sprintf("want one YAML document, found %d", len(f.Docs))}
	}
	return Decode(f.Docs[0].Body, v)
}

// Decode decodes the node n into v (a pointer), checking its keys first.
func Decode(n ast.Node, v any) error {
	if err := CheckKeys(n, reflect.TypeOf(v)); err != nil {
		return err
	}
	return wrap(yaml.NodeToValue(n, v, yaml.DisallowUnknownField()))
}

// CheckKeys walks n as goccy/go-yaml would decode it into a value of type
// t and returns an error at the first key no struct field takes. Values
// of types that decode themselves (a YAML, text or JSON unmarshaler) are
// not looked into; nodes of the wrong kind are left for the decoder to
// report.
func CheckKeys(n ast.Node, t reflect.Type) error {
	n = Unwrap(n)
	if n == nil || t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if decodesItself(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := fieldsOf(t)
		for _, kv := range Pairs(n) {
			key := KeyString(kv.Key)
			if key == "<<" {
				continue // a merge key: the merged mapping is checked where it is defined
			}
			ft, ok := fields[key]
			if !ok {
				return UnknownKey(kv.Key, key, names(fields))
			}
			if err := CheckKeys(kv.Value, ft); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if s, ok := n.(*ast.SequenceNode); ok {
			for _, e := range s.Values {
				if err := CheckKeys(e, t.Elem()); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		for _, kv := range Pairs(n) {
			if err := CheckKeys(kv.Value, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

// UnknownKey is the error for a key that is not one of known, at the key's
// node: `unknown key "min_size": did you mean "min-size"?`.
func UnknownKey(n ast.Node, key string, known []string) error {
	if s := Suggest(key, known); s != "" {
		return Errorf(n, "unknown key %q: did you mean %q?", key, s)
	}
	return Errorf(n, "unknown key %q (want %s)", key, strings.Join(known, ", "))
}

// KeyString is a mapping key's text, without quotes.
func KeyString(n ast.Node) string {
	n = Unwrap(n)
	switch k := n.(type) {
	case *ast.StringNode:
		return k.Value
	case *ast.MappingKeyNode:
		return KeyString(k.Value)
	case nil:
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return n.String()
}

// Scalar is the text of a scalar value (a string without its quotes, a
// number or a bool as written); ok is false for null, mappings and lists.
func Scalar(n ast.Node) (text string, ok bool) {
	switch v := Unwrap(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.NullNode:
		return "", false
	case ast.ScalarNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// Unwrap is the node under tags, anchors and a document.
func Unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.DocumentNode:
			n = v.Body
		default:
			return n
		}
	}
}

// Pairs are the key-value pairs of a mapping node (a one-pair mapping
// may be a bare MappingValueNode); nil for other nodes.
func Pairs(n ast.Node) []*ast.MappingValueNode {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}
	}
	return nil
}

var unmarshalers = []reflect.Type{
	reflect.TypeFor[yaml.BytesUnmarshaler](),
	reflect.TypeFor[yaml.BytesUnmarshalerContext](),
	reflect.TypeFor[yaml.InterfaceUnmarshaler](),
	reflect.TypeFor[yaml.InterfaceUnmarshalerContext](),
	reflect.TypeFor[yaml.NodeUnmarshaler](),
	reflect.TypeFor[yaml.NodeUnmarshalerContext](),
	reflect.TypeFor[encoding.TextUnmarshaler](),
}

func decodesItself(t reflect.Type) bool {
	for _, u := range unmarshalers {
		if t.Implements(u) || reflect.PointerTo(t).Implements(u) {
			return true
		}
	}
	return false
}

// fieldsOf maps the keys a struct takes to their types, with inline
// structs' keys merged in, by goccy/go-yaml's rules: the yaml tag's name,
// else the json tag's, else the lower-cased field name.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" {
			tag = f.Tag.Get("json")
		}
		if (f.PkgPath != "" && !f.Anonymous) || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range fieldsOf(ft) {
					m[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func names(m map[string]reflect.Type) []string {
	s := make([]string, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// Suggest returns the word of known that was probably meant by w: its
// kebab-case spelling (min_size, minSize and MIN-SIZE all mean min-size),
// else the nearest by edit distance when that is close (at most one edit
// in four letters, and at least one); "" when nothing is close.
func Suggest(w string, known []string) string {
	kebab := Kebab(w)
	for _, k := range known {
		if k == kebab {
			return k
		}
	}
	limit := max(1, len([]rune(kebab))/4)
	best, bestD := "", limit+1
	for _, k := range known {
		if d := distance(kebab, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

// Kebab spells a key in kebab-case: min_size, minSize, MinSize and
// "min size" all become min-size.
func Kebab(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case r == '_' || r == ' ':
			b.WriteByte('-')
		case unicode.IsUpper(r):
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('-')
			}
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// distance is the Levenshtein distance between a and b, counting an
// exchange of two neighbouring letters as one edit.
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	if len(x) > 64 || len(y) > 64 {
		return max(len(x), len(y)) // not worth the work: nothing is near
	}
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}
