package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print minint's version",
			Args:  noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				fmt.Fprintln(c.OutOrStdout(), "minint", version())
				return nil
			},
		}
	})
}

// version is the VCS revision minint was built from, or "(devel)".
func version() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v = s.Value
			}
		}
	}
	return v
}
