package main

import (
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/sequence"
	"github.com/spf13/cobra"
)

func init() {
	register(func() *cobra.Command {
		return group(&cobra.Command{
			Use:   "sequence",
			Short: "Validate task sequences and show their plans",
		},
			newSequenceCheckCmd(),
			newSequenceTypesCmd(),
		)
	})
}

func newSequenceCheckCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "check [-q] [--firmware bios|uefi] [--var NAME=VALUE…] [--mac MAC… --serial S --model M --vendor V --uuid U] FILE",
		Short: "Validate a task sequence (errors name the line) and print its plan",
		Long: `Validate a task sequence (errors name FILE:LINE:COLUMN) and print its plan.

With a machine (--mac, --serial, --model, --vendor, --uuid), its variables
are bound as the PE would bind them on that machine: the plan shows the
values put in, and a variable without a value there is an error.`,
		Args: argCount(1, 1),
	}
	fs := c.Flags()
	firmware := choiceFlag(c, "firmware", "", "evaluate conditions for this `FIRMWARE` (bios or uefi); unset leaves them open", "bios", "uefi")
	vars := fs.StringToString("var", nil, "set the variable var.NAME to VALUE (repeatable), like minint.var.`NAME=VALUE` on the kernel command line")
	var m sequence.Machine
	fs.StringSliceVar(&m.MACs, "mac", nil, "bind variables for a machine with this NIC `MAC` (repeatable; the first is ${machine.mac})")
	fs.StringVar(&m.Serial, "serial", "", "bind variables for a machine with this serial `NUMBER`")
	fs.StringVar(&m.Model, "model", "", "bind variables for a machine of this `MODEL`")
	fs.StringVar(&m.Vendor, "vendor", "", "bind variables for a machine of this `VENDOR`")
	fs.StringVar(&m.UUID, "uuid", "", "bind variables for a machine with this SMBIOS `UUID`")
	outFlags := addOutputFlags(c, "the plan", "print nothing when the sequence is valid")
	c.RunE = func(_ *cobra.Command, args []string) error {
		seq, err := sequence.LoadFile(args[0])
		if err != nil {
			return err
		}
		var bound *sequence.Binding
		if len(m.MACs) > 0 || m.Serial != "" || m.Model != "" || m.Vendor != "" || m.UUID != "" {
			if seq, bound, err = seq.Bind(m, *vars); err != nil {
				return err
			}
		}
		out, err := outFlags.open()
		if err != nil {
			return err
		}
		defer out.Close()
		// The plan is this command's result: it goes where results go.
		var plan io.Writer
		if out.Log != nil {
			plan = out.Out
		}
		rep := progress.New(plan, out.Events())
		facts := planFacts(*firmware, *vars)
		if bound != nil {
			for _, k := range slices.Sorted(maps.Keys(bound.Values)) {
				rep.Printf("variable %s = %s (%s)", k, bound.Values[k], bound.From[k])
				facts["var."+k] = bound.Values[k]
			}
		} else if len(seq.Vars) > 0 {
			// The loaded steps hold stand-ins; say so rather than let
			// the plan pass for a machine's.
			for _, v := range seq.Vars {
				if v.HasDefault {
					rep.Printf("variable %s: default %s, %s", v.Name, v.Default, plural.Count(rulesSetting(seq, v.Name), "rule"))
				} else {
					rep.Printf("variable %s: no default, %s (the plan shows its name)", v.Name, plural.Count(rulesSetting(seq, v.Name), "rule"))
				}
			}
			rep.Printf("(the plan puts in defaults; --mac, --serial, --model, --vendor, --uuid show a machine's values)")
		}
		printSequencePlan(rep, seq, sequence.FactMap(facts))
		if plan != nil {
			fmt.Fprintf(plan, "%s: valid (%s, sha256 %s)\n", args[0], plural.Count(len(seq.Steps), "step"), seq.Digest[:16])
		}
		return nil
	}
	return c
}

// rulesSetting counts the rules that give the variable name a value.
func rulesSetting(seq *sequence.Sequence, name string) int {
	n := 0
	for _, r := range seq.Rules {
		if _, ok := r.Vars[name]; ok {
			n++
		}
	}
	return n
}

// planFacts are the facts a host knows about the machine a sequence is
// for: what the operator said. Everything else is decided at run time.
func planFacts(firmware string, vars map[string]string) map[string]string {
	f := map[string]string{}
	if firmware != "" {
		f["firmware"] = firmware
	}
	for k, v := range vars {
		f["var."+k] = v
	}
	return f
}

// printSequencePlan shows what the sequence would do, in the lines and events a
// dry run in the PE uses.
func printSequencePlan(rep *progress.Reporter, seq *sequence.Sequence, facts sequence.Facts) {
	name := seq.Name
	if name == "" {
		name = "task sequence"
	}
	rep.Printf("Plan for %s (dry run: no disk is touched):", name)
	n := len(seq.Steps)
	rep.Emit(progress.Event{Kind: "sequence", State: "start", Msg: name, Data: map[string]any{"steps": n, "digest": seq.Digest, "dry_run": true}})
	for i, p := range seq.Plan(facts) {
		b := p.Step.Base()
		rep.Printf("[%d/%d] %s", i+1, n, p)
		state, msg := "plan", p.Step.Describe()
		if p.Decision == sequence.Skip {
			state, msg = "skipped", b.When.Src
		}
		rep.Emit(progress.Event{Kind: "step", Op: b.Name, State: state, Msg: msg, Data: map[string]any{"type": b.Type, "index": i + 1, "count": n}})
	}
	rep.Emit(progress.Event{Kind: "sequence", State: "done", Msg: name})
}

func newSequenceTypesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "types",
		Short: "List the step types a sequence may use",
		Args:  noArgs,
	}
	c.RunE = func(*cobra.Command, []string) error {
		for _, t := range sequence.StepTypes() {
			fmt.Fprintln(c.OutOrStdout(), t)
		}
		return nil
	}
	return c
}
