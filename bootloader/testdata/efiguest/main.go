// Command efiguest runs as part of a test guest's init (built by
// TestBootFilesQEMU): it drives the one-shot boot switches of package
// bootloader from inside a UEFI guest, one step per boot, so that the next
// boot shows whether the firmware and systemd-boot honoured them.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/minint/minint/bootloader"
	"github.com/minint/minint/diskops"
	"golang.org/x/sys/unix"
)

func main() {
	espNum := flag.Int("esp-num", 1, "ESP partition number")
	espStart := flag.Int64("esp-start", 0, "ESP start in bytes")
	espSize := flag.Int64("esp-size", 0, "ESP size in bytes")
	espUUID := flag.String("esp-partuuid", "", "ESP PARTUUID")
	kernel := flag.String("kernel", "", `kernel path on the ESP (\x\vmlinuz)`)
	args := flag.String("args", "", "kernel command line for the BootNext entry")
	flag.Parse()

	os.MkdirAll("/sys", 0o755)
	unix.Mount("sysfs", "/sys", "sysfs", 0, "")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	done := func(format string, a ...any) {
		fmt.Printf("EFIGUEST: "+format+"\n", a...)
		unix.Sync()
		if strings.Contains(format, "reboot") {
			unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		}
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		done("no UEFI, power off")
	}
	if err := unix.Mount("efivarfs", bootloader.DefaultEFIVars, "efivarfs", 0, ""); err != nil {
		done("mounting efivarfs: %v", err)
	}
	v := bootloader.EFIVars{Dir: bootloader.DefaultEFIVars}
	switch {
	case strings.Contains(string(cmdline), "minint.fw=uefi"):
		n, err := v.AddBootEntry(bootloader.EFIBootEntry{
			Description: "minint bootnext test",
			Partition:   diskops.PartitionInfo{Number: *espNum, Start: *espStart, Size: *espSize, UUID: *espUUID},
			SectorSize:  512,
			Loader:      *kernel,
			Args:        *args,
		}, false)
		if err != nil {
			done("AddBootEntry: %v", err)
		}
		if err := v.SetBootNext(n); err != nil {
			done("SetBootNext: %v", err)
		}
		done("BootNext=Boot%04X set, reboot", n)
	case strings.Contains(string(cmdline), "minint.fw=bootnext"):
		if err := v.SetLoaderOneShot("other.conf"); err != nil {
			done("SetLoaderOneShot: %v", err)
		}
		done("LoaderEntryOneShot set, reboot")
	default:
		done("nothing to do, power off")
	}
}
