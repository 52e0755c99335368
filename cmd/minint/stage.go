package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/stage"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { register(newStageCmd) }

func newStageCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "stage --kernel FILE --initramfs FILE --sequence FILE [flags]",
		Short: "Prepare this running system for an in-place refresh: capture user state, stage the PE, boot into it once",
		Args:  noArgs,
	}
	fs := c.Flags()
	var o stage.Options
	fs.StringVar(&o.Root, "root", "/", "root of the system to stage (a test tree; implies --no-reboot)")
	fs.StringVar(&o.Kernel, "kernel", "", "the PE's kernel `FILE`")
	fs.StringVar(&o.Initramfs, "initramfs", "", "the PE's initramfs `FILE`")
	fs.StringVar(&o.Sequence, "sequence", "", "the task sequence `FILE` for the PE")
	fs.StringVar(&o.Cmdline, "cmdline", "minint.done=reboot", "the PE's kernel command line `ARGS`")
	fs.StringVar(&o.StagedFS, "staged-fs", "", "`UUID=…` of the filesystem holding ROOT/minint, for the PE's minint.staged= (default: probed from ROOT's device)")
	fs.StringVar(&o.ESP, "esp", "", "`DIR` where the EFI system partition with systemd-boot is mounted (default: ROOT/boot/efi, ROOT/efi or ROOT/boot, else the one EFI system partition on ROOT's disk, mounted while needed)")
	firmware := choiceFlag(c, "firmware", "", "the machine's `FIRMWARE`, bios or uefi (default: detected); BIOS needs syslinux on a FAT boot partition of ROOT's disk", "bios", "uefi")
	fs.StringVar(&o.EFIVars, "efivars", "", "EFI variables `DIR` (default /sys/firmware/efi/efivars)")
	hide(c, "root", "efivars")
	paths := fs.StringArray("state-path", nil, "extra absolute `PATH` to keep (repeatable), e.g. /etc/ssh")
	exclude := fs.StringArray("exclude", nil, "`PATTERN` (path.Match on the absolute path) to leave out, e.g. '/home/*/.cache'")
	noHomes := fs.Bool("no-homes", false, "do not capture the regular users' home directories and accounts")
	fs.BoolVar(&o.Spec.RootHome, "root-home", false, "also capture /root")
	fs.StringVar(&o.StateStore, "state-store", "", "also push the state to this http(s) `URL` (WebDAV PUT) or directory (needs --state-key)")
	stateKey := fs.String("state-key", "", "state key `FILE.key` (minint keygen) to sign the captured state with; the restoring side trusts its .pub")
	fs.BoolVar(&o.CaptureOnly, "capture-only", false, "only capture (and push) the state; stage no PE, arm no boot")
	countdown := fs.Duration("countdown", 30*time.Minute, "warning `TIME` before the refresh starts")
	mandatoryAt := fs.String("mandatory-at", "", "RFC 3339 `TIME` after which the refresh cannot be postponed")
	postponeFor := fs.Duration("postpone-for", time.Hour, "`TIME` \"postpone\" puts the refresh off for before the countdown starts again (0: postpone exits)")
	nonInteractive := fs.Bool("non-interactive", false, "no questions: count down and go (fleets)")
	yes := fs.BoolP("yes", "y", false, "start at once, asking nothing (--countdown 0 --non-interactive)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "check and print the plan, change nothing")
	noReboot := fs.Bool("no-reboot", false, "do not reboot after staging")
	outFlags := addOutputFlags(c, "events", "show no progress")
	c.RunE = func(*cobra.Command, []string) error {
		o.Firmware = *firmware
		o.Spec.NoHomes, o.Spec.Paths, o.Spec.Exclude = *noHomes, *paths, *exclude
		if o.StateStore != "" && *stateKey == "" {
			return usageErrorf("--state-store needs --state-key: a store nobody signed is refused by pull-state")
		}
		if *stateKey != "" {
			k, err := readPrivate(*stateKey)
			if err != nil {
				return err
			}
			o.Spec.Key = k
		}
		if !o.CaptureOnly && (o.Kernel == "" || o.Initramfs == "" || o.Sequence == "") {
			return usageErrorf("--kernel, --initramfs and --sequence are required (or --capture-only)")
		}
		if *yes {
			if fs.Changed("countdown") && *countdown != 0 {
				return usageErrorf("--yes starts at once: it contradicts --countdown %s", *countdown)
			}
			*countdown, *nonInteractive = 0, true
		}
		var mandatory time.Time
		if *mandatoryAt != "" {
			t, err := time.Parse(time.RFC3339, *mandatoryAt)
			if err != nil {
				return usageErrorf("--mandatory-at: %v", err)
			}
			mandatory = t
		}
		r, ctx, end, err := outFlags.start()
		if err != nil {
			return err
		}
		defer end()
		o.Log = r.Log

		var seqBad []string
		if o.Sequence != "" && !o.CaptureOnly {
			// A sequence the PE would refuse is found now, while the old
			// system still runs; its requirements steps are checked here too.
			if seq, err := sequence.LoadFile(o.Sequence); err != nil {
				seqBad = append(seqBad, fmt.Sprintf("task sequence: %v", err))
			} else {
				for _, st := range seq.Steps {
					if r, ok := st.(*sequence.Requirements); ok {
						o.MinMemory = max(o.MinMemory, int64(r.MinMemory))
						o.MinCPUs = max(o.MinCPUs, r.MinCPUs)
						o.Firmwares = append(o.Firmwares, r.Firmware...)
					}
				}
			}
		}
		if bad := append(seqBad, stage.Check(&o)...); len(bad) > 0 {
			r.Emit(progress.Event{Kind: "stage", State: "failed", Error: "requirements not met", Data: map[string]any{"problems": bad}})
			return fmt.Errorf("%w:\n  %s", stage.ErrRequirements, strings.Join(bad, "\n  "))
		}
		if !o.DryRun {
			cd := stage.Countdown{Duration: *countdown, MandatoryAt: mandatory, Interactive: !*nonInteractive, In: c.InOrStdin(), Out: r.Err, Postpone: *postponeFor}
			if o.CaptureOnly {
				cd.What = "user state will be captured"
			}
			if err := cd.Wait(ctx); err != nil {
				r.Emit(progress.Event{Kind: "stage", State: "postponed", Error: err.Error()})
				return err
			}
		}
		var t *progress.Task
		if !o.DryRun {
			t = r.Start("capture", 0, "bytes")
			o.Progress = t.Add
		}
		res, err := stage.Run(ctx, o)
		if t != nil {
			t.Finish(err)
		}
		if err != nil {
			r.Emit(progress.Event{Kind: "stage", State: "failed", Error: err.Error()})
			return err
		}
		r.Emit(progress.Event{Kind: "stage", State: "done", Data: map[string]any{"plan": res.Plan, "entries": res.Entries, "bytes": res.Bytes, "oneShot": res.OneShot}})
		if o.DryRun || o.CaptureOnly || *noReboot || o.Root != "/" {
			return nil
		}
		fmt.Fprintln(r.Err, "minint stage: rebooting into the PE")
		unix.Sync()
		return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	return c
}
