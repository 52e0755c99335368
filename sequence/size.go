package sequence

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Size is a byte count written in a sequence as "512MiB", "4GiB", "1G",
// "1500000" or "100%" (only where a step says so). Decimal suffixes (K, M,
// G, T or KB, MB, …) are powers of 1000 and binary ones (KiB, MiB, …) powers
// of 1024, so that "4GB" means what the disk vendor printed on the box.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseSize parses a size as written in a sequence.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("bad size %q: no number", s)
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || (mult > 1 && n > (1<<62)/mult) {
			return 0, fmt.Errorf("bad size %q: out of range", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q: want a number with an optional unit such as 512MiB or 4GB", s)
	}
	return Size(f * float64(mult)), nil
}

func (s Size) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	if n >= 1<<30 {
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}

// UnmarshalYAML takes the node so that a bad size is reported at its line.
func (s *Size) UnmarshalYAML(n ast.Node) error {
	v, err := scalarString(n)
	if err != nil {
		return err
	}
	p, err := ParseSize(v)
	if err != nil {
		return nodeErr(n, "%v", err)
	}
	*s = p
	return nil
}

// MarshalText keeps sizes readable in journals and plans.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts what MarshalText writes (journal round trips).
func (s *Size) UnmarshalText(b []byte) error {
	p, err := ParseSize(string(b))
	*s = p
	return err
}

func scalarString(n ast.Node) (string, error) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, nil
	case *ast.IntegerNode, *ast.FloatNode:
		return v.GetToken().Value, nil
	case ast.ScalarNode:
		if _, ok := v.(*ast.NullNode); !ok {
			return v.GetToken().Value, nil
		}
	}
	return "", nodeErr(n, "want a single value here, not %s", n.Type())
}
