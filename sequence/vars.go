package sequence

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
	"github.com/minint/minint/internal/strictyaml"
)

// Variables let one sequence name each host of a fleet, like MDT's
// CustomSettings.ini: the sequence declares them under vars: (with a
// default, or ~ for none), rules: give them values by machine, and any
// string value of a step may use ${var.NAME} and ${machine.KEY}:
//
//	version: 1
//	vars:
//	  hostname: pc-${machine.serial}   # default; a value may use ${machine.…}
//	  role: workstation
//	  site: ~                          # no default: a rule or minint.var.site= must set it where it is used
//	rules:
//	  - match: {mac: "52:54:00:12:34:56"}
//	    vars: {hostname: web1, role: server}
//	  - match: {model: "ThinkPad*", vendor: LENOVO}
//	    vars: {role: laptop}
//	  - vars: {site: hq}                 # no match: every machine
//	steps:
//	  - type: run
//	    name: hello
//	    shell: echo ${var.hostname} is a ${var.role} at ${var.site}, serial ${machine.serial}
//	  - type: poweroff
//
// A variable's value comes from, in this order of priority: the kernel
// command line's minint.var.NAME=VALUE (or `sequence check --var`), the
// first rule in file order that matches the machine and sets it (rules
// are MDT's Priority list: later rules fill only what earlier ones left
// unset), its default. A rule matches when every key of match: does —
// mac (any of the machine's NICs), serial, model, vendor, uuid — each a
// glob (*, ?, [a-f]) compared ignoring case; a rule without match: matches
// every machine. machine.KEY is what the firmware reports (SMBIOS:
// serial, model, vendor, uuid) and mac, the MAC address of the first NIC
// with a link (else the first NIC), lower-case with colons.
//
// Rules live in the sequence file, not beside it: they feed values into
// the steps, so the signature that covers the sequence (a network
// sequence is signed, see package pe) must cover them too; a separate
// rules file would be a way to change a signed sequence.
//
// A reference to an undeclared variable or an unknown machine key, and a
// rule setting an undeclared variable, are load errors with their
// position. Values are put in when the PE starts the run (Sequence.Bind),
// before any step, and the steps are checked again with them: a used
// variable without a value, a machine that does not report a used key,
// or a value a step refuses (a URL that is not http(s)) stops the run
// before anything is written. $${ is a literal ${; any other ${…} (a
// shell's variables) is left alone. A value is put in as text, never as
// YAML (it cannot add keys or steps); in a run step's shell: it is shell
// text, though, and minint.var.NAME is whoever wrote the kernel command
// line: hand values to commands through env: instead. Step names, types and when: are not
// expanded (the journal keys on names; a condition reads var.NAME
// itself).

// MachineKeys are the keys ${machine.KEY} may use.
var MachineKeys = []string{"mac", "model", "serial", "uuid", "vendor"}

// Machine is what rules match and ${machine.KEY} reads.
type Machine struct {
	Vendor, Model, Serial, UUID string
	// MACs are the NICs' addresses, the one ${machine.mac} means first.
	MACs []string
}

func (m Machine) get(key string) string {
	switch key {
	case "mac":
		if len(m.MACs) > 0 {
			return strings.ToLower(m.MACs[0])
		}
		return ""
	case "model":
		return m.Model
	case "serial":
		return m.Serial
	case "uuid":
		return strings.ToLower(m.UUID)
	case "vendor":
		return m.Vendor
	}
	return ""
}

// String names the machine as rules see it (for errors and logs).
func (m Machine) String() string {
	var p []string
	for _, k := range MachineKeys {
		v := m.get(k)
		if k == "mac" {
			v = strings.ToLower(strings.Join(m.MACs, ","))
		}
		if v == "" {
			v = "(none)"
		}
		p = append(p, k+" "+v)
	}
	return strings.Join(p, ", ")
}

// Var is a declared variable.
type Var struct {
	Name string
	// Default is the value when nothing else sets it; HasDefault is
	// false for ~.
	Default    string
	HasDefault bool
	Line       int
}

// Rule gives variables values on the machines it matches.
type Rule struct {
	Match RuleMatch         `yaml:"match"`
	Vars  map[string]string `yaml:"vars"`
	Line  int               `yaml:"-"`
}

