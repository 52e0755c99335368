package bytesize

import (
	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/internal/strictyaml"
)

// UnmarshalYAML reads a scalar (8G, "500 GB", 4096) and reports a bad
// size at the value's line and column, as goccy/go-yaml's own errors do.
func (s *Size) UnmarshalYAML(n ast.Node) error {
	text, ok := strictyaml.Scalar(n)
	if !ok {
		return strictyaml.Errorf(n, "want a size such as 512MiB or 8G here, not %s", n.Type())
	}
	v, err := Parse(text)
	if err != nil {
		return strictyaml.Errorf(n, "%v", err)
	}
	*s = v
	return nil
}
