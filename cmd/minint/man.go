package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// `minint man DIR` writes a man page per command, from the same
// definitions as --help (usage line, description, flags via flagRows), so
// the two cannot drift apart. It is hidden: packagers and `make man` run
// it, users read the pages.
func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:    "man DIR",
			Short:  "Write minint's man pages (section 1) into DIR",
			Hidden: true,
			Args:   argCount(1, 1),
			RunE: func(c *cobra.Command, args []string) error {
				n, err := writeManPages(c.Root(), args[0])
				if err == nil {
					fmt.Fprintf(c.OutOrStdout(), "wrote %d man pages to %s\n", n, args[0])
				}
				return err
			},
		}
	})
}

// writeManPages writes root's page and one per visible command below it.
func writeManPages(root *cobra.Command, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n := 0
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		f, err := os.Create(filepath.Join(dir, manName(c)+".1"))
		if err != nil {
			return err
		}
		writeManPage(f, c)
		if err := f.Close(); err != nil {
			return err
		}
		n++
		for _, s := range manSubcommands(c) {
			if err := walk(s); err != nil {
				return err
			}
		}
		return nil
	}
	return n, walk(root)
}

// manName is "minint-wim-apply" for `minint wim apply`.
func manName(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") }

// manSubcommands are the subcommands that get pages, by name.
func manSubcommands(c *cobra.Command) []*cobra.Command {
	var subs []*cobra.Command
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			subs = append(subs, s)
		}
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	return subs
}

// writeManPage writes c's page in man(7) roff.
func writeManPage(w io.Writer, c *cobra.Command) {
	c.InitDefaultHelpFlag()
	name := manName(c)
	fmt.Fprintf(w, ".TH %s 1 \"\" \"minint\" \"minint manual\"\n", roff(strings.ToUpper(name)))
	// No hyphenation or justification: flags and paths stay whole and can
	// be copied.
	fmt.Fprintf(w, ".nh\n.ad l\n")
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roff(name), roff(c.Short))
	rest := strings.TrimPrefix(useLine(c), c.CommandPath())
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n%s\n", roff(c.CommandPath()), roff(strings.TrimSpace(rest)))
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	fmt.Fprintf(w, ".SH DESCRIPTION\n")
	for i, para := range strings.Split(strings.TrimSpace(desc), "\n\n") {
		if i > 0 {
			fmt.Fprintf(w, ".PP\n")
		}
		fmt.Fprintf(w, "%s\n", roff(para))
	}
	if subs := manSubcommands(c); len(subs) > 0 {
		fmt.Fprintf(w, ".SH COMMANDS\n")
		for _, s := range subs {
			fmt.Fprintf(w, ".TP\n.B %s\n%s\n", roff(s.Name()), roff(s.Short))
		}
	}
	if rows := flagRows(c.Flags()); len(rows) > 0 {
		fmt.Fprintf(w, ".SH OPTIONS\n")
		for _, r := range rows {
			fmt.Fprintf(w, ".TP\n")
			if r.short != "" {
				fmt.Fprintf(w, "\\fB\\-%s\\fR, ", roff(r.short))
			}
			fmt.Fprintf(w, "\\fB\\-\\-%s\\fR", roff(r.long))
			if r.value != "" {
				fmt.Fprintf(w, " \\fI%s\\fR", roff(r.value))
			}
			fmt.Fprintf(w, "\n%s\n", roff(r.usage))
		}
	}
	if c.Example != "" {
		fmt.Fprintf(w, ".SH EXAMPLES\n.nf\n%s\n.fi\n", roff(strings.TrimRight(c.Example, "\n")))
	}
	var also []string
	if c.HasParent() {
		also = append(also, manName(c.Parent()))
	}
	for _, s := range manSubcommands(c) {
		also = append(also, manName(s))
	}
	if len(also) > 0 {
		fmt.Fprintf(w, ".SH SEE ALSO\n")
		for i, a := range also {
			sep := ","
			if i == len(also)-1 {
				sep = ""
			}
			fmt.Fprintf(w, ".BR %s (1)%s\n", roff(a), sep)
		}
	}
}

// roff escapes text for a man page: backslashes, hyphens (which roff
// would otherwise render as typographic hyphens, breaking copied flags),
// characters beyond ASCII (troff reads bytes) and lines that would start
// with a control character.
func roff(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 0x7f:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		l = strings.TrimLeft(l, " \t")
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}
