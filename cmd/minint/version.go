package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:    "version",
		summary: "Print minint's version",
		usage:   "version",
		run: func(fs *pflag.FlagSet, args []string) error {
			if err := fs.Parse(args); err != nil {
				return err
			}
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v = s.Value
					}
				}
			}
			fmt.Println("minint", v)
			return nil
		},
	})
}
