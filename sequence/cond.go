package sequence

import (
	"fmt"
	"github.com/minint/minint/bytesize"
	"strings"
	"unicode"

	"github.com/goccy/go-yaml/ast"
)

// Condition is a step's `when:` expression, e.g.
//
//	steps:
//	  - type: run
//	    shell: echo a big UEFI machine
//	    when: firmware == uefi && memory >= 2GiB
//	  - type: run
//	    name: not-a-kiosk
//	    shell: echo not a small kiosk
//	    when: "!(var.role == kiosk) || cpus > 2"
//
// Operands are fact names (see KnownFacts; var.NAME are the kernel command
// line's minint.var.NAME=VALUE) compared with ==, !=, <, <=, >, >= to a
// literal; both sides that read as sizes or numbers compare as numbers,
// anything else compares as text (== and != only). && binds tighter than ||;
// ! and parentheses work as usual. An empty condition is always true.
//
// A condition is parsed when the sequence loads, so a typo in a fact name or
// an operator is a load error with its line, not a surprise halfway through
// a deployment.
type Condition struct {
	Src  string
	expr condExpr
}

// KnownFacts are the fact names a condition may use besides var.*.
var KnownFacts = map[string]string{
	"firmware":    "bios or uefi",
	"secure-boot": "on when the firmware enforces Secure Boot, else off",
	"arch":        "CPU architecture as Go names it (amd64, arm64)",
	"memory":      "RAM in bytes",
	"cpus":        "number of CPUs",
	"disk":        "the selected target disk (after select-disk)",
	"disk-size":   "size of the selected target disk in bytes (after select-disk)",
	"boot":        "how the PE was booted: medium or network",
}

// Facts answers a condition's questions about the machine.
type Facts interface {
	Fact(name string) (string, bool)
}

// FactMap is a Facts from a map (tests, dry runs).
type FactMap map[string]string

func (m FactMap) Fact(name string) (string, bool) { v, ok := m[name]; return v, ok }

// parseCondition parses a condition expression.
func parseCondition(src string) (Condition, error) {
	c := Condition{Src: strings.TrimSpace(src)}
	if c.Src == "" {
		return c, nil
	}
	p := &condParser{toks: nil}
	if err := p.lex(c.Src); err != nil {
		return c, err
	}
	e, err := p.or()
	if err != nil {
		return c, err
	}
	if p.pos < len(p.toks) {
		return c, fmt.Errorf("condition %q: unexpected %q", c.Src, p.toks[p.pos])
	}
	c.expr = e
	return c, nil
}

// UnmarshalYAML parses at load time so errors carry the line.
func (c *Condition) UnmarshalYAML(n ast.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	p, err := parseCondition(s)
	if err != nil {
		return nodeErr(n, "%v", err)
	}
	*c = p
	return nil
}

// MarshalText writes the source back (plans, journals).
func (c Condition) MarshalText() ([]byte, error) { return []byte(c.Src), nil }

// Eval reports whether the condition holds for facts. A fact that is not
// known yet (disk before select-disk) is an error rather than false, so that
// a sequence never skips a step by accident.
func (c Condition) Eval(f Facts) (bool, error) {
	if c.expr == nil {
		return true, nil
	}
	ok, err := c.expr.eval(f)
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", c.Src, err)
	}
	return ok, nil
}

type condExpr interface {
	eval(Facts) (bool, error)
}

type orExpr struct{ a, b condExpr }
type andExpr struct{ a, b condExpr }
type notExpr struct{ a condExpr }
type litExpr bool
type cmpExpr struct{ fact, op, value string }

func (e orExpr) eval(f Facts) (bool, error) {
	a, err := e.a.eval(f)
	if err != nil || a {
		return a, err
	}
	return e.b.eval(f)
}

func (e andExpr) eval(f Facts) (bool, error) {
	a, err := e.a.eval(f)
	if err != nil || !a {
		return a, err
	}
	return e.b.eval(f)
}

func (e notExpr) eval(f Facts) (bool, error) {
	a, err := e.a.eval(f)
	return !a, err
}

func (e litExpr) eval(Facts) (bool, error) { return bool(e), nil }

