package media_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/media"
	"github.com/minint/minint/qemu"
)

// The three boots share one PE and one ISO, built once per test binary (the
// PE's expensive Go build is cached by initramfs in MININT_CACHE).
var (
	isoOnce sync.Once
	isoRes  *media.Result
	isoPE   *initramfs.PE
	isoErr  error
)

func cacheDir(t *testing.T) string {
	d := os.Getenv("MININT_CACHE")
	if d == "" {
		wd, _ := os.Getwd()
		d = filepath.Join(filepath.Dir(wd), "out", "cache")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func e2eISO(t *testing.T) *media.Result {
	t.Helper()
	if os.Getenv("MININT_E2E") != "1" {
		t.Skip("boots QEMU guests: set MININT_E2E=1 (make test does)")
	}
	isoOnce.Do(func() {
		ctx := context.Background()
		dir := filepath.Join(cacheDir(t), "media-e2e")
		start := time.Now()
		pe, err := initramfs.Build(ctx, initramfs.Config{Log: t.Logf}, filepath.Join(dir, "pe"))
		if err != nil {
			isoErr = err
			return
		}
		isoPE = pe
		t.Logf("PE %s ready in %s", pe.ID, time.Since(start).Round(time.Millisecond))
		start = time.Now()
		isoRes, isoErr = media.BuildISO(ctx, media.Options{Kernel: pe.Kernel, Initramfs: pe.Initramfs,
			// The boots check media, firmware and inventory; DHCP is
			// tested elsewhere and only costs time here.
			Cmdline: "minint.net=0 minint.events=serial minint.failwait=0", // events: the harness reads them
			Info:    map[string]any{"pe_id": pe.ID}}, filepath.Join(dir, "minint.iso"))
		if isoErr == nil {
			t.Logf("ISO %s: %.1f MiB (ESP %.1f MiB), built in %s", isoRes.Path, float64(isoRes.Size)/(1<<20),
				float64(isoRes.ESPSize)/(1<<20), time.Since(start).Round(time.Millisecond))
		}
	})
	if isoErr != nil {
		t.Fatal(isoErr)
	}
	return isoRes
}

func TestBootISO(t *testing.T) {
	iso := e2eISO(t)
	if iso.Size > 50<<20 {
		t.Errorf("ISO is %.1f MiB, over the 50 MiB budget", float64(iso.Size)/(1<<20))
	}
	// One kernel and one initramfs, shared by ISOLINUX and GRUB: the ESP
	// holds only the loaders (docs/benchmarks.md has the sizes).
	payload := fileSize(t, isoPE.Kernel) + fileSize(t, isoPE.Initramfs)
	if iso.Size > payload+iso.ESPSize+4<<20 {
		t.Errorf("ISO is %d bytes for a %d-byte kernel + initramfs and a %d-byte ESP: something is stored twice", iso.Size, payload, iso.ESPSize)
	}
	// UEFI boots through shim -> GRUB -> kernel, with Secure Boot enforced
	// by Microsoft's keys (as on a PC) and without it. OVMF, like EDK2
	// firmware generally, boots a hybrid ISO on a disk through its El
	// Torito image (the USB-stick deployment in e2e does that); "gpt"
	// boots the same bytes behind a protective MBR, so that the firmware
	// starts shim from the GPT's EFI partition, as firmware that ignores
	// El Torito on disks would, and GRUB must take the ESP's bootstrap
	// configuration to the ISO 9660 file system.
	gpt := gptView(t, iso.Path)
	for _, c := range []struct {
		name, firmware, bootFrom, medium, secureBoot, image string
	}{
		{"cd-bios", qemu.BIOS, "cd", "sr0", "", iso.Path},
		{"cd-uefi", qemu.UEFI, "cd", "sr0", "", iso.Path},
		{"cd-uefi-secureboot", qemu.UEFI, "cd", "sr0", qemu.SecureBootMicrosoft, iso.Path},
		{"disk-uefi-secureboot-gpt", qemu.UEFI, "disk", "vda", qemu.SecureBootMicrosoft, gpt},
		{"disk-bios", qemu.BIOS, "disk", "vda", "", iso.Path},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "console.log")
			res, err := qemu.Run(context.Background(), qemu.Options{
				ISO: c.image, Firmware: c.firmware, BootFrom: c.bootFrom, SecureBoot: c.secureBoot,
				Disks:   []qemu.Disk{{Size: 64 << 20}}, // blank, virtio
				Mem:     "512M",
				Timeout: 6 * time.Minute,
				LogPath: log,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: banner at %.1fs, done at %.1fs, powered off at %.1fs (wall clock from QEMU start, TCG)",
				c.name, res.Banner.Seconds(), res.Done.Seconds(), res.Duration.Seconds())
			logKernelTimes(t, log, res)
			if res.Banner == 0 {
				t.Error("no banner line")
			}
			var inv *qemu.Event
			for i, e := range res.Events {
				if e.Kind == "inventory" {
					inv = &res.Events[i]
				}
			}
			if inv == nil {
				t.Fatal("no inventory event")
			}
			if fw, _ := inv.Data["firmware"].(string); fw != c.firmware {
				t.Errorf("inventory firmware %q, want %q", fw, c.firmware)
			}
			checkSecureBoot(t, inv, c.secureBoot != "")
			bm, _ := inv.Data["boot_medium"].(map[string]any)
			if bm["id"] != iso.MediaID || bm["device"] != "/dev/"+c.medium {
				t.Errorf("boot medium %v, want id %s on /dev/%s", bm, iso.MediaID, c.medium)
			}
			blank := false
			disks, _ := inv.Data["disks"].([]any)
			for _, d := range disks {
				d, _ := d.(map[string]any)
				if d["transport"] == "virtio" && d["size_bytes"] == float64(64<<20) && d["name"] != c.medium {
					blank = true
				}
			}
			if !blank {
				t.Errorf("the blank 64 MiB virtio disk is not in the inventory: %v", disks)
			}
			if len(disks) != 2 {
				t.Errorf("inventory has %d disks, want the boot medium and the blank disk: %v", len(disks), disks)
			}
		})
	}
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// gptView copies the ISO with a protective MBR (one 0xEE partition over
// the disk) in place of the hybrid MBR's partition entries: the GPT that
// media writes then decides, and it lists only the EFI partition.
func gptView(t *testing.T, iso string) string {
	t.Helper()
	b, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	e := b[446:510]
	clear(e)
	e[1], e[2], e[3], e[4], e[5], e[6], e[7] = 0, 2, 0, 0xee, 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(b)/512-1))
	p := filepath.Join(t.TempDir(), "gpt.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkSecureBoot checks the PE's report: Secure Boot on and the kernel
// locked down (integrity), or off and not locked down.
func checkSecureBoot(t *testing.T, inv *qemu.Event, on bool) {
	t.Helper()
	sb, _ := inv.Data["secure_boot"].(bool)
	lockdown, _ := inv.Data["lockdown"].(string)
	if sb != on {
		t.Errorf("inventory secure_boot %v, want %v", sb, on)
	}
	want := "none"
	if on {
		want = "integrity"
	}
	if lockdown != want {
		t.Errorf("inventory lockdown %q, want %q", lockdown, want)
	}
}

// TestBootNetwork boots the network bundle over QEMU's user-network TFTP:
// SeaBIOS's iPXE runs boot.ipxe; OVMF with Secure Boot enforced loads
// shim, which fetches Debian's network GRUB, which loads the kernel and
// initramfs.
func TestBootNetwork(t *testing.T) {
	e2eISO(t)
	dir := filepath.Join(t.TempDir(), "tftp")
	nb, err := media.BuildNetboot(context.Background(), media.NetbootOptions{Options: media.Options{
		Kernel: isoPE.Kernel, Initramfs: isoPE.Initramfs, Cmdline: "minint.net=0 minint.events=serial minint.failwait=0"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, firmware, bootFile, secureBoot string }{
		{"pxe-bios-ipxe", qemu.BIOS, media.NetbootIPXE, ""},
		{"pxe-uefi-shim-secureboot", qemu.UEFI, media.NetbootShim, qemu.SecureBootMicrosoft},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := qemu.Run(context.Background(), qemu.Options{
				BootFrom: "net", TFTPDir: dir, BootFile: c.bootFile, Firmware: c.firmware, SecureBoot: c.secureBoot,
				Disks: []qemu.Disk{{Size: 64 << 20}}, Timeout: 6 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: banner at %.1fs, done at %.1fs, powered off at %.1fs", c.name, res.Banner.Seconds(), res.Done.Seconds(), res.Duration.Seconds())
			for _, e := range res.Events {
				if e.Kind == "banner" && !strings.Contains(string(e.Raw), isoPE.ID) {
					t.Errorf("banner %s is not from PE %s", e.Raw, isoPE.ID)
				}
				if e.Kind == "inventory" {
					if fw, _ := e.Data["firmware"].(string); fw != c.firmware {
						t.Errorf("firmware %q, want %q", fw, c.firmware)
					}
					checkSecureBoot(t, &e, c.secureBoot != "")
					return
				}
			}
			t.Error("no inventory event")
		})
	}
	_ = nb
}

var powerDownRE = regexp.MustCompile(`\[\s*([0-9]+\.[0-9]+)\] reboot: Power down`)

// logKernelTimes splits the wall-clock times with the kernel's own clock at
// power-down: what came before the kernel (firmware, boot loader, kernel
// decompression) and the banner in kernel time.
func logKernelTimes(t *testing.T, log string, res *qemu.Result) {
	b, _ := os.ReadFile(log)
	m := powerDownRE.FindSubmatch(b)
	if m == nil {
		return
	}
	up, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return
	}
	// The power-down line is printed about when QEMU exits.
	kernelStart := res.Duration.Seconds() - up
	t.Logf("  kernel started ~%.1fs after power-on; banner at kernel time ~%.1fs; done at kernel time ~%.1fs",
		kernelStart, res.Banner.Seconds()-kernelStart, res.Done.Seconds()-kernelStart)
}
