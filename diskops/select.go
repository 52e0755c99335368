package diskops

import (
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/internal/strictyaml"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// Rule selects the target disk declaratively. All set fields must match.
// A rule that leaves more than one candidate is an error, except that
// FirstLargest breaks a tie between equally large disks by bus position
// (by-path, then name), which is stable across boots.
//
// Never candidates: the boot medium, CD-ROMs, read-only devices and devices
// that are mounted, used as swap or held by another device. Removable
// devices are candidates only when the rule asks (removable: true) or names
// the device exactly (name, serial, wwn, by-path); loop devices only when
// the rule says transport: loop or names them.
type Rule struct {
	Name         string        `yaml:"name,omitempty" json:"name,omitempty"`           // sda or /dev/sda
	Transport    string        `yaml:"transport,omitempty" json:"transport,omitempty"` // one of Transports
	MinSize      bytesize.Size `yaml:"min-size,omitempty" json:"min-size,omitempty"`
	MaxSize      bytesize.Size `yaml:"max-size,omitempty" json:"max-size,omitempty"`
	Removable    *bool         `yaml:"removable,omitempty" json:"removable,omitempty"`
	Rotational   *bool         `yaml:"rotational,omitempty" json:"rotational,omitempty"`
	Serial       string        `yaml:"serial,omitempty" json:"serial,omitempty"`
	WWN          string        `yaml:"wwn,omitempty" json:"wwn,omitempty"`
	Model        string        `yaml:"model,omitempty" json:"model,omitempty"` // shell glob, case-insensitive
	ByPath       string        `yaml:"by-path,omitempty" json:"by-path,omitempty"`
	Largest      bool          `yaml:"largest,omitempty" json:"largest,omitempty"`
	FirstLargest bool          `yaml:"first-largest,omitempty" json:"first-largest,omitempty"`
	Smallest     bool          `yaml:"smallest,omitempty" json:"smallest,omitempty"`
}

// ParseRule reads a rule written as YAML ("{transport: nvme, min-size:
// 20G}"), as key=value pairs ("transport=nvme,min-size=20G") or as a bare
// keyword ("first-largest"). Keys are kebab-case; a misspelt one (min_size)
// is an error naming the key meant. Sizes follow package bytesize (20G is
// 20 GiB, 500GB is 500×10⁹ bytes).
func ParseRule(s string) (Rule, error) {
	var r Rule
	s = strings.TrimSpace(s)
	if s == "" {
		return r, fmt.Errorf("%w: empty rule", ErrRule)
	}
	pairs := !strings.HasPrefix(s, "{") && !strings.Contains(s, "\n")
	if pairs {
		var parts []string
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				v = "true"
			}
			parts = append(parts, strconv.Quote(strings.TrimSpace(k))+": "+yamlScalar(strings.TrimSpace(v)))
		}
		s = "{" + strings.Join(parts, ", ") + "}"
	}
	if err := strictyaml.Unmarshal([]byte(s), &r); err != nil {
		var e *strictyaml.Error
		if pairs && errors.As(err, &e) {
			err = errors.New(e.Msg) // a position in the YAML made of the pairs would mislead
		}
		return r, fmt.Errorf("%w: %v", ErrRule, err)
	}
	return r, r.Validate()
}

func yamlScalar(v string) string {
	if v == "true" || v == "false" {
		return v
	}
	return strconv.Quote(v)
}

