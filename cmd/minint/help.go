package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// helpCommand is `minint help [COMMAND…]`: the same help as --help, and a
// usage error for an unknown command (cobra's own prints the root's usage
// and succeeds).
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND…]",
		Short: "Show help for minint or one of its commands",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 && target.HasSubCommands() {
				return usageErrorf("unknown command %q", strings.Join(args, " "))
			}
			printHelp(c.OutOrStdout(), target)
			return nil
		},
	}
}

// useLine is the command's usage line; groups take a COMMAND. A command
// that does its own job and has subcommands too (iso) shows its own use.
func useLine(c *cobra.Command) string {
	if c.HasAvailableSubCommands() && c.Annotations["runs"] == "" {
		return c.CommandPath() + " COMMAND [flags] [args]"
	}
	return c.UseLine()
}

// printHelp writes c's help: usage line, description, subcommands, flags
// and examples.
func printHelp(w io.Writer, c *cobra.Command) {
	c.InitDefaultHelpFlag() // merges the inherited --help when c has not run
	fmt.Fprintf(w, "Usage: %s\n", useLine(c))
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	if desc != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(desc))
	}
	var subs []*cobra.Command
	width := 0
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() || s.Name() == "help" {
			subs = append(subs, s)
			width = max(width, len(s.Name()))
		}
	}
	if len(subs) > 0 {
		sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
		fmt.Fprintf(w, "\nCommands:\n")
		for _, s := range subs {
			fmt.Fprintf(w, "  %-*s  %s\n", width, s.Name(), s.Short)
		}
	}
	if u := flagUsages(c.Flags()); u != "" {
		fmt.Fprintf(w, "\nFlags:\n%s", u)
	}
	if c.Example != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(c.Example, "\n"))
	}
	if len(subs) > 0 {
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", c.CommandPath())
	}
}

// flagRow is one flag in help and man pages: "-o, --output FILE" and what
// it does.
type flagRow struct {
	short, long, value, usage string
}

// flagRows lists fs's visible flags. The value's name comes from the
// backquoted word of the usage (pflag's convention, "write to `FILE`"); a
// boolean takes none. pflag's own FlagUsages is not used: it prints
// "[=true|false]" after every boolean (pflag 1.1.0) and a Go type name
// ("stringToString") where the usage has no backquotes.
func flagRows(fs *pflag.FlagSet) []flagRow {
	var rows []flagRow
	fs.SortFlags = false // the order they were defined in, related flags together
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		name, usage := pflag.UnquoteUsage(f)
		r := flagRow{long: f.Name, usage: usage}
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			r.short = f.Shorthand
		}
		if !isBoolFlag(f) {
			if !strings.Contains(f.Usage, "`") {
				name = "VALUE"
			}
			r.value = name
		}
		if d := defaultText(f); d != "" {
			r.usage += " (default " + d + ")"
		}
		rows = append(rows, r)
	})
	return rows
}

func isBoolFlag(f *pflag.Flag) bool { return f.Value.Type() == "bool" && f.NoOptDefVal != "" }

// defaultText is how a flag's default is shown, or "" when it goes without
// saying (zero values) or the usage already explains it.
func defaultText(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "[]", "0s":
		return ""
	}
	if strings.Contains(f.Usage, "default") {
		return ""
	}
	if f.Value.Type() == "string" {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}

// flagUsages formats flagRows in aligned columns.
func flagUsages(fs *pflag.FlagSet) string {
	rows := flagRows(fs)
	left := make([]string, len(rows))
	width := 0
	for i, r := range rows {
		l := "      --" + r.long
		if r.short != "" {
			l = "  -" + r.short + ", --" + r.long
		}
		if r.value != "" {
			l += " " + r.value
		}
		left[i] = l
		width = max(width, utf8.RuneCountInString(l))
	}
	var b strings.Builder
	for i, r := range rows {
		pad := width - utf8.RuneCountInString(left[i])
		fmt.Fprintf(&b, "%s%s   %s\n", left[i], strings.Repeat(" ", pad), r.usage)
	}
	return b.String()
}
