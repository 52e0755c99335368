package main

import (
	"fmt"
	"strings"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/media"
	"github.com/spf13/cobra"
)

func init() { register(newNetbootCmd) }

func newNetbootCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "netboot -o DIR [flags]",
		Short: "Write a network-boot tree: PXE (BIOS, UEFI with Secure Boot), iPXE, the PE and a proxy-DHCP dnsmasq.conf",
		Long: `Write a ready network-boot tree into DIR (which must not exist or be empty), from the same PE
and boot chain as the ISO: PXELINUX (lpxelinux.0) for BIOS, shim -> Debian's signed network GRUB
for UEFI with Secure Boot (or a UKI signed with --secure-boot-key), iPXE's undionly.kpxe and a
boot.ipxe script, the kernel and initramfs, /minint/ (sequence, packages, files) and dnsmasq.conf:
proxy-DHCP + TFTP that works beside the network's existing DHCP server.

Serve DIR over TFTP (dnsmasq --conf-file=DIR/dnsmasq.conf) and over HTTP with any static server
at --base-url (nginx: "location /minint-pe/ { alias DIR/; }"). The PE has no boot medium then:
a --sequence is fetched from --base-url and must carry its signature by the PE's key
(FILE.sig, from 'minint package sign'); a package's sequence fetches it from
BASE-URL/minint/DEST/manifest.json.

UEFI HTTP Boot needs the UKI (--secure-boot-key; over HTTP Boot Debian's signed GRUB finds no
configuration) and the network's own DHCP server, since dnsmasq's proxy mode answers only PXE
clients: it must answer HTTP Boot clients (vendor class HTTPClient, architecture 16) with option
60 "HTTPClient" and the UKI's URL (option 67); with --base-url DIR/dnsmasq-httpboot.conf says
that for a dnsmasq that hands out the addresses (conf-file=).`,
		Args: noArgs,
		// minint netboot builds; minint netboot customize changes a tree.
		Annotations: map[string]string{"runs": "1"},
	}
	c.AddCommand(newNetbootCustomizeCmd())
	fs := c.Flags()
	out := fs.StringP("output", "o", "", "`DIR` to write the tree into (must not exist or be empty)")
	baseURL := fs.String("base-url", "", "`URL` the tree is served from over HTTP (e.g. http://192.0.2.1/minint-pe): iPXE fetches the PE there, the PE its sequence")
	proxy := fs.String("proxy-dhcp", "", "the network's `SUBNET` (e.g. 192.0.2.0/24) on which dnsmasq.conf answers PXE clients as a proxy-DHCP server")
	tftpRoot := fs.String("tftp-root", "", "`DIR` dnsmasq.conf serves by TFTP (default: the output directory)")
	cmdline := fs.String("cmdline", "", "extra kernel `ARGS`, appended to minint's own")
	done := choiceFlag(c, "done", "poweroff", "`ACTION` when the PE is finished: poweroff, reboot or shell", "poweroff", "reboot", "shell")
	verbose := fs.Bool("verbose-kernel", false, "show the kernel's messages on the console (no 'quiet')")
	src := addPEFlags(c)
	seqFile := fs.String("sequence", "", "task sequence `FILE`, with its signature FILE.sig beside it (minint package sign), fetched by the PE from --base-url")
	adds := fs.StringArray("add", nil, "extra file `SRC:DEST`, stored as minint/DEST (repeatable)")
	pkgs := fs.StringArray("package", nil, packageUsage)
	sbKey := fs.String("secure-boot-key", "", "sign a unified kernel image with this RSA private key `FILE` (PEM) for firmware whose Secure Boot db holds --secure-boot-cert; default: shim and Debian-signed GRUB")
	sbCert := fs.String("secure-boot-cert", "", "the certificate `FILE` (PEM) of --secure-boot-key")
	outFlags := addOutputFlags(c, "events", "print only errors")
	c.RunE = func(*cobra.Command, []string) error {
		if *out == "" {
			return usageErrorf("give the output directory with -o DIR")
		}
		if err := src.check(); err != nil {
			return err
		}
		if (*sbKey == "") != (*sbCert == "") {
			return usageErrorf("--secure-boot-key and --secure-boot-cert go together")
		}
		if *seqFile != "" && *baseURL == "" {
			return usageErrorf("--sequence needs --base-url: a network-booted PE has no medium and fetches its sequence over HTTP")
		}
		files, err := addFiles(*adds)
		if err != nil {
			return err
		}
		r, ctx, end, err := outFlags.start()
		if err != nil {
			return err
		}
		defer end()
		pe, err := src.get(ctx, r)
		if err != nil {
			return err
		}
		pkgFiles, err := verifiedPackages(r, *pkgs, pe.Initramfs, true)
		if err != nil {
			return err
		}
		files = append(files, pkgFiles...)
		extra := *cmdline
		if *seqFile != "" {
			pub, err := media.PEKey(pe.Initramfs)
			if err != nil {
				return err
			}
			seqFiles, name, err := media.SequenceFiles(*seqFile, pub)
			if err != nil {
				return fmt.Errorf("--sequence: %w", err)
			}
			files = append(files, seqFiles...)
			extra = strings.TrimSpace(extra + " minint.sequence=" + strings.TrimSuffix(*baseURL, "/") + "/" + media.MediaDir + "/" + name)
		}
		o := media.NetbootOptions{Options: media.Options{Kernel: pe.Kernel, Initramfs: pe.Initramfs, Cmdline: extra, Done: *done,
			Verbose: *verbose, SecureBootKey: *sbKey, SecureBootCert: *sbCert, ExtraFiles: files,
			Info: map[string]any{"pe_id": pe.ID, "kernel_version": pe.KernelVersion}},
			BaseURL: *baseURL, ProxySubnet: *proxy, TFTPRoot: *tftpRoot}
		res, err := media.BuildNetboot(ctx, o, *out)
		if err != nil {
			return err
		}
		boot := media.NetbootShim + " (shim -> GRUB -> kernel, Secure Boot)"
		if res.Chain == media.ChainUKI {
			boot = media.NetbootUKI + " (unified kernel image signed with --secure-boot-key)"
		}
		r.Printf("tree       %s (%d files), media id %s", res.Dir, len(res.Files), res.MediaID)
		r.Printf("BIOS       %s (PXELINUX), or undionly.kpxe + %s (iPXE)", media.NetbootBIOS, media.NetbootIPXE)
		r.Printf("UEFI       %s", boot)
		r.Printf("dnsmasq    dnsmasq --conf-file=%s/%s --no-daemon", res.Dir, media.NetbootDnsmasq)
		for _, f := range res.Files {
			if f == media.NetbootHTTPBoot {
				r.Printf("HTTP Boot  the network's DHCP server answers as %s/%s says", res.Dir, media.NetbootHTTPBoot)
			}
		}
		r.Printf("cmdline    %s", res.Cmdline)
		if *proxy != "" && res.Chain == media.ChainShim {
			r.Warnf("UEFI behind proxy-DHCP: Debian's signed GRUB ignores proxy offers; have the network's DHCP server name this server and %s for UEFI clients, or use --secure-boot-key (see %s)", media.NetbootShim, media.NetbootDnsmasq)
		}
		r.Emit(progress.Event{Kind: "netboot", State: "done", Data: map[string]any{
			"dir": res.Dir, "files": res.Files, "media_id": res.MediaID, "cmdline": res.Cmdline, "uefi_chain": res.Chain, "pe_id": pe.ID}})
		return nil
	}
	return c
}

func newNetbootCustomizeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "customize DIR [flags]",
		Short: "Add a signed sequence, package, key, files or kernel arguments to a network-boot tree, in place",
		Long: `Customize a tree 'minint netboot' wrote, in place and in seconds, as 'minint iso customize'
customizes an ISO: a new package key (added to the PE's initramfs), packages and files under
minint/, extra kernel arguments and static network settings in every boot menu (iPXE, PXELINUX,
GRUB). A sequence needs its signature by the key the PE will trust beside it (FILE.sig) and a tree
built with --base-url, from where the PE fetches it. The signed loaders are not touched.`,
		Args: argCount(1, 1),
	}
	fs := c.Flags()
	seqFile := fs.String("sequence", "", "task sequence `FILE` with its signature FILE.sig, stored under minint/ by its name")
	key := fs.String("key", "", "package signing public key `FILE.pub` the PE trusts from now on (replacing its own)")
	pkgs := fs.StringArray("package", nil, packageUsage)
	adds := fs.StringArray("add", nil, "extra file `SRC:DEST`, stored as minint/DEST (repeatable)")
	cmdline := fs.String("cmdline", "", "extra kernel `ARGS`, appended to the tree's")
	packs := fs.StringArray("driver-pack", nil, "driver pack `DIR` (modules/, firmware/, pack.yaml; see minint build --driver-pack) added to the PE (repeatable)")
	reqSigned := fs.Bool("require-signed-modules", false, "refuse driver pack modules without a signature (a kernel under Secure Boot lockdown will not load them)")
	net := addNetworkFlags(c)
	outFlags := addOutputFlags(c, "events", "print only errors")
	c.RunE = func(_ *cobra.Command, args []string) error {
		files, err := addFiles(*adds)
		if err != nil {
			return err
		}
		r, err := outFlags.open()
		if err != nil {
			return err
		}
		defer r.Close()
		res, err := media.CustomizeNetboot(args[0], media.Customization{Sequence: *seqFile, Key: *key,
			Packages: packageFlags(*pkgs), Files: files, Cmdline: strings.TrimSpace(*cmdline + " " + net.args()),
			DriverPacks: *packs, RequireSigned: *reqSigned,
			Log: func(f string, a ...any) { r.Printf(f, a...) }})
		if err != nil {
			return err
		}
		r.Printf("tree       %s (%d files), media id %s", res.Dir, len(res.Files), res.MediaID)
		r.Printf("cmdline    %s", res.Cmdline)
		r.Emit(progress.Event{Kind: "netboot", State: "done", Data: map[string]any{
			"dir": res.Dir, "files": res.Files, "media_id": res.MediaID, "cmdline": res.Cmdline, "uefi_chain": res.Chain}})
		return nil
	}
	return c
}
