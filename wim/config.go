package wim

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// CaptureConfig is a wimlib-style capture configuration: which paths to leave
// out of a captured image.
//
//	[ExclusionList]
//	/proc
//	/sys
//	*.tmp
//	[ExclusionException]
//	/proc/keep
//
// A pattern starting with '/' is matched component by component against the
// path from the capture root; any other pattern against the file name only.
// '*' and '?' are wildcards within one component. An excluded directory
// excludes its subtree; an exception keeps a path (and its parent
// directories) even if an exclusion matches it. Other sections wimlib knows
// ([CompressionExclusionList], [AlignmentList], [PrepopulateList]) are
// accepted and ignored.
type CaptureConfig struct {
	Exclusions []string
	Exceptions []string
}

// ParseCaptureConfig reads a capture configuration in wimlib's format.
// Backslashes are treated as path separators and a leading drive letter
// ("C:") is dropped, so Windows-style files work too.
func ParseCaptureConfig(r io.Reader) (*CaptureConfig, error) {
	c := &CaptureConfig{}
	var cur *[]string
	section := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if s == "" || s[0] == ';' || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			if !strings.HasSuffix(s, "]") {
				return nil, fmt.Errorf("wim: capture config line %d: malformed section header %q", line, s)
			}
			section = s[1 : len(s)-1]
			switch strings.ToLower(section) {
			case "exclusionlist":
				cur = &c.Exclusions
			case "exclusionexception":
				cur = &c.Exceptions
			case "compressionexclusionlist", "alignmentlist", "prepopulatelist":
				cur = nil
			default:
				return nil, fmt.Errorf("wim: capture config line %d: unknown section [%s]", line, section)
			}
			continue
		}
		if section == "" {
			return nil, fmt.Errorf("wim: capture config line %d: pattern %q outside a section", line, s)
		}
		if cur == nil {
			continue
		}
		p := strings.ReplaceAll(s, `\`, "/")
		if len(p) >= 2 && p[1] == ':' && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z' {
			p = p[2:]
		}
		if p == "" {
			return nil, fmt.Errorf("wim: capture config line %d: empty pattern", line)
		}
		*cur = append(*cur, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Excluded reports whether the image path (from the capture root, e.g.
// "/proc" or "/var/tmp/x") is left out.
func (c *CaptureConfig) Excluded(path string) bool {
	if c == nil {
		return false
	}
	ex := false
	for _, p := range c.Exclusions {
		if matchPath(path, p, true, false) {
			ex = true
			break
		}
	}
	if !ex {
		return false
	}
	for _, p := range c.Exceptions {
		if matchPath(path, p, true, true) {
			return false
		}
	}
	return true
}

func splitComponents(s string) []string {
	var out []string
	for _, c := range strings.Split(s, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// matchPath follows wimlib's match_path: recursively means a pattern that
// matches a directory matches everything under it; ancestors means a path
// that is a prefix of the pattern matches too.
func matchPath(path, pattern string, recursively, ancestors bool) bool {
	pc := splitComponents(path)
	if !strings.HasPrefix(pattern, "/") {
		if len(pc) == 0 {
			return false
		}
		pc = pc[len(pc)-1:]
	}
	qc := splitComponents(pattern)
	for i := 0; ; i++ {
		if i == len(qc) {
			return i == len(pc) || recursively
		}
		if i == len(pc) {
			return ancestors
		}
		if !globMatch(pc[i], qc[i]) {
			return false
		}
	}
}

func globMatch(s, p string) bool {
	for len(s) > 0 {
		if len(p) == 0 {
			return false
		}
		if p[0] == '*' {
			return globMatch(s, p[1:]) || globMatch(s[1:], p)
		}
		if p[0] != '?' && p[0] != s[0] {
			return false
		}
		s, p = s[1:], p[1:]
	}
	for len(p) > 0 && p[0] == '*' {
		p = p[1:]
	}
	return len(p) == 0
}
