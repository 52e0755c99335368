package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/minint/minint/bytesize"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/internal/progress"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	register(func() *cobra.Command {
		return group(&cobra.Command{
			Use:   "disk",
			Short: "List, select, partition, format, mount, clean and make disks bootable",
		},
			newDiskListCmd(),
			newDiskSelectCmd(),
			newDiskPartitionCmd(),
			newDiskFormatCmd(),
			newDiskMountCmd(),
			newDiskUmountCmd(),
			newDiskCleanCmd(),
			newDiskBootfilesCmd(),
			newDiskBootloaderCmd(),
			newDiskBootnextCmd(),
			newDiskSyslinuxPayloadCmd(),
			newDiskEraseCmd(),
		)
	})
}

// diskCommon are the flags every disk command that discovers devices has.
type diskCommon struct {
	sysRoot    string
	bootDevs   []string
	mediaLabel string
}

func (c *diskCommon) flags(fs *pflag.FlagSet) {
	fs.StringVar(&c.sysRoot, "sys-root", "", "read /sys, /proc and /dev below `DIR` (testing)")
	fs.MarkHidden("sys-root")
	fs.StringSliceVar(&c.bootDevs, "boot-device", nil, "the `DEVICE` the PE booted from (never a candidate)")
	fs.StringVar(&c.mediaLabel, "media-label", "", "treat disks holding a filesystem with this `LABEL` as the boot medium")
}

func (c *diskCommon) discover(ctx context.Context) ([]*diskops.Disk, error) {
	return diskops.Discover(ctx, diskops.DiscoverOptions{Root: c.sysRoot, BootDevices: c.bootDevs, MediaLabel: c.mediaLabel})
}

func newDiskListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Args:  noArgs,
		Short: "List block devices with their partitions and filesystems",
	}
	fs := cmd.Flags()
	var c diskCommon
	c.flags(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		ctx, cancel := signalContext()
		defer cancel()
		disks, err := c.discover(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if disks == nil {
				disks = []*diskops.Disk{}
			}
			return enc.Encode(disks)
		}
		printDisks(cmd.OutOrStdout(), disks)
		return nil
	}
	return cmd
}

func printDisks(w io.Writer, disks []*diskops.Disk) {
	var probeErrs []string
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSIZE\tTRANSPORT\tMODEL\tSERIAL\tTABLE/FS\tLABEL\tFLAGS")
	for _, d := range disks {
		var flags []string
		if d.BootMedium {
			flags = append(flags, "boot-medium")
		}
		if d.Removable {
			flags = append(flags, "removable")
		}
		if d.ReadOnly {
			flags = append(flags, "ro")
		}
		if d.Rotational {
			flags = append(flags, "hdd")
		}
		if len(d.Mounts) > 0 {
			flags = append(flags, "mounted:"+strings.Join(d.Mounts, ","))
		}
		if d.Swap {
			flags = append(flags, "swap")
		}
		if len(d.Holders) > 0 {
			flags = append(flags, "held:"+strings.Join(d.Holders, ","))
		}
		tf, label := "-", ""
		if d.Table != nil {
			tf = d.Table.Type
		} else if d.FS != nil {
			tf, label = d.FS.Type, d.FS.Label
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Path, bytesize.Size(d.Size).Human(), d.Transport, dash(d.Model), dash(d.Serial), tf, label, strings.Join(flags, " "))
		for _, p := range d.Partitions() {
			name := p.Device
			if name == "" {
				name = fmt.Sprintf("#%d", p.Number)
			}
			typ := p.TypeName
			if typ == "" {
				typ = p.Type
			}
			fsType, fsLabel := "-", ""
			if p.FS != nil {
				fsType, fsLabel = p.FS.Type, p.FS.Label
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\t\t%s\t%s\t\n", name, bytesize.Size(p.Size).Human(), typ, fsType, fsLabel)
		}
		if d.ProbeError != "" {
			probeErrs = append(probeErrs, fmt.Sprintf("%s: not probed: %s", d.Path, d.ProbeError))
		}
	}
	tw.Flush()
	for _, e := range probeErrs {
		fmt.Fprintln(w, e)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newDiskSelectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "select RULE",
		Args:    argCount(1, 1),
		Short:   "Print the one disk a rule selects (error listing candidates otherwise)",
		Example: "  minint disk select '{transport: nvme}'\n  minint disk select transport=nvme,min-size=20G\n  minint disk select first-largest",
	}
	fs := cmd.Flags()
	var c diskCommon
	c.flags(fs)
	asJSON := fs.Bool("json", false, "print the selected disk as JSON")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		rule, err := diskops.ParseRule(fs.Arg(0))
		if err != nil {
			return usageErrorf("%v", err)
		}
		ctx, cancel := signalContext()
		defer cancel()
		disks, err := c.discover(ctx)
		if err != nil {
			return err
		}
		d, err := diskops.Select(disks, rule)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(cmd.OutOrStdout()).Encode(d)
		}
		fmt.Fprintln(cmd.OutOrStdout(), d.Path)
		return nil
	}
	return cmd
}

