package media

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
	// ProxySubnet is the network (e.g. 192.0.2.0/24) on which the
	// bundle's dnsmasq.conf answers PXE clients as a proxy-DHCP server,
	// beside the site's own DHCP server; empty leaves that line commented
	// out (TFTP only).
	ProxySubnet string
	// TFTPRoot is where dnsmasq.conf says the bundle is served from
	// (default: dir, made absolute).
	TFTPRoot string
}

// NetbootResult lists what BuildNetboot wrote.
type NetbootResult struct {
	Dir     string
	Cmdline string
	MediaID string
	Chain   string   // ChainShim or ChainUKI
	Files   []string // relative to Dir
}

// The bundle's boot files.
const (
	NetbootShim    = "bootx64.efi" // the UEFI boot file to offer by DHCP (shim chain)
	NetbootUKI     = "minint.efi"  // the UEFI boot file to offer by DHCP (UKI chain)
	NetbootIPXE    = "boot.ipxe"   // for iPXE (BIOS, or UEFI without Secure Boot)
	NetbootBIOS    = "lpxelinux.0" // the BIOS boot file to offer by DHCP: PXELINUX, which reads pxelinux.cfg/default
	NetbootDnsmasq = "dnsmasq.conf"
)

// BuildNetboot writes a network-boot bundle into dir from the same plan as
// the ISO (kernel, initramfs, boot chain, /minint files):
//
//	vmlinuz, initrd         the PE, shared by GRUB, PXELINUX and iPXE
//	bootx64.efi             shim, the UEFI boot file (shim chain)
//	grubx64.efi             Debian's signed network GRUB (grubnetx64.efi),
//	                        which shim fetches from the same directory
//	mmx64.efi               shim's MOK manager
//	grub/grub.cfg           GRUB's menu; grubnetx64.efi reads it from
//	                        /grub on the server, so dir must be the root
//	                        the TFTP (or HTTP boot) server serves
//	minint.efi              instead of the four above with an own key: the
//	                        signed unified kernel image
//	boot.ipxe               iPXE script
//	lpxelinux.0, ldlinux.c32  PXELINUX (BIOS; with HTTP), which reads
//	pxelinux.cfg/default    its configuration
//	undionly.kpxe           iPXE for BIOS PXE, for sites that chain to
//	                        boot.ipxe from their own DHCP server
//	dnsmasq.conf            proxy-DHCP + TFTP beside the site's DHCP
//	                        server (see DnsmasqConfig)
//	minint/media.json, minint/...   the files the ISO has under /minint
//
// The PE has no boot medium then, so the command line carries no
// minint.media= but minint.url=BaseURL when one is given. dir must not
// exist yet or be empty; it is filled under a temporary name and renamed.
func BuildNetboot(ctx context.Context, o NetbootOptions, dir string) (*NetbootResult, error) {
	host := o.Host.withDefaults()
	chain := ChainShim
	if o.SecureBootKey != "" || o.SecureBootCert != "" {
		chain = ChainUKI
	}
	tools, err := host.check(need{chain: chain, netboot: true})
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
	var subnet netip.Prefix
	if o.ProxySubnet != "" {
		if subnet, err = netip.ParsePrefix(o.ProxySubnet); err != nil || !subnet.Addr().Is4() {
			return nil, fmt.Errorf("%w: proxy-DHCP subnet %q: want an IPv4 network such as 192.0.2.0/24", ErrInput, o.ProxySubnet)
		}
		subnet = subnet.Masked()
	}
	root := o.TFTPRoot
	if root == "" {
		if root, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
	}
	if strings.ContainsAny(root, "\n\"") {
		return nil, fmt.Errorf("%w: TFTP root %q", ErrInput, root)
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

	res := &NetbootResult{Dir: dir, Cmdline: cmdline, MediaID: p.MediaID, Chain: p.Chain}
	copies := [][2]string{{p.Kernel, "vmlinuz"}, {p.Initramfs, "initrd"},
		{host.LPXELinux, NetbootBIOS}, {host.LdlinuxC32, "ldlinux.c32"}, {host.UndionlyKPXE, "undionly.kpxe"}}
	files := map[string][]byte{}
	switch p.Chain {
	case ChainUKI:
		if err := p.buildUKI(ctx, host.EFIStub, tools["objcopy"], tmp, cmdline, filepath.Join(tmp, NetbootUKI)); err != nil {
			return nil, err
		}
	default:
		copies = append(copies, [2]string{host.Shim, NetbootShim}, [2]string{host.GrubNet, "grubx64.efi"},
			[2]string{host.MokManager, "mmx64.efi"})
		files[netbootGrubDir+"/grub.cfg"] = GrubConfig("/vmlinuz", "/initrd", cmdline)
	}
	for _, e := range p.Extra {
		copies = append(copies, [2]string{e.Src, MediaDir + "/" + e.Dest})
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
	files[MediaJSONPath] = p.MediaJSON
	files[NetbootIPXE] = []byte(fmt.Sprintf("#!ipxe\n# minint PE %s\nkernel %svmlinuz %s\ninitrd %sinitrd\nboot\n",
		p.MediaID, base, cmdline, base))
	files["pxelinux.cfg/default"] = IsolinuxConfig("vmlinuz", "initrd", cmdline)
	files[NetbootDnsmasq] = DnsmasqConfig(subnet, root, p.Chain)
	for name, body := range files {
		if err := writeFile(filepath.Join(tmp, name), body); err != nil {
			return nil, err
		}
	}
	if err := normalizeTree(tmp, p); err != nil {
		return nil, err
	}
	filepath.Walk(tmp, func(pth string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(tmp, pth)
			res.Files = append(res.Files, rel)
		}
		return nil
	})
	os.Remove(dir) // an empty directory may be replaced
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	return res, nil
}

// DnsmasqConfig is a dnsmasq configuration that network-boots the bundle
// at root on a network that already has a DHCP server, the usual case in
// an office: dnsmasq answers only PXE clients, as a proxy-DHCP server
// (no addresses, no DNS), and serves the bundle over TFTP. BIOS clients
// get PXELINUX, UEFI clients the chain's boot file (shim, or the UKI).
// The kernel, initramfs and /minint files may also come over HTTP from
// any static server (nginx) serving root at the bundle's base URL.
// A zero subnet leaves the proxy line commented out.
func DnsmasqConfig(subnet netip.Prefix, root, chain string) []byte {
	efi := NetbootShim
	if chain == ChainUKI {
		efi = NetbootUKI
	}
	rng := "# dhcp-range=192.0.2.0,proxy   # your network's address: minint netboot --proxy-dhcp 192.0.2.0/24"
	if subnet.IsValid() {
		m := net.CIDRMask(subnet.Bits(), 32)
		rng = fmt.Sprintf("dhcp-range=%s,proxy,%d.%d.%d.%d", subnet.Addr(), m[0], m[1], m[2], m[3])
	}
	return []byte(fmt.Sprintf(`# minint network boot: proxy-DHCP + TFTP beside the network's own DHCP
# server, which keeps handing out the addresses. Run:
#   dnsmasq --conf-file=THIS_FILE --no-daemon
port=0
log-dhcp
%s
dhcp-no-override
enable-tftp
tftp-root=%s
# BIOS: PXELINUX reads pxelinux.cfg/default (dnsmasq adds the ".0")
pxe-service=x86PC,"minint PE (BIOS)",%s
# UEFI x86-64 (and its byte-code variant): the Secure Boot chain's loader
pxe-service=X86-64_EFI,"minint PE (UEFI)",%s
pxe-service=BC_EFI,"minint PE (UEFI)",%s
`, rng, root, strings.TrimSuffix(NetbootBIOS, ".0"), efi, efi))
}
