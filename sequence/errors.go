package sequence

import (
	"errors"
	"fmt"
	"github.com/minint/minint/internal/strictyaml"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// ErrSequence is wrapped by every error about a sequence's content.
var ErrSequence = errors.New("invalid task sequence")

// LoadError is one problem found in a sequence file, with its position.
type LoadError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, "%d:", e.Col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *LoadError) Unwrap() error { return ErrSequence }

// nodeErr is an error about the node n; toLoadError gives it the file's
// name.
func nodeErr(n ast.Node, format string, a ...any) error {
	return strictyaml.Errorf(n, format, a...)
}

// yamlError is what goccy/go-yaml's positioned errors implement.
type yamlError interface {
	GetToken() *token.Token
	GetMessage() string
}

// toLoadError gives any error met while loading a file position and name.
func toLoadError(file string, err error) *LoadError {
	var le *LoadError
	if errors.As(err, &le) {
		if le.File == "" {
			le.File = file
		}
		return le
	}
	var se *strictyaml.Error
	if errors.As(err, &se) {
		return &LoadError{File: file, Line: se.Line, Col: se.Col, Msg: se.Msg}
	}
	var ye yamlError
	if errors.As(err, &ye) {
		e := &LoadError{File: file, Msg: ye.GetMessage()}
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
		return e
	}
	return &LoadError{File: file, Msg: err.Error()}
}
