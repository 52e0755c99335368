package main

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runCLI runs minint with args and returns the exit status, stdout and
// stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

// visibleCommands maps the path of every command a user can see ("wim
// apply"; "minint" for the root) to the command.
func visibleCommands() map[string]*cobra.Command {
	cmds := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		cmds[strings.TrimPrefix(c.CommandPath(), "minint ")] = c
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				walk(s)
			}
		}
	}
	walk(newRoot(io.Discard, io.Discard))
	return cmds
}

// displayName is how minint names the command at path in messages.
func displayName(path string) string {
	if path == "minint" {
		return path
	}
	return "minint " + path
}

// argv is the command line that runs the command at path.
func argv(path string, more ...string) []string {
	var a []string
	if path != "minint" {
		a = strings.Fields(path)
	}
	return append(a, more...)
}

// pflagTypeNames are what pflag (or flagRows, "VALUE") shows for a flag
// whose usage names no value.
var pflagTypeNames = regexp.MustCompile(`^(string|strings|stringArray|stringSlice|stringToString|int|int32|int64|uint|uint64|float32|float64|duration|bool|ip|VALUE)$`)

// internalFlags point commands at fake system trees in tests; users never
// need them, so help, man pages and completion do not offer them.
var internalFlags = map[string]bool{"sys-root": true, "efivars": true}

// TestHelpEveryCommand: --help, -h and `help CMD` print the same help on
// stdout and exit 0, for groups and leaves alike; the flags are aligned,
// each names its value without Go type names or [=true|false], and no
// hidden flag shows.
func TestHelpEveryCommand(t *testing.T) {
	for path, c := range visibleCommands() {
		name := displayName(path)
		code, help, stderr := runCLI(t, argv(path, "--help")...)
		if code != 0 || stderr != "" || !regexp.MustCompile(`^Usage: `+name+`[ \n]`).MatchString(help) {
			t.Errorf("%s --help: exit %d, stderr %q, stdout:\n%s", name, code, stderr, help)
			continue
		}
		if _, h, _ := runCLI(t, argv(path, "-h")...); h != help {
			t.Errorf("%s -h differs from --help:\n%s", name, h)
		}
		if _, h, _ := runCLI(t, append([]string{"help"}, argv(path)...)...); h != help {
			t.Errorf("minint help %s differs from --help:\n%s", path, h)
		}
		if c.Short == "" || strings.ToUpper(c.Short[:1]) != c.Short[:1] || strings.HasSuffix(c.Short, ".") {
			t.Errorf("%s: summary %q: want a capitalized phrase without a final period", name, c.Short)
		}
		if strings.Contains(help, "[=") {
			t.Errorf("%s --help shows an optional value:\n%s", name, help)
		}
		_, flags, ok := strings.Cut(help, "\nFlags:\n")
		if !ok {
			t.Errorf("%s --help has no flags (not even --help):\n%s", name, help)
			continue
		}
		flags, _, _ = strings.Cut(flags, "\n\n")
		flags = strings.TrimSuffix(flags, "\n")
		col := -1
		for _, line := range strings.Split(flags, "\n") {
			trimmed := strings.TrimLeft(line, " ")
			left, desc, ok := strings.Cut(trimmed, "   ")
			if !ok {
				t.Errorf("%s: flag line %q has no description column", name, line)
				continue
			}
			if c := utf8.RuneCountInString(line) - utf8.RuneCountInString(strings.TrimLeft(desc, " ")); col < 0 {
				col = c
			} else if c != col {
				t.Errorf("%s: flag descriptions not aligned:\n%s", name, flags)
				break
			}
			if f := strings.Fields(left); !strings.HasPrefix(f[len(f)-1], "-") &&
				(pflagTypeNames.MatchString(f[len(f)-1]) || strings.ToLower(f[len(f)-1]) == f[len(f)-1]) {
				t.Errorf("%s: flag %q shows a type or a lowercase word: name its value in capitals with backquotes in the usage", name, left)
			}
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if internalFlags[f.Name] || path == "stage" && f.Name == "root" {
				if !f.Hidden {
					t.Errorf("%s: the testing flag --%s is not hidden", name, f.Name)
				}
			}
			if f.Hidden && regexp.MustCompile(`--`+f.Name+`([^-\w]|$)`).MatchString(help) {
				t.Errorf("%s --help shows the hidden flag --%s", name, f.Name)
			}
		})
	}
}