func (e cmpExpr) eval(f Facts) (bool, error) {
	v, ok := f.Fact(e.fact)
	if !ok {
		if strings.HasPrefix(e.fact, "var.") {
			v = "" // an unset variable is empty, so `var.x == ""` tests for it
		} else {
			return false, fmt.Errorf("fact %q is not known at this point", e.fact)
		}
	}
	x, errX := bytesize.Parse(v)
	y, errY := bytesize.Parse(e.value)
	numeric := errX == nil && errY == nil
	switch e.op {
	case "==":
		if numeric {
			return x == y, nil
		}
		return v == e.value, nil
	case "!=":
		if numeric {
			return x != y, nil
		}
		return v != e.value, nil
	}
	if !numeric {
		return false, fmt.Errorf("%s %s %s: %q and %q are not both numbers", e.fact, e.op, e.value, v, e.value)
	}
	switch e.op {
	case "<":
		return x < y, nil
	case "<=":
		return x <= y, nil
	case ">":
		return x > y, nil
	default: // ">="
		return x >= y, nil
	}
}

type condParser struct {
	toks []string
	pos  int
	src  string
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-/:%+", r)
}

func (p *condParser) lex(s string) error {
	p.src = s
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '(' || r == ')':
			p.toks = append(p.toks, string(r))
			i++
		case r == '"' || r == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != r {
				j++
			}
			if j == len(rs) {
				return fmt.Errorf("condition %q: unterminated quote", s)
			}
			p.toks = append(p.toks, "\x00"+string(rs[i+1:j])) // \x00 marks a quoted literal
			i = j + 1
		case strings.ContainsRune("=!<>&|", r):
			two := ""
			if i+1 < len(rs) {
				two = string(rs[i : i+2])
			}
			switch two {
			case "==", "!=", "<=", ">=", "&&", "||":
				p.toks = append(p.toks, two)
				i += 2
			default:
				if r == '<' || r == '>' || r == '!' {
					p.toks = append(p.toks, string(r))
					i++
				} else {
					return fmt.Errorf("condition %q: bad operator %q (use ==, !=, <, <=, >, >=, &&, ||, !)", s, string(r))
				}
			}
		case isWordRune(r):
			j := i
			for j < len(rs) && isWordRune(rs[j]) {
				j++
			}
			p.toks = append(p.toks, string(rs[i:j]))
			i = j
		default:
			return fmt.Errorf("condition %q: unexpected character %q", s, string(r))
		}
	}
	return nil
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) next() string { t := p.peek(); p.pos++; return t }

func (p *condParser) or() (condExpr, error) {
	a, err := p.and()
	for err == nil && p.peek() == "||" {
		p.next()
		var b condExpr
		if b, err = p.and(); err == nil {
			a = orExpr{a, b}
		}
	}
	return a, err
}

func (p *condParser) and() (condExpr, error) {
	a, err := p.unary()
	for err == nil && p.peek() == "&&" {
		p.next()
		var b condExpr
		if b, err = p.unary(); err == nil {
			a = andExpr{a, b}
		}
	}
	return a, err
}

func (p *condParser) unary() (condExpr, error) {
	switch t := p.next(); t {
	case "!":
		a, err := p.unary()
		return notExpr{a}, err
	case "(":
		a, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("condition %q: missing )", p.src)
		}
		return a, nil
	case "true", "false":
		return litExpr(t == "true"), nil
	case "":
		return nil, fmt.Errorf("condition %q: ends too early", p.src)
	default:
		if strings.HasPrefix(t, "\x00") || !isFactName(t) {
			return nil, fmt.Errorf("condition %q: unknown fact %q (known: %s, var.NAME)", p.src, strings.TrimPrefix(t, "\x00"), factList())
		}
		op := p.next()
		switch op {
		case "==", "!=", "<", "<=", ">", ">=":
		default:
			return nil, fmt.Errorf("condition %q: want a comparison after %q, got %q", p.src, t, op)
		}
		v := p.next()
		switch {
		case strings.HasPrefix(v, "\x00"):
			v = v[1:]
		case v == "" || strings.ContainsAny(v, "()") || v == "&&" || v == "||" || v == "!" || strings.ContainsAny(v[:1], "=<>"):
			return nil, fmt.Errorf("condition %q: want a value after %s %s", p.src, t, op)
		}
		return cmpExpr{t, op, v}, nil
	}
}

func isFactName(t string) bool {
	if _, ok := KnownFacts[t]; ok {
		return true
	}
	return strings.HasPrefix(t, "var.") && len(t) > 4
}

func factList() string {
	return "firmware, secure-boot, arch, memory, cpus, disk, disk-size, boot"
}
