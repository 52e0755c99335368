package main

import (
	"context"
	"fmt"
	"os"

	"github.com/minint/minint/pe"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:    "sequence",
		summary: "Validate task sequences and show their plans",
		sub: []*command{
			{name: "check", summary: "Validate a task sequence (errors name the line) and print its plan", usage: "sequence check [--quiet] [--firmware bios|uefi] [--var NAME=VALUE…] FILE", run: sequenceCheck},
			{name: "types", summary: "List the step types a sequence may use", usage: "sequence types", run: sequenceTypes},
		},
	})
}

func sequenceCheck(fs *pflag.FlagSet, args []string) error {
	quiet := fs.BoolP("quiet", "q", false, "print nothing when the sequence is valid")
	firmware := fs.String("firmware", "", "evaluate conditions for this firmware (bios or uefi); unset leaves them open")
	vars := fs.StringToString("var", nil, "set a condition variable (var.NAME), like minint.var.NAME= on the kernel command line")
	jsonOut := fs.String("json-events", "", "also write the plan as JSON lines to `FILE` (- for stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("want one sequence FILE")
	}
	seq, err := pe.LoadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	problems := pe.CheckBackend(seq, &pe.SystemBackend{})
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "%s:%v\n", fs.Arg(0), p)
	}
	if *quiet && *jsonOut == "" {
		if len(problems) > 0 {
			return fmt.Errorf("%d steps cannot run in this build", len(problems))
		}
		return nil
	}
	// The engine's own dry run prints the plan; PlanOnly because this host
	// is not the machine to check requirements on.
	env := &pe.Env{DryRun: true, PlanOnly: true, Vars: *vars, Inventory: pe.Inventory{Firmware: *firmware}}
	if !*quiet {
		env.Console = os.Stdout
	}
	if *jsonOut != "" {
		w := os.Stdout
		if *jsonOut != "-" {
			f, err := os.Create(*jsonOut)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		env.Events = w
	}
	if err := pe.Run(context.Background(), seq, env); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d steps cannot run in this build", len(problems))
	}
	if !*quiet {
		fmt.Printf("%s: valid (%d steps, sha256 %s)\n", fs.Arg(0), len(seq.Steps), seq.Digest[:16])
	}
	return nil
}

func sequenceTypes(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, t := range pe.StepTypes() {
		fmt.Println(t)
	}
	return nil
}
