package media

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/pe"
	"github.com/minint/minint/pe/boot"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
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
	// NetbootHTTPBoot is the UEFI HTTP Boot part for the network's own
	// DHCP server (see HTTPBootDnsmasqConfig); written with a base URL
	// and the UKI chain.
	NetbootHTTPBoot = "dnsmasq-httpboot.conf"
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
//	dnsmasq-httpboot.conf   UEFI HTTP Boot, for the site's DHCP server
//	                        (see HTTPBootDnsmasqConfig; needs BaseURL
//	                        and the UKI)
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
	p, err := NewPlan(o.Options, false)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(o.BaseURL, " \n\",") {
		return nil, fmt.Errorf("%w: base URL %q contains spaces, quotes or commas", ErrInput, o.BaseURL)
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
	for name, body := range netbootMenus(p.MediaID, base, cmdline, p.Chain) {
		files[name] = body
	}
	files[NetbootDnsmasq] = DnsmasqConfig(subnet, root, p.Chain)
	if p.Chain == ChainUKI && (strings.HasPrefix(base, "http://") || strings.HasPrefix(base, "https://")) {
		files[NetbootHTTPBoot] = HTTPBootDnsmasqConfig(base)
	}
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
//
// Debian's signed GRUB (2.06) takes its server from the DHCP server's
// answer only, not from a proxy offer (other distributions patch that), so
// with the shim chain UEFI clients behind a proxy-DHCP setup need the
// network's DHCP server to name the boot server; the UKI chain, which the
// firmware loads itself, works behind the proxy (e2e TestNetbootProxyDHCP).
func DnsmasqConfig(subnet netip.Prefix, root, chain string) []byte {
	efi := NetbootShim
	note := `# UEFI: shim loads Debian's signed GRUB, which (2.06) ignores proxy-DHCP
# offers and then cannot find this server: for UEFI clients have the
# network's own DHCP server name this server and bootx64.efi (options 66/67),
# or build the tree with --secure-boot-key (the firmware loads the UKI).`
	http := `# UEFI HTTP Boot clients (vendor class HTTPClient) are not PXE clients and
# dnsmasq's proxy mode does not answer them. Nor does this tree serve them:
# shim loads Debian's signed GRUB over HTTP Boot, but GRUB (2.06) then finds
# no configuration and stops at its prompt. Build the tree with
# --secure-boot-key and --base-url for HTTP Boot (dnsmasq-httpboot.conf).`
	if chain == ChainUKI {
		efi = NetbootUKI
		note = "# UEFI: the firmware loads the signed unified kernel image itself."
		http = fmt.Sprintf(`# UEFI HTTP Boot clients (vendor class HTTPClient) are not PXE clients and
# dnsmasq's proxy mode does not answer them: the network's own DHCP server
# must give them option 60 "HTTPClient" and the boot file's URL (option 67),
# see %s (built with --base-url).`, NetbootHTTPBoot)
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
%s
pxe-service=X86-64_EFI,"minint PE (UEFI)",%s
pxe-service=BC_EFI,"minint PE (UEFI)",%s
%s
`, rng, root, strings.TrimSuffix(NetbootBIOS, ".0"), note, efi, efi, http))
}

// HTTPBootDnsmasqConfig is the UEFI HTTP Boot part of a network boot, for
// the network's own DHCP server (a dnsmasq in normal DHCP mode includes it
// with conf-file=): to x86-64 UEFI HTTP Boot clients (vendor class
// "HTTPClient", client architecture 16) it answers option 60 "HTTPClient"
// and the URL of the unified kernel image under base (base URL with a
// slash), which the firmware fetches over HTTP and loads itself.
//
// It cannot go in DnsmasqConfig's proxy-DHCP server: dnsmasq (2.90, see
// rfc2131.c) answers in proxy mode only clients whose vendor class starts
// with "PXEClient" and drops everything else, HTTP Boot clients included.
// The shim chain gets none: shim loads Debian's signed GRUB over HTTP
// Boot, but GRUB (2.06) finds no configuration there and stops at its
// prompt (measured with Debian 12's OVMF 2022.11, shim-signed 1.51 and
// grub-efi-amd64-signed 2.06-13+deb12u2).
func HTTPBootDnsmasqConfig(base string) []byte {
	efi, note := NetbootUKI, "# The firmware loads the signed unified kernel image itself (e2e TestNetbootProxyDHCP)."
	return []byte(fmt.Sprintf(`# minint UEFI HTTP Boot, for the network's own DHCP server (the one that
# hands out addresses): dnsmasq's proxy-DHCP mode (dnsmasq.conf) answers
# only PXE clients, not HTTP Boot clients. A dnsmasq in DHCP mode includes
# this file (conf-file=THIS_FILE); another DHCP server must answer clients
# with vendor class (option 60) "HTTPClient..." and client architecture
# (option 93) 16 with option 60 "HTTPClient" and option 67 = the URL below.
%s
dhcp-vendorclass=set:minint-httpclient,HTTPClient
dhcp-match=set:minint-uefi-http-x64,option:client-arch,16
tag-if=set:minint-httpboot,tag:minint-httpclient,tag:minint-uefi-http-x64
dhcp-option-force=tag:minint-httpboot,60,HTTPClient
dhcp-boot=tag:minint-httpboot,%s%s
`, note, base, efi))
}

// netbootPXELinux is PXELINUX's configuration in the tree.
const netbootPXELinux = "pxelinux.cfg/default"

// netbootMenus are the tree's boot menus, which carry the command line:
// the iPXE script (base is the base URL with a slash, or ""), PXELINUX's
// and, with the shim chain, GRUB's.
func netbootMenus(id, base, cmdline, chain string) map[string][]byte {
	m := map[string][]byte{
		NetbootIPXE: []byte(fmt.Sprintf("#!ipxe\n# minint PE %s\nkernel %svmlinuz %s\ninitrd %sinitrd\nboot\n",
			id, base, cmdline, base)),
		netbootPXELinux: IsolinuxConfig("vmlinuz", "initrd", cmdline),
	}
	if chain == ChainShim {
		m[netbootGrubDir+"/grub.cfg"] = GrubConfig("/vmlinuz", "/initrd", cmdline)
	}
	return m
}

// CustomizeNetboot changes a tree BuildNetboot wrote, in place and without
// rebuilding the PE, as CustomizeISO changes an ISO: a package key
// appended to the initramfs, packages and files under minint/, extra
// kernel arguments in every boot menu. The signed loaders are not touched.
// A sequence must come with its signature by the key the PE will trust
// (sign.SignatureFor beside it), since a network-booted PE fetches it
// over HTTP: it is stored under minint/ by its own name (the name its
// signature binds) and the command line names it at the tree's base URL (minint.url=, so the tree must have
// been built with one). Everything is checked before anything is
// written; each file is replaced by a rename.
func CustomizeNetboot(dir string, c Customization) (*NetbootResult, error) {
	logf := c.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	info, old, err := readTree(dir)
	if err != nil {
		return nil, err
	}
	chain, _ := info["uefi_chain"].(string)
	id, _ := info["id"].(string)
	m := &medium{id: id, chain: chain, info: info}
	if err := c.check(m); err != nil {
		return nil, err
	}
	if chain == ChainUKI && c.Sequence != "" {
		return nil, fmt.Errorf("%w: the tree boots UEFI through a unified kernel image signed with your own key, and the sequence's URL would go on its signed command line: build the tree again with minint netboot --sequence", ErrBoundary)
	}
	initrd := filepath.Join(dir, "initrd")
	pub, _, err := readPE(initrd)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, initrd, err)
	}
	var keyData []byte
	if c.Key != "" {
		if keyData, err = os.ReadFile(c.Key); err != nil {
			return nil, fmt.Errorf("%w: key: %w", ErrInput, err)
		}
		if pub, err = sign.ParsePublicKey(keyData); err != nil {
			return nil, fmt.Errorf("%w: key %s: %w (give the .pub file from minint keygen, not the .key)", ErrInput, c.Key, err)
		}
	}
	var copies []File
	extra := c.Cmdline
	if c.Sequence != "" {
		opts, _ := boot.ParseCmdline(old)
		base := opts.URL
		if base == "" {
			return nil, fmt.Errorf("%w: the tree was built without a base URL: a network-booted PE could not fetch the sequence", ErrInput)
		}
		files, name, err := SequenceFiles(c.Sequence, pub)
		if err != nil {
			return nil, err
		}
		copies = append(copies, files...)
		extra = strings.TrimSpace(extra + " minint.sequence=" + strings.TrimSuffix(base, "/") + "/" + MediaDir + "/" + name)
	}
	for _, p := range c.Packages {
		files, err := PackageFiles(p, pub, true)
		if err != nil {
			return nil, err
		}
		copies = append(copies, files...)
	}
	for _, f := range c.Files {
		d := path.Clean(strings.TrimPrefix(f.Dest, "/"))
		if d == "." || d == ".." || strings.HasPrefix(d, "../") || d == "media.json" {
			return nil, fmt.Errorf("%w: file destination %q is not a path below minint/ (or is reserved)", ErrInput, f.Dest)
		}
		copies = append(copies, File{Src: f.Src, Dest: d})
	}

	// Checked: now write, each file under a temporary name first.
	replace := func(rel string, fill func(tmp string) error) error {
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		tmp := dst + ".minint-new"
		if err := fill(tmp); err != nil {
			os.Remove(tmp)
			return err
		}
		os.Chmod(tmp, 0o644)
		return os.Rename(tmp, dst)
	}
	if keyData != nil || len(c.DriverPacks) > 0 {
		if err := replace("initrd", func(tmp string) error {
			if _, err := copyFile(initrd, tmp); err != nil {
				return err
			}
			if len(c.DriverPacks) > 0 {
				names, err := initramfs.AppendDriverPacks(tmp, c.DriverPacks, c.RequireSigned)
				if err != nil {
					return fmt.Errorf("%w: driver packs: %w", ErrInput, err)
				}
				logf("driver packs %s added to the PE", strings.Join(names, ", "))
			}
			if keyData == nil {
				return nil
			}
			logf("package key %s replaces the PE's", sign.KeyID(pub))
			return initramfs.Append(tmp, []initramfs.File{{Dest: pe.DefaultPublicKey, Data: keyData, Mode: 0o644}})
		}); err != nil {
			return nil, err
		}
	}
	for _, f := range copies {
		if err := replace(MediaDir+"/"+f.Dest, func(tmp string) error { _, err := copyFile(f.Src, tmp); return err }); err != nil {
			return nil, err
		}
	}
	from := old
	if c.Sequence != "" {
		// The new sequence replaces the one the tree named, if any.
		var kept []string
		for _, a := range strings.Fields(old) {
			if !strings.HasPrefix(a, "minint.sequence=") {
				kept = append(kept, a)
			}
		}
		from = strings.Join(kept, " ")
	}
	cmdline := customCmdline(from, "", "", extra)
	base := ""
	if opts, _ := boot.ParseCmdline(cmdline); opts.URL != "" {
		base = strings.TrimSuffix(opts.URL, "/") + "/"
	}
	menus := netbootMenus(id, base, cmdline, chain)
	info["netboot_cmdline"] = cmdline
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		menus[MediaJSONPath] = append(b, '\n')
	}
	for name, body := range menus {
		if err := replace(name, func(tmp string) error { return os.WriteFile(tmp, body, 0o644) }); err != nil {
			return nil, err
		}
	}
	res := &NetbootResult{Dir: dir, Cmdline: cmdline, MediaID: id, Chain: chain}
	filepath.Walk(dir, func(pth string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, pth)
			res.Files = append(res.Files, filepath.ToSlash(rel))
		}
		return nil
	})
	return res, nil
}

// SequenceFiles checks a sequence for the network as the PE will check it
// — valid as minint sequence check says, signed by pub for the purpose
// "sequence" — and returns it with its signature (sign.SignatureFor) as
// files under minint/, with the name the command line's minint.sequence=
// must end in. It keeps the file's own name: a signature may bind it, and
// the PE refuses a sequence served under another.
func SequenceFiles(seqFile string, pub ed25519.PublicKey) ([]File, string, error) {
	if _, err := readSequence(seqFile, pub); err != nil {
		return nil, "", err
	}
	name := filepath.Base(seqFile)
	return []File{{Src: seqFile, Dest: name}, {Src: sign.SignatureFor(seqFile), Dest: sign.SignatureFor(name)}}, name, nil
}

// readSequence reads seqFile and its signature once each, within the
// bounds the PE reads them in (a tree's may come from anyone), and checks
// them as the PE will. It returns the sequence whenever it parses, also
// when its signature fails (that error is then the one returned).
func readSequence(seqFile string, pub ed25519.PublicKey) (*sequence.Sequence, error) {
	data, err := bounded.ReadFile(seqFile, sequence.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("%w: sequence: %w", ErrInput, err)
	}
	seq, err := sequence.Parse(seqFile, data)
	if err != nil {
		return nil, fmt.Errorf("%w: sequence: %w", ErrInput, err)
	}
	sigFile := sign.SignatureFor(seqFile)
	sig, err := bounded.ReadFile(sigFile, sign.MaxSize)
	if err != nil {
		return seq, fmt.Errorf("%w: sequence %s: its signature: %w (sign it with minint package sign --key KEY %s)", ErrInput, seqFile, err, seqFile)
	}
	if _, err := sign.Verify(data, sig, pub, sign.Policy{Purpose: sign.PurposeSequence}); err != nil {
		return seq, fmt.Errorf("%w: sequence %s: %w (the PE trusts key %s: the PE would refuse it)", ErrInput, seqFile, err, keyText(pub))
	}
	return seq, nil
}
