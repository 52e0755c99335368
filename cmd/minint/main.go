// Command minint builds minint's preinstallation environment and boot media,
// and works with WIM images and disks.
//
// Each subcommand lives in its own file and registers itself in init, so
// that the command table grows without every change touching this file.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// command is one verb of the CLI. Groups (wim, disk, …) have subcommands
// instead of run.
type command struct {
	name    string
	summary string // one line, shown in the command list
	usage   string // e.g. "iso [flags]"; flags are appended by help
	// run parses its own flags with fs (already named and set to
	// ContinueOnError) and does the job.
	run func(fs *pflag.FlagSet, args []string) error
	sub []*command
}

var commands []*command

func register(c *command) { commands = append(commands, c) }

// errUsage marks errors caused by how the command was called: they are
// printed with a pointer to --help and exit with status 2.
var errUsage = errors.New("usage")

func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return runMain(append(args[1:], "--help"), stdout, stderr)
		}
		printList(stdout, "minint", commands)
		return 0
	}
	return dispatch("minint", commands, args, stdout, stderr)
}

func dispatch(prefix string, cmds []*command, args []string, stdout, stderr io.Writer) int {
	c := find(cmds, args[0])
	if c == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", prefix, args[0])
		printList(stderr, prefix, cmds)
		return 2
	}
	name := prefix + " " + c.name
	if c.sub != nil {
		if len(args) < 2 || args[1] == "-h" || args[1] == "--help" {
			printList(stdout, name, c.sub)
			return 0
		}
		return dispatch(name, c.sub, args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	// Subcommands' usage lines may or may not repeat their group's name
	// ("disk list" vs "apply"); print the group once either way.
	usage := c.usage
	if i := strings.LastIndexByte(prefix, ' '); i >= 0 {
		usage = strings.TrimPrefix(usage, prefix[i+1:]+" ")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s\n\n%s\n", prefix, usage, c.summary)
		if fs.HasFlags() {
			fmt.Fprintf(stderr, "\nFlags:\n%s", fs.FlagUsages())
		}
	}
	err := c.run(fs, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", name, strings.TrimPrefix(err.Error(), "usage: "), name)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printList(w io.Writer, prefix string, cmds []*command) {
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	fmt.Fprintf(w, "Usage: %s COMMAND [flags] [args]\n\nCommands:\n", prefix)
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", prefix)
}