// Validate checks the rule on its own.
func (r Rule) Validate() error {
	if r == (Rule{}) {
		return fmt.Errorf("%w: the rule sets nothing; say which disk, e.g. {transport: nvme} or first-largest", ErrRule)
	}
	n := 0
	for _, b := range []bool{r.Largest, r.FirstLargest, r.Smallest} {
		if b {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%w: largest, first-largest and smallest exclude each other", ErrRule)
	}
	if r.MaxSize != 0 && r.MinSize > r.MaxSize {
		return fmt.Errorf("%w: min-size %s is above max-size %s", ErrRule, r.MinSize.Explain(), r.MaxSize.Explain())
	}
	if r.Transport != "" {
		if err := checkTransport(r.Transport); err != nil {
			return err
		}
	}
	if r.Model != "" {
		if _, err := filepath.Match(r.Model, ""); err != nil {
			return fmt.Errorf("%w: model pattern %q: %v", ErrRule, r.Model, err)
		}
	}
	return nil
}

// String renders the rule as the flow YAML it can be parsed back from.
func (r Rule) String() string {
	b, err := yaml.MarshalWithOptions(r, yaml.Flow(true))
	if err != nil {
		return fmt.Sprintf("%+v", map[string]any{"rule": r})
	}
	return strings.TrimSpace(string(b))
}

func (r Rule) identifies() bool {
	return r.Name != "" || r.Serial != "" || r.WWN != "" || r.ByPath != ""
}

// Excluded says why d can never be selected by r (regardless of whether
// it matches), or "" when it is a candidate.
func (r Rule) Excluded(d *Disk) string {
	switch {
	case d.Kind == "rom":
		return "CD/DVD drive"
	case d.ReadOnly:
		return "read-only"
	case d.InUse() != "":
		return d.InUse()
	case d.Size == 0:
		return "no medium (size 0)"
	case d.Kind == "loop" && r.Transport != "loop" && !r.identifies():
		return "loop device (select with transport: loop or by name)"
	case d.Removable && !(r.Removable != nil && *r.Removable) && !r.identifies():
		return "removable (select with removable: true)"
	}
	return ""
}

// Matches reports whether d satisfies r's conditions (ignoring exclusions
// and the largest/smallest tie-breakers).
func (r Rule) Matches(d *Disk) bool {
	if r.Name != "" && strings.TrimPrefix(r.Name, "/dev/") != d.Name {
		return false
	}
	if r.Transport != "" && r.Transport != d.Transport {
		return false
	}
	if r.MinSize != 0 && d.Size < int64(r.MinSize) {
		return false
	}
	if r.MaxSize != 0 && d.Size > int64(r.MaxSize) {
		return false
	}
	if r.Removable != nil && *r.Removable != d.Removable {
		return false
	}
	if r.Rotational != nil && *r.Rotational != d.Rotational {
		return false
	}
	if r.Serial != "" && r.Serial != d.Serial {
		return false
	}
	if r.WWN != "" && !strings.EqualFold(r.WWN, d.WWN) {
		return false
	}
	if r.Model != "" {
		if ok, _ := filepath.Match(strings.ToLower(r.Model), strings.ToLower(d.Model)); !ok {
			return false
		}
	}
	if r.ByPath != "" && strings.TrimPrefix(r.ByPath, "/dev/disk/by-path/") != d.ByPath {
		return false
	}
	return true
}

// SelectionError explains a failed selection: which disks matched and why
// every other disk was not a candidate.
type SelectionError struct {
	Rule     Rule
	Err      error   // ErrNoMatch or ErrAmbiguous
	Matched  []*Disk // candidates that matched (ambiguity)
	Excluded map[string]string
	Others   []*Disk // candidates that did not match the rule
}

func (e *SelectionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rule %s: %v", e.Rule, e.Err)
	if len(e.Matched) > 0 {
		fmt.Fprintf(&b, " (%d):", len(e.Matched))
		for _, d := range e.Matched {
			fmt.Fprintf(&b, "\n  %s", Describe(d))
		}
	}
	if len(e.Others) > 0 {
		b.WriteString("\n other candidates:")
		for _, d := range e.Others {
			fmt.Fprintf(&b, "\n  %s", Describe(d))
		}
	}
	if len(e.Excluded) > 0 {
		b.WriteString("\n not candidates:")
		names := make([]string, 0, len(e.Excluded))
		for n := range e.Excluded {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "\n  %s: %s", n, e.Excluded[n])
		}
	}
	return b.String()
}

func (e *SelectionError) Unwrap() error { return e.Err }

// Describe is the one-line description used in errors and confirmations.
func Describe(d *Disk) string {
	s := fmt.Sprintf("%s %s %s", d.Path, bytesize.Size(d.Size).Human(), d.Transport)
	if d.Model != "" {
		s += fmt.Sprintf(" model %q", d.Model)
	}
	if d.Serial != "" {
		s += fmt.Sprintf(" serial %q", d.Serial)
	}
	if d.ByPath != "" {
		s += " by-path " + d.ByPath
	}
	return s
}

// Select returns the one disk r selects among disks, or a *SelectionError
// (wrapping ErrNoMatch or ErrAmbiguous) listing the candidates.
func Select(disks []*Disk, r Rule) (*Disk, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	se := &SelectionError{Rule: r, Excluded: map[string]string{}}
	var matched []*Disk
	for _, d := range disks {
		if why := r.Excluded(d); why != "" {
			se.Excluded[d.Name] = why
			continue
		}
		if r.Matches(d) {
			matched = append(matched, d)
		} else {
			se.Others = append(se.Others, d)
		}
	}
	if len(matched) == 0 {
		se.Err = ErrNoMatch
		return nil, se
	}
	if r.Largest || r.FirstLargest || r.Smallest {
		sort.SliceStable(matched, func(i, j int) bool {
			if matched[i].Size != matched[j].Size {
				return (matched[i].Size > matched[j].Size) != r.Smallest
			}
			if matched[i].ByPath != matched[j].ByPath {
				return matched[i].ByPath < matched[j].ByPath
			}
			return matched[i].Name < matched[j].Name
		})
		if r.FirstLargest || len(matched) == 1 || matched[0].Size != matched[1].Size {
			return matched[0], nil
		}
		n := 1
		for n < len(matched) && matched[n].Size == matched[0].Size {
			n++
		}
		matched = matched[:n]
	}
	if len(matched) > 1 {
		se.Err = ErrAmbiguous
		se.Matched = matched
		se.Others = nil
		return nil, se
	}
	return matched[0], nil
}
