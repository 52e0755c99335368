package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NetbootOptions configure a network-boot bundle.
type NetbootOptions struct {
	Options
	// BaseURL is where the bundle will be served from (http://host/path),
	// for the iPXE script's absolute URLs and minint.url= on the kernel
	// command line; empty means relative names (iPXE fetches them from the
	// server that gave it the script) and no minint.url.
	BaseURL string
}

// NetbootResult lists what BuildNetboot wrote.
type NetbootResult struct {
	Dir     string
	Cmdline string
	MediaID string
	Files   []string // relative to Dir
}

// BuildNetboot writes a network-boot bundle into dir from the same plan as
// the ISO (kernel, initramfs, UKI, /minint files):
//
//	vmlinuz, initrd         PXELINUX and iPXE load these
//	minint.efi              the UKI, for UEFI HTTP boot (a DHCP boot URL)
//	boot.ipxe               iPXE script
//	pxelinux.cfg/default    PXELINUX configuration
//	minint/media.json, minint/...   the files the ISO has under /minint
//
// The PE has no boot medium then, so the command line carries no
// minint.media= but minint.url=BaseURL when one is given. dir must not
// exist yet or be empty; it is filled under a temporary name and renamed.
func BuildNetboot(ctx context.Context, o NetbootOptions, dir string) (*NetbootResult, error) {
	host := o.Host.withDefaults()
	tools, err := host.check()
	if err != nil {
		return nil, err
	}
	p, err := NewPlan(o.Options)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(o.BaseURL, " \n\"") {
		return nil, fmt.Errorf("%w: base URL %q contains spaces or quotes", ErrInput, o.BaseURL)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%w: %s exists and is not empty", ErrOutput, dir)
	}
	cmdline := strings.Replace(p.Cmdline, " minint.media="+p.MediaID, "", 1)
	if o.BaseURL != "" {
		cmdline = strings.Replace(cmdline, " console=ttyS0,115200", " minint.url="+o.BaseURL+" console=ttyS0,115200", 1)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	tmp, err := os.MkdirTemp(parent, ".minint-netboot-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrOutput, dir, err)
	}
	defer os.RemoveAll(tmp)

	res := &NetbootResult{Dir: dir, Cmdline: cmdline, MediaID: p.MediaID}
	if err := (UKI{Stub: host.EFIStub, Kernel: p.Kernel, Initramfs: p.Initramfs, Cmdline: cmdline,
		OSRelease: fmt.Sprintf("ID=minint\nNAME=\"minint PE\"\nVERSION_ID=%s\n", p.MediaID), Epoch: p.Epoch,
	}).Build(ctx, tools["objcopy"], tmp, filepath.Join(tmp, "minint.efi")); err != nil {
		return nil, err
	}
	for _, name := range []string{"uki.cmdline", "uki.osrel"} {
		os.Remove(filepath.Join(tmp, name))
	}
	copies := [][2]string{{p.Kernel, "vmlinuz"}, {p.Initramfs, "initrd"}}
	for _, e := range p.Extra {
		copies = append(copies, [2]string{e.Src, "minint/" + e.Dest})
	}
	for _, c := range copies {
		if _, err := copyFile(c[0], filepath.Join(tmp, c[1])); err != nil {
			return nil, err
		}
	}
	base := ""
	if o.BaseURL != "" {
		base = strings.TrimSuffix(o.BaseURL, "/") + "/"
	}
	files := map[string]string{
		"minint/media.json": string(p.MediaJSON),
		"boot.ipxe": fmt.Sprintf("#!ipxe\n# minint PE %s\nkernel %svmlinuz %s\ninitrd %sinitrd\nboot\n",
			p.MediaID, base, cmdline, base),
		"pxelinux.cfg/default": strings.Replace(string(p.Isolinux), p.Cmdline, cmdline, 1),
	}
	files["pxelinux.cfg/default"] = strings.NewReplacer("/boot/vmlinuz", "vmlinuz", "/boot/initrd", "initrd").Replace(files["pxelinux.cfg/default"])
	for name, body := range files {
		pth := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(pth), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(pth, []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	if err := filepath.Walk(tmp, func(pth string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if fi.IsDir() {
			mode = 0o755
		} else {
			rel, _ := filepath.Rel(tmp, pth)
			res.Files = append(res.Files, rel)
		}
		if err := os.Chmod(pth, mode); err != nil {
			return err
		}
		return os.Chtimes(pth, p.Epoch, p.Epoch)
	}); err != nil {
		return nil, err
	}
	os.Remove(dir) // an empty directory may be replaced
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	return res, nil
}
