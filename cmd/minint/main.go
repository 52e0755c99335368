// Command minint builds minint's preinstallation environment and boot media,
// and works with WIM images and disks.
//
// The command tree is built with cobra on top of pflag. cobra replaces the
// hand-rolled dispatcher this file used to hold, and it derives shell
// completion (bash, zsh, fish) and man pages from the same command
// definitions that parse the arguments, so the three cannot disagree. What
// cobra does not decide is kept here, in one place, the same for every
// command: the help layout, the exit statuses (0 ok, 1 failure, 2 usage
// error) and how errors are printed.
//
// Each command lives in its own file and registers a constructor in init,
// so that the command table grows without every change touching this file.
// The tree is built afresh for every runMain, so tests can run commands
// one after another without flag values leaking between runs.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minint/minint/internal/redact"
	"github.com/spf13/cobra"
)

var constructors []func() *cobra.Command

// register adds a top-level command (or group) to the tree.
func register(newCmd func() *cobra.Command) { constructors = append(constructors, newCmd) }

// usageError is an error in how the command was called: it is printed
// with the usage line and a pointer to --help, and exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

func isUsageError(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// errMissingCommand is a group called without a subcommand: the usage
// that helps is the list of subcommands.
var errMissingCommand = usageErrorf("missing command")

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain runs the command line args and returns the exit status: 0 for
// success (and for --help), 1 when the command failed, 2 when it was called
// wrongly.
func runMain(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	c, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if c == nil {
		c = root
	}
	name := c.CommandPath()
	// An error may quote a URL given on the command line or met on the
	// way: its password or token is never shown.
	msg := redact.Text(err.Error())
	if isUsageError(err) {
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		if errors.Is(err, errMissingCommand) {
			printHelp(stderr, c)
		} else {
			fmt.Fprintf(stderr, "Usage: %s\n", useLine(c))
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, strings.TrimPrefix(msg, name+": "))
	return 1
}

// newRoot builds the command tree, writing to stdout and stderr.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := group(&cobra.Command{
		Use:     "minint",
		Short:   "Build a Linux preinstallation environment, its boot media, and deploy WIM images with it",
		Version: version(),
	})
	for _, newCmd := range constructors {
		root.AddCommand(newCmd())
	}
	root.SetVersionTemplate("minint {{.Version}}\n")
	root.PersistentFlags().BoolP("help", "h", false, "show this help")
	root.Flags().Bool("version", false, "print minint's version")
	root.SetHelpCommand(helpCommand())
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { printHelp(c.OutOrStdout(), c) })
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageErrorf("%v", err)
	})
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	// cobra adds `completion bash|zsh|fish|powershell` when it executes;
	// adding it now lets it follow the same rules as every other group.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			group(c)
		}
	}
	argErrorsAreUsageErrors(root)
	return root
}

// argErrorsAreUsageErrors makes every wrong argument count a usage error,
// including those cobra's own validators (cobra.NoArgs, …) report.
func argErrorsAreUsageErrors(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			err := check(c, args)
			if err != nil && !isUsageError(err) {
				return usageErrorf("%v", err)
			}
			return err
		}
	}
	for _, s := range c.Commands() {
		argErrorsAreUsageErrors(s)
	}
}

// groupAnnotation marks the commands group made.
const groupAnnotation = "minint-group"

// group makes c a command whose job is choosing a subcommand: bare, it is
// a usage error; with an unknown subcommand, too (cobra would print help
// and succeed for groups below the root).
func group(c *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	c.Annotations = map[string]string{groupAnnotation: "true"}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return errMissingCommand
		}
		msg := fmt.Sprintf("unknown command %q", args[0])
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageErrorf("%s", msg)
	}
	c.AddCommand(subs...)
	return c
}