// RuleMatch are a rule's globs; empty ones match anything.
type RuleMatch struct {
	MAC    string `yaml:"mac"`
	Serial string `yaml:"serial"`
	Model  string `yaml:"model"`
	Vendor string `yaml:"vendor"`
	UUID   string `yaml:"uuid"`
}

func (r *RuleMatch) globs() map[string]string {
	return map[string]string{"mac": r.MAC, "serial": r.Serial, "model": r.Model, "vendor": r.Vendor, "uuid": r.UUID}
}

// Matches reports whether every glob of r matches m.
func (r *RuleMatch) Matches(m Machine) bool {
	for k, g := range r.globs() {
		if g == "" {
			continue
		}
		vals := []string{m.get(k)}
		if k == "mac" {
			vals = m.MACs
		}
		hit := false
		for _, v := range vals {
			ok, _ := path.Match(strings.ToLower(g), strings.ToLower(v))
			hit = hit || ok && v != ""
		}
		if !hit {
			return false
		}
	}
	return true
}

var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// parseVars reads the vars: mapping.
func parseVars(n ast.Node) ([]Var, error) {
	m, ok := strictyaml.Unwrap(n).(*ast.MappingNode)
	if !ok {
		return nil, nodeErr(n, "vars must be a mapping of NAME: default (or ~ for none)")
	}
	var out []Var
	seen := map[string]bool{}
	for _, kv := range m.Values {
		name := strictyaml.KeyString(kv.Key)
		if !varNameRE.MatchString(name) {
			return nil, nodeErr(kv.Key, "variable name %q: want letters, digits, - and _", name)
		}
		if seen[name] {
			return nil, nodeErr(kv.Key, "variable %q declared twice", name)
		}
		seen[name] = true
		v := Var{Name: name, Line: kv.Key.GetToken().Position.Line}
		if _, null := strictyaml.Unwrap(kv.Value).(*ast.NullNode); !null {
			s, err := scalarString(kv.Value)
			if err != nil {
				return nil, err
			}
			if err := checkValueRefs(kv.Value, s); err != nil {
				return nil, err
			}
			v.Default, v.HasDefault = s, true
		}
		out = append(out, v)
	}
	return out, nil
}

