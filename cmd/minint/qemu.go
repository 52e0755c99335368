package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/qemu"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { register(newQEMUCmd) }

func newQEMUCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "qemu --iso FILE [--firmware bios|uefi] [--disk FILE[:SIZE[:IFACE]]]... [flags]",
		Short: "Boot the ISO (or a kernel) in QEMU and report the PE's success as the exit status",
		Args:  noArgs,
	}
	fs := c.Flags()
	iso := fs.String("iso", "", "ISO `FILE` to boot")
	firmware := choiceFlag(c, "firmware", qemu.BIOS, "boot with `FIRMWARE` bios (SeaBIOS) or uefi (OVMF, with a private copy of its variables)", qemu.BIOS, qemu.UEFI)
	secureBoot := choiceFlag(c, "secure-boot", "", "with --firmware uefi: Secure Boot enforced with OVMF's `KEYS` enrolled: ms (Microsoft's, as on most PCs) or snakeoil (the ovmf package's test key)", qemu.SecureBootMicrosoft, qemu.SecureBootSnakeoil)
	bootFrom := choiceFlag(c, "boot", "cd", "boot the ISO as `MEDIUM` cd, or disk (a raw disk, like a USB stick)", "cd", "disk")
	bootIface := choiceFlag(c, "boot-interface", "virtio", "`INTERFACE` of the ISO disk with --boot disk: virtio, usb, sata or nvme", "virtio", "usb", "sata", "nvme")
	disks := fs.StringArray("disk", nil, "attach a disk `FILE[:SIZE[:IFACE]]`; FILE is created blank with SIZE (e.g. 64M) when missing, an empty FILE means a temporary blank disk; IFACE is virtio (default), sata, nvme, usb or ide (repeatable)")
	mem := 512 * bytesize.MiB
	fs.Var(&mem, "mem", "guest memory `SIZE` (whole MiB)")
	cpus := fs.Int("cpus", 1, "`N` guest CPUs")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up (and fail) after this `TIME`")
	kvm := fs.Bool("kvm", false, "use KVM instead of TCG (broken on some machines)")
	noNet := fs.Bool("no-net", false, "no network card (default: virtio NIC on QEMU's user-mode network, host = 10.0.2.2)")
	hostfwd := fs.StringArray("hostfwd", nil, "user-network host forward `RULE`, e.g. tcp:127.0.0.1:2222-:22 (repeatable)")
	guestfwd := fs.StringArray("guestfwd", nil, "user-network guest forward `RULE`, e.g. tcp:10.0.2.100:80-tcp:127.0.0.1:8080 (repeatable)")
	tap := fs.String("tap", "", "put the network card on the host's tap device `IFNAME` (made beforehand, e.g. in a network namespace with a DHCP server) instead of QEMU's user-mode network: the guest then gets the checksum and segmentation offloads a real NIC has")
	kernel := fs.String("kernel", "", "boot this kernel `FILE` directly instead of the ISO's boot loader")
	initrd := fs.String("initramfs", "", "initramfs `FILE` for --kernel")
	renamed(c, "initrd", "initramfs")
	appendArgs := fs.String("cmdline", "", "kernel command line `ARGS` for --kernel")
	renamed(c, "append", "cmdline")
	logPath := fs.String("log", "out/qemu-console.log", "also write the serial console to `FILE` (empty for none)")
	until := choiceFlag(c, "until", "done", "`EVENT` to wait for: done (succeed when the PE reports done and powers off) or exit (just wait for QEMU to exit)", "done", "exit")
	allowReboot := fs.Bool("allow-reboot", false, "let the guest reboot (default: a reboot ends QEMU)")
	diskFirst := fs.Bool("disk-first", false, "boot the first --disk before the ISO, like a new computer with an install CD (a blank disk falls through to the CD; with --allow-reboot the PE's reboot starts the deployed system)")
	outFlags := addOutputFlags(c, "the guest's events and the verdict", "do not copy the console to the terminal")
	c.RunE = func(*cobra.Command, []string) error {
		if *iso == "" && *kernel == "" {
			return usageErrorf("give --iso FILE or --kernel FILE")
		}
		if mem < bytesize.MiB || mem%bytesize.MiB != 0 {
			return usageErrorf("--mem %s: want a whole number of MiB", mem.Explain())
		}
		if *tap != "" && (*noNet || len(*hostfwd) > 0 || len(*guestfwd) > 0) {
			return usageErrorf("--tap replaces the user-mode network: it cannot go with --no-net, --hostfwd or --guestfwd")
		}
		if *secureBoot != "" && *firmware != qemu.UEFI {
			return usageErrorf("--secure-boot %s needs --firmware uefi", *secureBoot)
		}
		o := qemu.Options{ISO: *iso, BootFrom: *bootFrom, BootDiskInterface: *bootIface, Firmware: *firmware,
			SecureBoot: *secureBoot, Mem: mem.String(), CPUs: *cpus, Timeout: *timeout, KVM: *kvm, NoNet: *noNet, HostFwd: *hostfwd, GuestFwd: *guestfwd,
			Kernel: *kernel, Initrd: *initrd, Append: *appendArgs, AllowReboot: *allowReboot, LogPath: *logPath}
		if *tap != "" {
			o.NoNet, o.NICs = true, []qemu.NIC{{Tap: *tap}}
		}
		for _, d := range *disks {
			disk, err := parseDiskFlag(d)
			if err != nil {
				return usageErrorf("--disk %q: %v", d, err)
			}
			o.Disks = append(o.Disks, disk)
		}
		if *diskFirst {
			if len(o.Disks) == 0 {
				return usageErrorf("--disk-first needs a --disk")
			}
			o.DiskFirst, o.Disks[0].Boot = true, true
		}
		if o.LogPath != "" {
			if err := os.MkdirAll(filepath.Dir(o.LogPath), 0o755); err != nil {
				return fmt.Errorf("--log: %w", err)
			}
		}
		out, err := outFlags.open()
		if err != nil {
			return err
		}
		defer out.Close()
		if out.Log != nil {
			o.Console = out.Out
		}
		if progress.IsTerminal(os.Stdin) {
			o.Stdin = os.Stdin
			// QEMU puts the terminal into raw mode and cannot restore it when
			// it is killed (timeout, failure): restore it ourselves.
			if st, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err == nil {
				defer unix.IoctlSetTermios(int(os.Stdin.Fd()), unix.TCSETS, st)
			}
		}
		jw := out.Events()
		ctx, stop := signalContext()
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		vm, err := qemu.Start(ctx, o)
		if err != nil {
			return err
		}
		defer func() {
			vm.Kill()
			vm.Wait()
		}()
		emitVerdict := func(res *qemu.Result, err error) {
			if jw == nil {
				return
			}
			for _, e := range vm.Events() {
				jw.Write(append(append([]byte{}, e.Raw...), '\n'))
			}
			v := map[string]any{"event": "qemu", "state": "done", "seconds": vm.Elapsed().Seconds()}
			if res != nil && res.Banner > 0 {
				v["banner_seconds"] = res.Banner.Seconds()
			}
			if err != nil {
				v["state"], v["error"] = "failed", err.Error()
			}
			b, _ := json.Marshal(v)
			jw.Write(append(b, '\n'))
		}
		if *until == "exit" {
			select {
			case <-vm.Exited():
				err = vm.Wait()
			case <-ctx.Done():
				err = fmt.Errorf("%w after %s", qemu.ErrTimeout, *timeout)
			}
			emitVerdict(nil, err)
			return err
		}
		res, err := vm.Verdict(ctx)
		emitVerdict(res, err)
		if err != nil {
			return err
		}
		out.Printf("guest done: banner after %.1fs, done after %.1fs, QEMU exited after %.1fs",
			res.Banner.Seconds(), res.Done.Seconds(), res.Duration.Seconds())
		return nil
	}
	return c
}

// parseDiskFlag reads FILE[:SIZE[:IFACE]].
func parseDiskFlag(s string) (qemu.Disk, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return qemu.Disk{}, errors.New("want FILE[:SIZE[:IFACE]]")
	}
	d := qemu.Disk{Path: parts[0]}
	if len(parts) > 1 && parts[1] != "" {
		n, err := bytesize.Parse(parts[1])
		if err != nil {
			return d, err
		}
		d.Size = int64(n)
	}
	if len(parts) > 2 {
		d.Interface = parts[2]
	}
	if d.Path == "" && d.Size == 0 {
		return d, errors.New("a blank disk needs a SIZE")
	}
	if d.Path != "" && d.Size == 0 {
		if _, err := os.Stat(d.Path); err != nil {
			return d, fmt.Errorf("%v (give a SIZE to create it)", err)
		}
	}
	return d, nil
}
