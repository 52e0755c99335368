package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/netconf"
	"github.com/minint/minint/pe"
)

// deploy runs the task sequence with pe.Deploy: the one `minint stage`
// put on the root it names with minint.staged=UUID=… (an in-place
// refresh), or the one given by minint.sequence= (an http(s) URL or a
// path), else the one `minint iso --sequence` put on the boot medium. A PE booted without either has
// nothing to deploy, which is not an error (it shows the inventory and
// does what minint.done says). The package key (pe.DefaultPublicKey) and
// minint-setup (pe.DefaultSetupBinary) are built into the initramfs by
// `minint build --key`.
func deploy(ctx context.Context, e *env) error {
	src := e.opts.Sequence
	mediumDir := ""
	if e.medium != nil {
		mediumDir = e.medium.MountPoint
	}
	if src == "" && e.opts.Staged == "" {
		if mediumDir == "" {
			return noSequence(e, "no boot medium and no minint.sequence=")
		}
		if _, err := os.Stat(filepath.Join(mediumDir, pe.MediumSequence)); errors.Is(err, os.ErrNotExist) {
			return noSequence(e, "no "+pe.MediumSequence+" on the boot medium and no minint.sequence=")
		}
	}
	if _, err := os.Stat(pe.DefaultPublicKey); err != nil {
		// Deploy refuses every package then; say why up front rather than
		// only at the fetch step.
		e.r.Printf("warning: no package signing key in this PE (%s): packages and network sequences will be refused; build the PE with --key", pe.DefaultPublicKey)
	}
	o := pe.DeployOptions{
		Sequence:  src,
		MediumDir: mediumDir,
		Vars:      e.opts.Vars,
		Staged:    e.opts.Staged,
		// Set on the kernel command line, which the medium (or the boot
		// server) writes, not the server the sequence comes from.
		SequenceMinVersion: e.opts.SequenceMinVersion,
		Console:            e.out.human,

		Redo:   e.opts.Redo,
		Bench:  pe.BenchFloor(e.opts.Bench),
		Events: e.out.events,
		Network: func(ctx context.Context, cfg netconf.Config) error {
			return configureNetwork(ctx, e, cfg)
		},
	}
	if e.medium != nil {
		// Keep the medium we booted from out of the disk selection, both
		// by device and by its label (a USB stick's disk holds the
		// labelled partition).
		o.BootDevices = []string{e.medium.Device}
		if l, ok := e.medium.Info["label"].(string); ok {
			o.MediaLabel = l
		}
	}
	return pe.Deploy(ctx, o)
}

func noSequence(e *env, why string) error {
	e.r.Printf("task sequence: none (%s)", why)
	e.r.Emit(progress.Event{Kind: "step", Op: "sequence", State: "skipped", Msg: why})
	return nil
}