// parseRules reads the rules: list; vars are the declared variables.
func parseRules(n ast.Node, vars []Var) ([]Rule, error) {
	list, ok := strictyaml.Unwrap(n).(*ast.SequenceNode)
	if !ok {
		return nil, nodeErr(n, "rules must be a list of {match: {mac|serial|model|vendor|uuid: GLOB}, vars: {NAME: VALUE}}")
	}
	declared := map[string]bool{}
	for _, v := range vars {
		declared[v.Name] = true
	}
	var out []Rule
	for _, rn := range list.Values {
		var r Rule
		if err := strictyaml.Decode(rn, &r); err != nil {
			return nil, err
		}
		r.Line = rn.GetToken().Position.Line
		rm, _ := strictyaml.Unwrap(rn).(*ast.MappingNode)
		if rm == nil {
			return nil, nodeErr(rn, "a rule must be a mapping with match: and vars:")
		}
		if len(r.Vars) == 0 {
			return nil, nodeErr(rn, "rule sets no variables (give it vars: {NAME: VALUE})")
		}
		for k, g := range r.Match.globs() {
			if _, err := path.Match(g, ""); err != nil {
				return nil, nodeErr(field(rm, "match"), "match %s: bad glob %q", k, g)
			}
		}
		vn := strictyaml.Unwrap(field(rm, "vars"))
		for _, kv := range strictyaml.Pairs(vn) {
			name := strictyaml.KeyString(kv.Key)
			if !declared[name] {
				return nil, nodeErr(kv.Key, "rule sets %q, which vars: does not declare%s", name, suggestVar(name, vars))
			}
			if err := checkValueRefs(kv.Value, r.Vars[name]); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func suggestVar(name string, vars []Var) string {
	var names []string
	for _, v := range vars {
		names = append(names, v.Name)
	}
	if s := strictyaml.Suggest(name, names); s != "" {
		return fmt.Sprintf(": did you mean %q?", s)
	}
	return " (declare it under vars:)"
}

// ref is one ${…} in a string.
type ref struct {
	start, end int    // the bytes of ${…} in the string
	kind, name string // var or machine, NAME or KEY; "" for $${ (a literal ${)
}

var refRE = regexp.MustCompile(`\$?\$\{(var|machine)\.([^}]*)\}`)

// refs finds the references in s (and $${var.…}/$${machine.…} escapes).
func refs(s string) []ref {
	var out []ref
	for _, m := range refRE.FindAllStringSubmatchIndex(s, -1) {
		r := ref{start: m[0], end: m[1], kind: s[m[2]:m[3]], name: s[m[4]:m[5]]}
		if strings.HasPrefix(s[m[0]:], "$$") {
			r.kind = "" // escaped
		}
		out = append(out, r)
	}
	return out
}

// replaceRefs rewrites s with value(kind, name) for each reference.
func replaceRefs(s string, value func(kind, name string) (string, error)) (string, error) {
	rs := refs(s)
	if len(rs) == 0 {
		return s, nil
	}
	var b strings.Builder
	last := 0
	for _, r := range rs {
		b.WriteString(s[last:r.start])
		last = r.end
		if r.kind == "" {
			b.WriteString(s[r.start+1 : r.end]) // drop one $
			continue
		}
		v, err := value(r.kind, r.name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

func isMachineKey(k string) bool {
	i := sort.SearchStrings(MachineKeys, k)
	return i < len(MachineKeys) && MachineKeys[i] == k
}

// checkValueRefs checks the references in a variable's value: machine
// keys only (a value naming another variable would make the order of
// resolution matter).
func checkValueRefs(n ast.Node, s string) error {
	_, err := replaceRefs(s, func(kind, name string) (string, error) {
		if kind == "var" {
			return "", nodeErr(n, "${var.%s}: a variable's value may use ${machine.…} only", name)
		}
		if !isMachineKey(name) {
			return "", nodeErr(n, "${machine.%s}: unknown machine key (known: %s)", name, strings.Join(MachineKeys, ", "))
		}
		return "", nil
	})
	return err
}

// binding is what a parse puts in for references: at load time
// placeholders (a variable's default, else its name), when bound the
// machine's values.
type binding struct {
	declared map[string]bool
	value    func(n ast.Node, kind, name string) (string, error)
	used     bool // a step value had a reference (or $${)
}

// loadBinding checks references against the declarations and puts in
// stand-ins, so that a sequence loads (and its plan reads) before any
// machine is known.
func loadBinding(vars []Var) *binding {
	b := &binding{declared: map[string]bool{}}
	defaults := map[string]Var{}
	for _, v := range vars {
		b.declared[v.Name] = true
		defaults[v.Name] = v
	}
	b.value = func(n ast.Node, kind, name string) (string, error) {
		if kind == "machine" {
			return name, nil
		}
		v := defaults[name]
		if !v.HasDefault {
			return name, nil
		}
		return replaceRefs(v.Default, func(_, key string) (string, error) { return key, nil })
	}
	return b
}

// expandSteps puts values in for the references in the string values of
// the steps' mappings (not in their type, name or when), in place.
func expandSteps(steps *ast.SequenceNode, b *binding) error {
	for _, sn := range steps.Values {
		m, ok := strictyaml.Unwrap(sn).(*ast.MappingNode)
		if !ok {
			continue // parseStep says what is wrong
		}
		for _, kv := range m.Values {
			switch strictyaml.KeyString(kv.Key) {
			case "type", "name", "when":
				if s, ok := strictyaml.Scalar(kv.Value); ok && len(refs(s)) > 0 {
					return nodeErr(kv.Value, "%s: no ${…} here (only in a step's values)", strictyaml.KeyString(kv.Key))
				}
				continue
			}
			if err := expandNode(kv.Value, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func expandNode(n ast.Node, b *binding) error {
	switch v := n.(type) {
	case *ast.TagNode:
		return expandNode(v.Value, b)
	case *ast.AnchorNode:
		return expandNode(v.Value, b)
	case *ast.LiteralNode:
		return expandString(v.Value, b, false)
	case *ast.StringNode:
		return expandString(v, b, true)
	case *ast.MappingNode:
		for _, kv := range v.Values {
			if err := expandNode(kv.Value, b); err != nil {
				return err
			}
		}
	case *ast.MappingValueNode:
		return expandNode(v.Value, b)
	case *ast.SequenceNode:
		for _, e := range v.Values {
			if err := expandNode(e, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func expandString(n *ast.StringNode, b *binding, quote bool) error {
	if !strings.Contains(n.Value, "${") {
		return nil
	}
	s, err := replaceRefs(n.Value, func(kind, name string) (string, error) {
		switch {
		case kind == "machine" && !isMachineKey(name):
			return "", nodeErr(n, "${machine.%s}: unknown machine key (known: %s)", name, strings.Join(MachineKeys, ", "))
		case kind == "var" && !b.declared[name]:
			return "", nodeErr(n, "${var.%s}: no such variable: declare it under vars: (NAME: default, or NAME: ~)", name)
		}
		return b.value(n, kind, name)
	})
	if err != nil {
		return err
	}
	n.Value, b.used = s, b.used || s != n.Value
	if quote {
		// What a value holds is text, never YAML: a decoder that
		// re-reads the node's source sees it quoted.
		tk := *n.Token
		tk.Type, tk.Value = token.DoubleQuoteType, s
		n.Token = &tk
	}
	return nil
}

// Binding is what Bind found for a machine.
type Binding struct {
	// Values are the variables that have a value, and the given ones the
	// sequence does not declare (conditions may read any var.NAME).
	Values map[string]string
	// From says where each value came from: "minint.var", "rule at line
	// N" or "default".
	From map[string]string
}

// Bind resolves the variables for machine m, with the values given on
// the kernel command line (or `sequence check --var`), and returns the
// sequence with every reference in its steps replaced, checked again as
// at load time: errors name FILE:LINE:COLUMN. The result keeps s's
// Digest (the journal belongs to the file); s is not changed.
func (s *Sequence) Bind(m Machine, given map[string]string) (*Sequence, *Binding, error) {
	bd := &Binding{Values: map[string]string{}, From: map[string]string{}}
	if len(s.Vars) == 0 && len(s.Rules) == 0 && !s.refs {
		// Nothing to put in: the sequence as loaded (conditions still
		// read the given values).
		for name, v := range given {
			bd.Values[name], bd.From[name] = v, "minint.var"
		}
		return s, bd, nil
	}
	bad := map[string]error{} // values that need a machine key m lacks
	machineRefs := func(v, where string) (string, error) {
		return replaceRefs(v, func(_, key string) (string, error) {
			if x := m.get(key); x != "" {
				return x, nil
			}
			return "", fmt.Errorf("%s uses ${machine.%s}, which this machine does not report (%s)", where, key, m)
		})
	}
	for name, v := range given {
		bd.Values[name], bd.From[name] = v, "minint.var"
	}
	for _, v := range s.Vars {
		if _, ok := given[v.Name]; ok {
			continue
		}
		val, from, found := v.Default, "default", v.HasDefault
		for _, r := range s.Rules {
			if rv, ok := r.Vars[v.Name]; ok && r.Match.Matches(m) {
				val, from, found = rv, fmt.Sprintf("rule at line %d", r.Line), true
				break
			}
		}
		if !found {
			continue
		}
		x, err := machineRefs(val, fmt.Sprintf("%s's value (%s)", v.Name, from))
		if err != nil {
			bad[v.Name] = err
			continue
		}
		bd.Values[v.Name], bd.From[v.Name] = x, from
	}
	b := &binding{declared: map[string]bool{}}
	for _, v := range s.Vars {
		b.declared[v.Name] = true
	}
	b.value = func(n ast.Node, kind, name string) (string, error) {
		if kind == "machine" {
			if x := m.get(name); x != "" {
				return x, nil
			}
			return "", nodeErr(n, "${machine.%s}: this machine does not report its %s (%s)", name, name, m)
		}
		if err := bad[name]; err != nil {
			return "", nodeErr(n, "${var.%s}: %v", name, err)
		}
		if x, ok := bd.Values[name]; ok {
			return x, nil
		}
		return "", nodeErr(n, "${var.%s} has no value on this machine: it has no default, no rule sets it for %s, and no minint.var.%s= was given", name, m, name)
	}
	out, err := parse(s.src, func([]Var) *binding { return b })
	if err == nil {
		err = checkOrder(out)
	}
	if err != nil {
		return nil, nil, toLoadError(s.file, err)
	}
	out.Digest, out.src, out.file = s.Digest, s.src, s.file
	return out, bd, nil
}