func targetDescription(t *diskops.Target) string {
	if t.Disk != nil {
		s := diskops.Describe(t.Disk)
		if t.Disk.Table != nil || t.Disk.FS != nil {
			s += " (existing data will be lost)"
		}
		return s
	}
	return fmt.Sprintf("image file %s (%s)", t.Path, bytesize.Size(t.Size).Human())
}

func newDiskPartitionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition --layout FILE [--format] [--dry-run] [-y] DEVICE",
		Args:  argCount(1, 1),
		Short: "Partition a disk (or image file) from a YAML layout",
	}
	fs := cmd.Flags()
	var c diskCommon
	c.flags(fs)
	layoutPath := fs.String("layout", "", "YAML layout `FILE` (required)")
	format := fs.Bool("format", false, "also create the filesystems the layout names")
	mkfs := fs.Bool("mkfs", false, "create ext4 with mkfs.ext4 instead of the built-in writer (needs partition nodes)")
	dry := fs.Bool("dry-run", false, "print the plan and write nothing")
	yes := yesFlag(cmd)
	outFlags := addOutputFlags(cmd, "progress", "show no progress")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if *layoutPath == "" {
			return usageErrorf("--layout FILE is required")
		}
		r, err := outFlags.open()
		if err != nil {
			return err
		}
		defer r.Close()
		l, err := diskops.ReadLayout(*layoutPath)
		if err != nil {
			return err
		}
		ctx, cancel := signalContext()
		defer cancel()
		t, err := diskops.OpenTarget(ctx, fs.Arg(0), diskops.TargetOptions{SysRoot: c.sysRoot, ReadOnly: *dry, BootDevices: c.bootDevs, MediaLabel: c.mediaLabel})
		if err != nil {
			return err
		}
		defer t.Close()
		if *dry {
			res, err := diskops.Partition(ctx, t, l, diskops.PartitionOptions{DryRun: true})
			if err != nil {
				return err
			}
			printPlan(r.Out, t, res)
			return nil
		}
		// Plan first so that a layout that does not fit fails before asking.
		if _, err := l.Plan(t.Size, t.SectorSize); err != nil {
			return fmt.Errorf("%s: %w", t.Path, err)
		}
		if err := confirm(cmd, *yes, "repartition "+targetDescription(t)); err != nil {
			return err
		}
		r.Emit(progress.Event{Kind: "step", Op: "partition", State: "start", Msg: t.Path})
		res, err := diskops.Partition(ctx, t, l, diskops.PartitionOptions{})
		if err != nil && !(diskops.IsNoNodes(err) && res != nil) {
			r.Emit(progress.Event{Kind: "step", Op: "partition", State: "failed", Error: err.Error()})
			return err
		}
		if err != nil {
			r.Warnf("%v; continuing by offset", err)
		}
		printPlan(r.Out, t, res)
		r.Emit(progress.Event{Kind: "step", Op: "partition", State: "done", Data: map[string]any{"partitions": res.Partitions, "nodes": res.Nodes}})
		if !*format {
			return nil
		}
		task := r.Start("format", 0, "bytes")
		var prev int64 // each filesystem counts from zero
		fss, err := diskops.FormatPartitionsProgress(ctx, t, res, *mkfs, func(p diskops.Planned) {
			r.Printf("formatting partition %d (%s) as %s", p.Number, p.Name, p.FS)
			prev = 0
		}, func(done, _ int64) { task.Add(done - prev); prev = done })
		task.Finish(err)
		if err != nil {
			return err
		}
		for i, f := range fss {
			if f != nil {
				fmt.Fprintf(r.Out, "partition %d: %s label=%q uuid=%s\n", res.Partitions[i].Number, f.Type, f.Label, f.UUID)
			}
		}
		return nil
	}
	return cmd
}

