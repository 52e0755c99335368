// Package passwd reads, checks and edits the account files /etc/passwd,
// /etc/group, /etc/shadow and /etc/gshadow: the one editor behind the
// answer file's users (package answer) and the user-state restore
// (package state).
//
// It is strict because a record that reaches these files decides who is
// root: a line with a newline inside is two records, a line with an extra
// field shifts the uid, and a record "with uid 0" is a second root. Every
// line of a file must have exactly its kind's field count; ParseLine
// refuses newlines and wrong counts, and CheckRegularUser and
// CheckRegularGroup say whether a record from outside (a captured state
// store) may be added to a system at all.
package passwd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrFormat is wrapped by every parse and check error.
var ErrFormat = errors.New("malformed account record")

// Kind is one of the account files.
type Kind struct {
	// File is the path below the root, e.g. "etc/passwd".
	File string
	// Fields is the exact number of ':'-separated fields of a record.
	Fields int
	// ID is the index of the numeric id field (-1: none).
	ID int
	// Members is the index of the comma-separated member list (-1: none).
	Members int
}

// The account files, with Debian's field counts.
var (
	Passwd  = Kind{File: "etc/passwd", Fields: 7, ID: 2, Members: -1}
	Group   = Kind{File: "etc/group", Fields: 4, ID: 2, Members: 3}
	Shadow  = Kind{File: "etc/shadow", Fields: 9, ID: -1, Members: -1}
	Gshadow = Kind{File: "etc/gshadow", Fields: 4, ID: -1, Members: 3}
)

func (k Kind) String() string { return filepath.Base(k.File) }

// Regular ids: Debian's range for accounts people log in with, from 1000
// up to (not including) nobody's 65534. Everything below is the system's.
const (
	FirstRegular = 1000
	LastRegular  = 65533
)

// IsRegular says whether a uid or gid is in the regular range.
func IsRegular(id int) bool { return id >= FirstRegular && id <= LastRegular }

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// ValidName says whether s is a user or group name useradd accepts
// without --badname.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ParseLine splits one record of kind k. It refuses a newline or carriage
// return, a wrong field count, an empty name and (passwd, group) a
// non-numeric id.
func ParseLine(k Kind, line string) ([]string, error) {
	if strings.ContainsAny(line, "\n\r\x00") {
		return nil, fmt.Errorf("%w: %s record %.40q contains a newline or NUL", ErrFormat, k, line)
	}
	f := strings.Split(line, ":")
	if len(f) != k.Fields {
		return nil, fmt.Errorf("%w: %s record %.40q has %d fields, want %d", ErrFormat, k, line, len(f), k.Fields)
	}
	if f[0] == "" {
		return nil, fmt.Errorf("%w: %s record %.40q has no name", ErrFormat, k, line)
	}
	if k.ID >= 0 {
		if _, err := strconv.ParseUint(f[k.ID], 10, 32); err != nil {
			return nil, fmt.Errorf("%w: %s record %q: id %q is not a number", ErrFormat, k, f[0], f[k.ID])
		}
	}
	if k == Passwd {
		if _, err := strconv.ParseUint(f[3], 10, 32); err != nil {
			return nil, fmt.Errorf("%w: passwd record %q: gid %q is not a number", ErrFormat, f[0], f[3])
		}
	}
	return f, nil
}

// Table is the records of one account file, in file order.
type Table struct {
	Kind Kind
	Rows [][]string
	// Exists is false for a file that was missing when read.
	Exists bool
}

