package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/minint/minint/internal/plural"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Renamed flags. Flags are named the same in every command (kebab-case;
// --key, --cmdline, --initramfs, --fs, --compress, --json-events,
// --output/-o, --dry-run, --yes/-y, --quiet/-q). A flag that was renamed
// to fit keeps its old spelling for one release as a hidden alias that
// warns; README's "Command-line conventions" lists them.

// renamed makes old a hidden alias of the flag now called name: using it
// sets name (fs.Changed(name) is true) and warns on stderr. pflag's
// MarkDeprecated is not used because cobra prints its warning to stdout,
// which may be carrying JSON.
func renamed(c *cobra.Command, old, name string) {
	fs := c.Flags()
	target := fs.Lookup(name)
	if target == nil {
		panic("renamed: no flag --" + name)
	}
	f := fs.VarPF(&aliasValue{c: c, target: target, old: old}, old, "", "renamed to --"+name)
	f.Hidden = true
	f.NoOptDefVal = target.NoOptDefVal
}

type aliasValue struct {
	c      *cobra.Command
	target *pflag.Flag
	old    string
}

func (a *aliasValue) String() string { return a.target.Value.String() }
func (a *aliasValue) Type() string   { return a.target.Value.Type() }

func (a *aliasValue) Set(v string) error {
	fmt.Fprintf(a.c.ErrOrStderr(), "%s: --%s was renamed to --%s; the old name goes away in the next release\n",
		a.c.CommandPath(), a.old, a.target.Name)
	return a.c.Flags().Set(a.target.Name, v)
}

// IsBoolFlag lets a boolean's alias go without a value, like the flag.
func (a *aliasValue) IsBoolFlag() bool {
	b, ok := a.target.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// hide hides internal and testing-only flags from help, man pages and
// completion.
func hide(c *cobra.Command, names ...string) {
	for _, n := range names {
		if err := c.Flags().MarkHidden(n); err != nil {
			panic(err)
		}
	}
}

// noArgs refuses positional arguments with a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// argCount checks the number of positional arguments: at least min, at
// most max (no limit when max < 0).
func argCount(min, max int) cobra.PositionalArgs {
	return func(_ *cobra.Command, rest []string) error {
		if len(rest) >= min && (max < 0 || len(rest) <= max) {
			return nil
		}
		switch {
		case max == min:
			return usageErrorf("want %s, got %d", plural.Count(min, "argument"), len(rest))
		case max < 0:
			return usageErrorf("want at least %s, got %d", plural.Count(min, "argument"), len(rest))
		}
		return usageErrorf("want %d to %d arguments, got %d", min, max, len(rest))
	}
}

// choiceValue is a string flag that takes one of a few words.
type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) String() string { return *v.p }
func (v *choiceValue) Type() string   { return "string" }

func (v *choiceValue) Set(s string) error {
	if !slices.Contains(v.choices, s) {
		return fmt.Errorf("want %s", orList(v.choices))
	}
	*v.p = s
	return nil
}

// choiceFlag adds a string flag that takes one of choices: anything else
// is a usage error while parsing (before the command does anything), and
// shell completion offers the choices. The usage names them for people.
func choiceFlag(c *cobra.Command, name, def, usage string, choices ...string) *string {
	p := new(string)
	*p = def
	c.Flags().Var(&choiceValue{p: p, choices: choices}, name, usage)
	c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
	return p
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