func printPlan(w io.Writer, t *diskops.Target, res *diskops.PartitionResult) {
	fmt.Fprintf(w, "%s: %s, %s\n", t.Path, res.Table, bytesize.Size(t.Size).Human())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNAME\tSTART\tSIZE\tTYPE\tFS\tLABEL\tNODE")
	for i, p := range res.Partitions {
		node := "-"
		if i < len(res.Nodes) {
			node = res.Nodes[i]
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Number, p.Name, p.Start, bytesize.Size(p.Size).Human(), p.TypeID, dash(p.FS), p.Label, node)
	}
	tw.Flush()
}

func newDiskFormatCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "format --fs vfat|ext4|swap [--label LABEL] [--uuid UUID] [--offset SIZE --size SIZE] [--dry-run] [-y] DEVICE",
		Args:  argCount(1, 1),
		Short: "Create a vfat, ext4 or swap filesystem",
	}
	fs := cmd.Flags()
	var spec diskops.FormatSpec
	fsType := choiceFlag(cmd, "fs", "", "filesystem `TYPE`: vfat, ext4 or swap (required)", "vfat", "ext4", "swap")
	fs.StringVar(&spec.Label, "label", "", "volume `LABEL`")
	fs.StringVar(&spec.UUID, "uuid", "", "filesystem `UUID` (vfat: XXXX-XXXX); random when empty")
	fs.BoolVar(&spec.Mkfs, "mkfs", false, "create ext4 with mkfs.ext4 instead of the built-in writer")
	var offset, size bytesize.Size
	fs.Var(&offset, "offset", "start of the filesystem within DEVICE, a `SIZE` (bytes, or 1M, 2GiB …)")
	fs.Var(&size, "size", "filesystem `SIZE` (default: to the end of DEVICE)")
	dry := fs.Bool("dry-run", false, "print what would be formatted and write nothing")
	yes := yesFlag(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if spec.FS = *fsType; spec.FS == "" {
			return usageErrorf("--fs TYPE is required")
		}
		dev := fs.Arg(0)
		fi, err := os.Stat(dev)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		total := fi.Size()
		if !fi.Mode().IsRegular() {
			// A block device: its size comes from seeking to the end.
			if total, err = f.Seek(0, io.SeekEnd); err != nil {
				return err
			}
		}
		off := int64(offset)
		n := total - off
		if fs.Changed("size") {
			n = int64(size)
		}
		if n <= 0 || off+n > total || off+n < 0 {
			return fmt.Errorf("%s: range %d+%d lies outside the device (%d bytes)", dev, off, n, total)
		}
		what := fmt.Sprintf("format %s at %d (%s) as %s", dev, off, bytesize.Size(n).Human(), spec.FS)
		if existing := diskops.ProbeFilesystem(f, off, n); existing != nil {
			what += fmt.Sprintf(", destroying its %s filesystem %q", existing.Type, existing.Label)
		}
		if *dry {
			fmt.Fprintf(cmd.OutOrStdout(), "would %s\n", what)
			return nil
		}
		if err := confirm(cmd, *yes, what); err != nil {
			return err
		}
		ctx, cancel := signalContext()
		defer cancel()
		got, err := diskops.Format(ctx, f, off, n, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %s label=%q uuid=%s\n", dev, got.Type, got.Label, got.UUID)
		return nil
	}
	return cmd
}

func newDiskMountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mount [--fs TYPE] [--ro] [--offset SIZE --size SIZE] SOURCE TARGET",
		Args:  argCount(2, 2),
		Short: "Mount a filesystem (image ranges through a loop device)",
	}
	fs := cmd.Flags()
	var o diskops.MountOptions
	fs.StringVar(&o.FSType, "fs", "", "filesystem `TYPE` (probed when empty)")
	renamed(cmd, "type", "fs")
	fs.BoolVar(&o.ReadOnly, "ro", false, "mount read-only")
	fs.StringVar(&o.Data, "options", "", "filesystem-specific mount `OPTIONS`")
	var offset, size bytesize.Size
	fs.Var(&offset, "offset", "start of the filesystem within SOURCE, a `SIZE` (loop device)")
	fs.Var(&size, "size", "`SIZE` of the filesystem within SOURCE")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		o.Offset, o.Size = int64(offset), int64(size)
		m, err := diskops.Mount(fs.Arg(0), fs.Arg(1), o)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "mounted %s (%s) on %s\n", m.Source, m.FSType, m.Target)
		return nil
	}
	return cmd
}

func newDiskUmountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "umount TARGET",
		Args:  argCount(1, 1),
		Short: "Unmount a filesystem",
	}
	fs := cmd.Flags()
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		return diskops.Unmount(fs.Arg(0))
	}
	return cmd
}

func newDiskCleanCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clean [--keep minint] [--dry-run] [-y] MOUNTPOINT",
		Args:  argCount(1, 1),
		Short: "Delete everything on a mounted root except the staging folder",
	}
	fs := cmd.Flags()
	keep := fs.String("keep", "minint", "staging folder `NAME` below the root that survives")
	dry := fs.Bool("dry-run", false, "print exactly what would be deleted and delete nothing")
	yes := yesFlag(cmd)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	outFlags := addOutputFlags(cmd, "progress", "show no progress")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if *asJSON && outFlags.eventsOnStdout() {
			return usageErrorf("--json and --json-events - both want stdout")
		}
		root := fs.Arg(0)
		r, ctx, end, err := outFlags.start()
		if err != nil {
			return err
		}
		defer end()
		plan, err := diskops.CleanAllBut(ctx, root, diskops.CleanOptions{Keep: *keep, DryRun: true})
		if err != nil {
			return err
		}
		if *dry {
			if *asJSON {
				return json.NewEncoder(r.Out).Encode(plan)
			}
			for _, e := range plan.Entries {
				fmt.Fprintf(r.Out, "%-8s %12d %q\n", e.Type, e.Size, "/"+e.Path)
			}
			for _, s := range plan.Skipped {
				fmt.Fprintf(r.Out, "keep     %12s %q (%s)\n", "", "/"+s.Path, s.Reason)
			}
			fmt.Fprintf(r.Out, "%s, %s would be deleted\n", plural.Count(len(plan.Entries), "entry"), bytesize.Size(plan.Bytes).Human())
			return nil
		}
		if err := confirm(cmd, *yes, fmt.Sprintf("delete %s (%s) below %s, keeping only %s", plural.Count(len(plan.Entries), "entry"), bytesize.Size(plan.Bytes).Human(), root, *keep)); err != nil {
			return err
		}
		task := r.Start("clean", int64(len(plan.Entries)), "entry")
		res, err := diskops.CleanAllBut(ctx, root, diskops.CleanOptions{Keep: *keep, OnDelete: func(diskops.ManifestEntry) { task.Add(1) }})
		task.Finish(err)
		if res != nil {
			if *asJSON {
				json.NewEncoder(r.Out).Encode(res)
			} else {
				fmt.Fprintf(r.Out, "deleted %s (%s); manifest %s\n", plural.Count(res.Deleted, "entry"), bytesize.Size(res.DeletedBytes).Human(), res.Manifest)
			}
		}
		return err
	}
	return cmd
}

func newDiskBootfilesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootfiles [--root-uuid UUID] [--cmdline ARGS] [--no-bios] [--efi-entry] ROOT ESP",
		Args:  argCount(2, 2),
		Short: "Write UEFI (systemd-boot) and BIOS (syslinux) boot files for an applied root onto the ESP",
	}
	fs := cmd.Flags()
	var o bootloader.UEFIOptions
	fs.StringVar(&o.RootUUID, "root-uuid", "", "root filesystem `UUID` for root=UUID= (default: probed from ROOT's device)")
	fs.StringVar(&o.Cmdline, "cmdline", "", "extra kernel command line `ARGS`")
	fs.StringVar(&o.Title, "title", "", "boot menu `TITLE`")
	fs.StringVar(&o.EntryID, "entry", "minint", "loader entry `ID`")
	fs.StringVar(&o.BackupDir, "backup-dir", "", "`DIR` where replaced boot files go (default ROOT/minint/bootfiles-backup)")
	fs.StringVar(&o.SystemdBoot, "systemd-boot", "", "systemd-bootx64.efi `FILE` to install (default: from ROOT, then this system)")
	payloadDir := fs.String("syslinux-payload", "", "also write syslinux's ldlinux.sys/.c32 from this payload `DIR` (default "+bootloader.SyslinuxPayloadDir+" when present)")
	noBIOS := fs.Bool("no-bios", false, "skip the BIOS (syslinux) configuration")
	noUEFI := fs.Bool("no-uefi", false, "skip the UEFI (systemd-boot) files")
	efiEntry := fs.Bool("efi-entry", false, "also create a firmware boot entry (needs UEFI and ESP a mounted partition)")
	efivars := fs.String("efivars", bootloader.DefaultEFIVars, "efivarfs `DIR`")
	hide(cmd, "efivars")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		o.Root, o.ESP = fs.Arg(0), fs.Arg(1)
		ctx, cancel := signalContext()
		defer cancel()
		if o.RootUUID == "" {
			f, src, err := diskops.MountedFilesystem("", o.Root)
			if err != nil {
				return fmt.Errorf("finding the root filesystem's UUID (give --root-uuid): %w", err)
			}
			o.RootUUID = f.UUID
			fmt.Fprintf(cmd.ErrOrStderr(), "root filesystem: %s %s UUID=%s\n", src, f.Type, f.UUID)
		}
		if *efiEntry {
			if !bootloader.HaveEFIVars(*efivars) {
				return fmt.Errorf("--efi-entry: %s is not an efivarfs (not booted under UEFI?)", *efivars)
			}
			d, p, err := diskops.MountedPartition(ctx, "", o.ESP)
			if err != nil {
				return fmt.Errorf("--efi-entry: %w", err)
			}
			o.EFIVars = &bootloader.EFIVars{Dir: *efivars}
			o.ESPPartition, o.SectorSize = *p, d.LogicalSectorSize
		}
		var results []*bootloader.BootResult
		if !*noUEFI {
			r, err := bootloader.InstallUEFI(ctx, o)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		if !*noBIOS {
			bo := bootloader.BIOSOptions{BootOptions: o.BootOptions, BootDir: o.ESP}
			if *payloadDir != "" {
				p, err := bootloader.LoadSyslinuxPayload(*payloadDir)
				if err != nil {
					return err
				}
				bo.Payload = p
			}
			r, err := bootloader.WriteBIOSConfig(ctx, bo)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		if *asJSON {
			return json.NewEncoder(cmd.OutOrStdout()).Encode(results)
		}
		out := cmd.OutOrStdout()
		for _, r := range results {
			for _, w := range r.Written {
				fmt.Fprintln(out, "wrote", w)
			}
			for _, b := range r.BackedUp {
				fmt.Fprintln(out, "backed up", b)
			}
			if r.BootNum != nil {
				fmt.Fprintf(out, "firmware boot entry Boot%04X (first in BootOrder)\n", *r.BootNum)
			}
		}
		return nil
	}
	return cmd
}

func newDiskBootloaderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootloader --partition N [--dry-run] [-y] DISK",
		Args:  argCount(1, 1),
		Short: "Install syslinux's BIOS boot code for the FAT boot partition (unmounted)",
	}
	fs := cmd.Flags()
	var o bootloader.SyslinuxOptions
	fs.IntVar(&o.Partition, "partition", 0, "`NUMBER` of the FAT boot partition (usually the ESP, 1)")
	fs.StringVar(&o.BackupDir, "backup-dir", "", "keep the previous MBR boot code in `DIR`")
	fs.StringVar(&o.Syslinux, "syslinux", "", "syslinux installer `PROGRAM`")
	payloadDir := fs.String("syslinux-payload", "", "install in pure Go from this payload `DIR` (written by bootfiles) instead of running syslinux")
	dry := fs.Bool("dry-run", false, "print what would be written and write nothing")
	yes := yesFlag(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if o.Partition < 1 {
			return usageErrorf("--partition N is required")
		}
		o.Disk = fs.Arg(0)
		if *payloadDir != "" {
			p, err := bootloader.LoadSyslinuxPayload(*payloadDir)
			if err != nil {
				return err
			}
			o.Payload = p
		}
		ctx, cancel := signalContext()
		defer cancel()
		// The partition must not be mounted while syslinux writes to it; the
		// rest of the disk (the root) may be.
		if disks, err := diskops.Discover(ctx, diskops.DiscoverOptions{}); err == nil {
			for _, d := range disks {
				if d.Path != o.Disk {
					continue
				}
				node := diskops.PartitionNode(d.Path, o.Partition)
				for _, p := range d.Partitions() {
					if p.Number == o.Partition && p.Device != "" {
						node = p.Device
					}
				}
				if mnt := mountsOf(node); mnt != "" {
					return fmt.Errorf("%s is mounted on %s: unmount it first", node, mnt)
				}
			}
		}
		what := fmt.Sprintf("write BIOS boot code to %s and partition %d", o.Disk, o.Partition)
		if *dry {
			fmt.Fprintf(cmd.OutOrStdout(), "would %s\n", what)
			return nil
		}
		if err := confirm(cmd, *yes, what); err != nil {
			return err
		}
		r, err := bootloader.InstallSyslinux(ctx, o)
		if err != nil {
			return err
		}
		for _, w := range r.Written {
			fmt.Fprintln(cmd.OutOrStdout(), "wrote", w)
		}
		return nil
	}
	return cmd
}

// mountsOf returns where dev is mounted, from /proc/self/mountinfo.
func mountsOf(dev string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		for i, x := range f {
			if x == "-" && i+2 < len(f) && f[i+2] == dev {
				return f[4]
			}
		}
	}
	return ""
}

func newDiskBootnextCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootnext (--boot-num HEX | --entry ID.conf | --syslinux-once LABEL --disk DISK --partition NUMBER)",
		Args:  noArgs,
		Short: "Boot something else once: UEFI BootNext, systemd-boot one-shot entry or syslinux once",
	}
	fs := cmd.Flags()
	num := fs.String("boot-num", "", "UEFI: start Boot`XXXX` once (hex)")
	entry := fs.String("entry", "", "systemd-boot: start loader entry `ID` (e.g. minint-pe.conf) once")
	once := fs.String("syslinux-once", "", "syslinux: boot `LABEL` once")
	disk := fs.String("disk", "", "with --syslinux-once: the `DISK`")
	part := fs.Int("partition", 0, "with --syslinux-once: the `NUMBER` of the FAT boot partition")
	efivars := fs.String("efivars", bootloader.DefaultEFIVars, "efivarfs `DIR`")
	hide(cmd, "efivars")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		n := 0
		for _, s := range []string{*num, *entry, *once} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return usageErrorf("give exactly one of --boot-num, --entry, --syslinux-once")
		}
		v := bootloader.EFIVars{Dir: *efivars}
		switch {
		case *num != "":
			x, err := strconv.ParseUint(*num, 16, 16)
			if err != nil {
				return usageErrorf("--boot-num %q: want 4 hex digits", *num)
			}
			return v.SetBootNext(uint16(x))
		case *entry != "":
			return v.SetLoaderOneShot(*entry)
		}
		if *disk == "" || *part < 1 {
			return usageErrorf("--syslinux-once needs --disk and --partition")
		}
		f, err := os.Open(*disk)
		if err != nil {
			return err
		}
		size, _ := f.Seek(0, io.SeekEnd)
		tab, err := diskops.ReadTable(f, size, 0)
		f.Close()
		if err != nil || tab == nil {
			return fmt.Errorf("%s: no partition table (%v)", *disk, err)
		}
		for _, p := range tab.Partitions {
			if p.Number == *part {
				return bootloader.SetSyslinuxOnce(*disk, p.Start, *once)
			}
		}
		return fmt.Errorf("%s: no partition %d", *disk, *part)
	}
	return cmd
}

func newDiskEraseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "erase [--method zero|discard] [--dry-run] [-y] DEVICE",
		Args:  argCount(1, 1),
		Short: "Erase a whole disk (zero or discard) and verify a sample of blocks",
	}
	fs := cmd.Flags()
	var c diskCommon
	c.flags(fs)
	var o diskops.EraseOptions
	method := choiceFlag(cmd, "method", "zero", "`METHOD`: zero (write zeroes) or discard (TRIM; verified to read zeros)", "zero", "discard")
	fs.IntVar(&o.Samples, "samples", 256, "`N` random blocks to verify besides the first and last MiB")
	dry := fs.Bool("dry-run", false, "print what would be erased and write nothing")
	yes := yesFlag(cmd)
	outFlags := addOutputFlags(cmd, "progress", "show no progress")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		ctx, cancel := signalContext()
		defer cancel()
		t, err := diskops.OpenTarget(ctx, fs.Arg(0), diskops.TargetOptions{SysRoot: c.sysRoot, BootDevices: c.bootDevs, MediaLabel: c.mediaLabel})
		if err != nil {
			return err
		}
		defer t.Close()
		what := "erase ALL data on " + targetDescription(t)
		if *dry {
			fmt.Fprintf(cmd.OutOrStdout(), "would %s\n", what)
			return nil
		}
		if err := confirm(cmd, *yes, what); err != nil {
			return err
		}
		r, err := outFlags.open()
		if err != nil {
			return err
		}
		defer r.Close()
		task := r.Start("erase", t.Size, "bytes")
		o.Method, o.Progress = *method, task.Callback()
		res, err := diskops.Erase(ctx, t, o)
		task.Finish(err)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.Out, "%s: erased %s with %s; %s verified zero\n", t.Path, bytesize.Size(res.Bytes).Human(), res.Method, plural.Count(res.Verified, "block"))
		return nil
	}
	return cmd
}

func newDiskSyslinuxPayloadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "syslinux-payload [--syslinux PROGRAM] DIR",
		Args:  argCount(1, 1),
		Short: "Capture syslinux's BIOS payload from this host's syslinux for the PE",
		Long:  "Capture syslinux's BIOS payload from this host's syslinux for the PE, into DIR (the PE reads it from " + bootloader.SyslinuxPayloadDir + ").",
	}
	fs := cmd.Flags()
	prog := fs.String("syslinux", "", "the syslinux (mtools) installer `PROGRAM` to capture from")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		ctx, cancel := signalContext()
		defer cancel()
		p, err := bootloader.CaptureSyslinux(ctx, *prog)
		if err != nil {
			return err
		}
		if err := p.Save(fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: ldlinux.sys (%d bytes), ldlinux.bss, ldlinux.c32 (%d bytes)\n", fs.Arg(0), len(p.Ldlinux), len(p.LdlinuxC32))
		return nil
	}
	return cmd
}