// TestUsageErrorsEveryCommand: an unknown flag, under every command, and an
// unknown or missing subcommand, under every group (a command that also
// runs by itself, like iso, takes no stray word either), exit 2 with the
// message, the usage line and the hint on stderr, and nothing on stdout.
func TestUsageErrorsEveryCommand(t *testing.T) {
	for path, c := range visibleCommands() {
		name := displayName(path)
		cases := [][]string{argv(path, "--no-such-flag")}
		wants := []string{"unknown flag: --no-such-flag"}
		switch {
		case c.Annotations[groupAnnotation] != "":
			cases = append(cases, argv(path, "no-such-command"), argv(path))
			wants = append(wants, `unknown command "no-such-command"`, "missing command")
		case c.HasAvailableSubCommands():
			cases = append(cases, argv(path, "no-such-command"))
			wants = append(wants, `unexpected argument "no-such-command"`)
		}
		for i, args := range cases {
			code, stdout, stderr := runCLI(t, args...)
			if code != 2 || stdout != "" || !strings.HasPrefix(stderr, name+": "+wants[i]+"\n") ||
				!regexp.MustCompile(`\nUsage: `+name+`[ \n]`).MatchString(stderr) || !strings.HasSuffix(stderr, "\nRun '"+name+" --help' for usage.\n") {
				t.Errorf("minint %s: exit %d, stdout %q, stderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
			}
		}
	}
}

// TestMissingArguments: every leaf declares how many arguments it takes;
// too few is a usage error (exit 2) before the command does anything.
func TestMissingArguments(t *testing.T) {
	n := 0
	for path, c := range visibleCommands() {
		if c.HasAvailableSubCommands() {
			continue
		}
		if c.Args == nil {
			t.Errorf("minint %s: no Args: declare the arguments it takes (noArgs, argCount)", path)
			continue
		}
		if c.Args(c, nil) == nil {
			continue // takes no arguments or only optional ones
		}
		n++
		code, stdout, stderr := runCLI(t, argv(path)...)
		if code != 2 || stdout != "" || !regexp.MustCompile(`\nUsage: minint `+path+`[ \n]`).MatchString(stderr) ||
			!strings.Contains(stderr, "Run 'minint "+path+" --help' for usage.") {
			t.Errorf("minint %s: exit %d, stdout %q, stderr:\n%s", path, code, stdout, stderr)
		}
	}
	if n < 20 {
		t.Errorf("only %d commands need arguments; the walk is broken", n)
	}
}

func TestBareMinintIsAUsageError(t *testing.T) {
	code, stdout, stderr := runCLI(t)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "Usage: minint COMMAND") || !strings.Contains(stderr, "\n  wim ") {
		t.Errorf("bare minint: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

func TestVersion(t *testing.T) {
	_, want, _ := runCLI(t, "version")
	if !strings.HasPrefix(want, "minint ") {
		t.Fatalf("minint version: %q", want)
	}
	if code, out, stderr := runCLI(t, "--version"); code != 0 || out != want || stderr != "" {
		t.Errorf("minint --version: exit %d, %q, stderr %q; want %q", code, out, stderr, want)
	}
}

func TestHelpUnknownCommand(t *testing.T) {
	code, stdout, stderr := runCLI(t, "help", "frobnicate")
	if code != 2 || stdout != "" || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("minint help frobnicate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestFailurePrefix: a failure is one line "minint CMD: what went wrong",
// exit 1, however the error was wrapped.
func TestFailurePrefix(t *testing.T) {
	code, stdout, stderr := runCLI(t, "sequence", "check", "/nonexistent/seq.yaml")
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "minint sequence check: ") || strings.Count(stderr, "minint") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestRenamedFlags: an old spelling still works for one release, warns on
// stderr, and is not offered in help.
func TestRenamedFlags(t *testing.T) {
	dir := t.TempDir()
	if code, out, stderr := runCLI(t, "keygen", dir+"/k"); code != 0 {
		t.Fatalf("keygen: %d %s %s", code, out, stderr)
	}
	pkg := dir + "/pkg"
	os.Mkdir(pkg, 0o755)
	writeWIM(t, pkg+"/os.wim")
	if code, _, stderr := runCLI(t, "package", "create", "--key", dir+"/k.key", pkg); code != 0 {
		t.Fatalf("package create: %d %s", code, stderr)
	}
	code, _, stderr := runCLI(t, "package", "verify", "--pub", dir+"/k.pub", pkg)
	if code != 0 || !strings.Contains(stderr, "minint package verify: --pub was renamed to --key") {
		t.Errorf("package verify --pub: exit %d, stderr:\n%s", code, stderr)
	}
	// A renamed boolean or value flag is the new flag: conflicts and
	// checks see it.
	code, _, stderr = runCLI(t, "iso", "--capture-compression", "xpress")
	if code != 2 || !strings.Contains(stderr, "--capture-compress needs --capture") {
		t.Errorf("iso --capture-compression without --capture: exit %d, stderr:\n%s", code, stderr)
	}
	for _, c := range []struct{ path, old string }{
		{"package verify", "pub"}, {"build", "compression"}, {"iso", "capture-compression"},
		{"qemu", "initrd"}, {"qemu", "append"}, {"disk mount", "type"},
	} {
		_, help, _ := runCLI(t, argv(c.path, "--help")...)
		if strings.Contains(help, "--"+c.old+" ") {
			t.Errorf("minint %s --help offers the old --%s", c.path, c.old)
		}
	}
}

// TestBadChoiceIsAUsageError: a flag that takes one of a few words refuses
// any other while parsing, under every command, with exit 2.
func TestBadChoiceIsAUsageError(t *testing.T) {
	n := 0
	for path, c := range visibleCommands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			v, ok := f.Value.(*choiceValue)
			if !ok {
				return
			}
			n++
			code, stdout, stderr := runCLI(t, argv(path, "--"+f.Name, "bogus")...)
			want := `invalid argument "bogus" for "--` + f.Name + `" flag: want ` + orList(v.choices)
			if code != 2 || stdout != "" || !strings.Contains(stderr, want) {
				t.Errorf("minint %s --%s bogus: exit %d, stderr %q; want exit 2 and %q", path, f.Name, code, stderr, want)
			}
		})
	}
	if n < 8 {
		t.Errorf("only %d choice flags", n)
	}
}

// TestBadValueIsAUsageError: a flag value that cannot be right is refused
// with exit 2 before the command starts its work (an ISO label used to be
// checked only after minutes of building the PE).
func TestBadValueIsAUsageError(t *testing.T) {
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"iso", "-o", "/nonexistent/x.iso", "--label", "lower case"}, `volume label "lower case"`},
		{[]string{"iso", "-o", "/nonexistent/x.iso", "--label", strings.Repeat("A", 33)}, "1 to 32 characters"},
		{[]string{"qemu", "--iso", "/nonexistent.iso", "--mem", "abc"}, `invalid size "abc"`},
		{[]string{"qemu", "--iso", "/nonexistent.iso", "--mem", "1500K"}, "whole number of MiB"},
		{[]string{"qemu", "--iso", "/nonexistent.iso", "--tap", "tap0", "--hostfwd", "tcp::2222-:22"}, "--tap replaces the user-mode network"},
	} {
		code, stdout, stderr := runCLI(t, c.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, c.mention) || !strings.Contains(stderr, "--help") {
			t.Errorf("minint %s: exit %d, stdout %q, stderr %q; want exit 2 naming %q with a hint", strings.Join(c.args, " "), code, stdout, stderr, c.mention)
		}
	}
}