// Parse parses a whole file. Empty lines are dropped; any other line must
// be a well-formed record (see ParseLine), and a name may appear once.
func Parse(k Kind, data []byte) (*Table, error) {
	t := &Table{Kind: k, Exists: true}
	for i, l := range strings.Split(string(data), "\n") {
		if l == "" {
			continue
		}
		f, err := ParseLine(k, l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if t.Find(f[0]) != nil {
			return nil, fmt.Errorf("line %d: %w: %s name %q appears twice", i+1, ErrFormat, k, f[0])
		}
		t.Rows = append(t.Rows, f)
	}
	return t, nil
}

// Read parses root/k.File; a missing file is an empty table with Exists
// false.
func Read(root string, k Kind) (*Table, error) {
	name := filepath.Join(root, k.File)
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return &Table{Kind: k}, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := Parse(k, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Bytes is the file content.
func (t *Table) Bytes() []byte {
	var b strings.Builder
	for _, r := range t.Rows {
		b.WriteString(strings.Join(r, ":"))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Find returns the record named name (to edit in place), or nil.
func (t *Table) Find(name string) []string {
	for _, r := range t.Rows {
		if r[0] == name {
			return r
		}
	}
	return nil
}

// ByID returns the first record with this id, or nil.
func (t *Table) ByID(id int) []string {
	s := strconv.Itoa(id)
	for _, r := range t.Rows {
		if t.Kind.ID >= 0 && r[t.Kind.ID] == s {
			return r
		}
	}
	return nil
}

// ID is the numeric id of a record of t (parsed by ParseLine, so numeric).
func (t *Table) ID(r []string) int {
	n, _ := strconv.Atoi(r[t.Kind.ID])
	return n
}

// NextID is the lowest regular id no record has.
func (t *Table) NextID() int {
	n := FirstRegular
	for t.ByID(n) != nil {
		n++
	}
	return n
}

// Add appends a record after checking it with ParseLine and that its name
// is new.
func (t *Table) Add(fields ...string) error {
	line := strings.Join(fields, ":")
	f, err := ParseLine(t.Kind, line)
	if err != nil {
		return err
	}
	if t.Find(f[0]) != nil {
		return fmt.Errorf("%w: %s already has %q", ErrFormat, t.Kind, f[0])
	}
	t.Rows = append(t.Rows, f)
	return nil
}

// Members lists a group record's members.
func (t *Table) Members(r []string) []string {
	if r[t.Kind.Members] == "" {
		return nil
	}
	return strings.Split(r[t.Kind.Members], ",")
}

// AddMember adds name to a group or gshadow record unless it is there.
func (t *Table) AddMember(r []string, name string) {
	m := t.Members(r)
	if !slices.Contains(m, name) {
		r[t.Kind.Members] = strings.Join(append(m, name), ",")
	}
}

// CheckRegularUser checks a passwd record from outside the system (a
// captured state store) before it is added: well formed, a valid name, uid
// and primary gid in the regular range, an absolute clean home that is not
// "/", a shell and gecos without control characters.
func CheckRegularUser(line string) ([]string, error) {
	f, err := ParseLine(Passwd, line)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(f[2])
	gid, _ := strconv.Atoi(f[3])
	switch {
	case !ValidName(f[0]):
		return nil, fmt.Errorf("%w: user name %q is not valid", ErrFormat, f[0])
	case !IsRegular(uid):
		return nil, fmt.Errorf("%w: user %q has uid %d outside the regular range %d-%d", ErrFormat, f[0], uid, FirstRegular, LastRegular)
	case !IsRegular(gid):
		return nil, fmt.Errorf("%w: user %q has primary group %d outside the regular range %d-%d", ErrFormat, f[0], gid, FirstRegular, LastRegular)
	case !filepath.IsAbs(f[5]) || filepath.Clean(f[5]) != f[5] || f[5] == "/":
		return nil, fmt.Errorf("%w: user %q has home %q, not an absolute clean path below /", ErrFormat, f[0], f[5])
	case hasControl(f[4]) || hasControl(f[6]):
		return nil, fmt.Errorf("%w: user %q has control characters in gecos or shell", ErrFormat, f[0])
	}
	return f, nil
}

// CheckRegularGroup checks a group record from outside the system: well
// formed, a valid name, gid in the regular range.
func CheckRegularGroup(line string) ([]string, error) {
	f, err := ParseLine(Group, line)
	if err != nil {
		return nil, err
	}
	gid, _ := strconv.Atoi(f[2])
	switch {
	case !ValidName(f[0]):
		return nil, fmt.Errorf("%w: group name %q is not valid", ErrFormat, f[0])
	case !IsRegular(gid):
		return nil, fmt.Errorf("%w: group %q has gid %d outside the regular range %d-%d", ErrFormat, f[0], gid, FirstRegular, LastRegular)
	}
	return f, nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
