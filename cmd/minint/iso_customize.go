package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/media"
	"github.com/spf13/cobra"
)

// addFiles parses --add SRC:DEST flags.
func addFiles(adds []string) ([]media.File, error) {
	var out []media.File
	for _, a := range adds {
		src, dest, ok := strings.Cut(a, ":")
		if !ok || src == "" || dest == "" {
			return nil, usageErrorf("--add %q: want SRC:DEST", a)
		}
		out = append(out, media.File{Src: src, Dest: dest})
	}
	return out, nil
}

// packageFlags parses --package DIR[:DEST] flags.
func packageFlags(pkgs []string) []media.Package {
	var out []media.Package
	for _, p := range pkgs {
		dir, dest, _ := strings.Cut(p, ":")
		out = append(out, media.Package{Dir: dir, Dest: dest})
	}
	return out
}

const packageUsage = "image package `DIR[:DEST]` (manifest.json, manifest.json.sig and the files it lists, as minint package create writes them), stored under /minint/DEST (default image) after its signature and files are checked with the PE's key (repeatable)"

// networkFlags are the static network settings of the PE, which become
// kernel arguments in dracut's syntax (package netconf).
type networkFlags struct{ ip, vlan, nameserver, ifname *[]string }

func addNetworkFlags(c *cobra.Command) networkFlags {
	fs := c.Flags()
	return networkFlags{
		ip:         fs.StringArray("ip", nil, "static network setting `SPEC` for the PE, as ip= on the kernel command line (see package netconf), e.g. 192.0.2.10::192.0.2.1:24::eth0:none, eth0:dhcp or off (repeatable)"),
		vlan:       fs.StringArray("vlan", nil, "VLAN interface `NAME:PARENT` for the PE, e.g. eth0.20:eth0 (repeatable)"),
		nameserver: fs.StringArray("nameserver", nil, "DNS server `IP` for the PE (repeatable)"),
		ifname:     fs.StringArray("ifname", nil, "name the NIC with a MAC address: `NAME:MAC` (repeatable)"),
	}
}

// args renders the settings as kernel arguments.
func (n networkFlags) args() string {
	var a []string
	for _, f := range []struct {
		k string
		v []string
	}{{"ifname", *n.ifname}, {"vlan", *n.vlan}, {"ip", *n.ip}, {"nameserver", *n.nameserver}} {
		for _, v := range f.v {
			a = append(a, f.k+"="+v)
		}
	}
	return strings.Join(a, " ")
}

func newISOCustomizeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "customize IN.iso -o OUT.iso [flags]",
		Short: "Add a sequence, package, key, files or kernel arguments to a built ISO, without rebuilding the PE",
		Long: `Customize a built minint ISO in seconds, without rebuilding the PE or a Go toolchain:
the sequence (checked as 'minint sequence check' does), image packages (their signature and files
checked with the key the PE will trust), other files, a new package key (added to the PE's initramfs),
extra kernel arguments and static network settings. The EFI system partition is copied unchanged,
so the Secure Boot chain (shim, GRUB, kernel) stays valid and the result is the same hybrid ISO
(BIOS and UEFI, CD or USB stick). An ISO whose UEFI chain is a UKI signed with your own key holds
the command line and initramfs inside that signature: there they change only with
--secure-boot-key and --secure-boot-cert (the UKI is built and signed again), files can always be added.
OUT may be IN: the image is written next to it and renamed into place when complete.`,
		Args: argCount(1, 1),
	}
	fs := c.Flags()
	out := fs.StringP("output", "o", "", "customized ISO `FILE` to write (may be IN)")
	seqFile := fs.String("sequence", "", "task sequence `FILE`, stored as /minint/sequence.yaml (replacing any)")
	key := fs.String("key", "", "package signing public key `FILE.pub` the PE trusts from now on (replacing its own)")
	pkgs := fs.StringArray("package", nil, packageUsage)
	adds := fs.StringArray("add", nil, "extra file `SRC:DEST`, stored as /minint/DEST (repeatable)")
	cmdline := fs.String("cmdline", "", "extra kernel `ARGS`, appended to the medium's")
	label := fs.String("label", "", "new ISO volume `LABEL` (default: keep)")
	packs := fs.StringArray("driver-pack", nil, "driver pack `DIR` (modules/, firmware/, pack.yaml; see minint build --driver-pack) added to the PE (repeatable)")
	reqSigned := fs.Bool("require-signed-modules", false, "refuse driver pack modules without a signature (a kernel under Secure Boot lockdown will not load them)")
	sbKey := fs.String("secure-boot-key", "", "for an ISO whose UEFI chain is a UKI signed with your own key: sign it again with this RSA private key `FILE` (PEM), so that its command line and initramfs may change")
	sbCert := fs.String("secure-boot-cert", "", "the certificate `FILE` (PEM) of --secure-boot-key")
	net := addNetworkFlags(c)
	outFlags := addOutputFlags(c, "events", "print only errors")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *out == "" {
			return usageErrorf("give the output ISO with -o OUT.iso (it may be the input)")
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
		extra := strings.TrimSpace(*cmdline + " " + net.args())
		cust := media.Customization{Sequence: *seqFile, Key: *key, Packages: packageFlags(*pkgs), Files: files,
			Cmdline: extra, Label: *label, DriverPacks: *packs, RequireSigned: *reqSigned, SecureBootKey: *sbKey, SecureBootCert: *sbCert, Log: func(f string, a ...any) { r.Printf(f, a...) }}
		t := r.Start("iso", 0, "bytes")
		res, err := media.CustomizeISO(ctx, args[0], *out, cust)
		t.Finish(err)
		if err != nil {
			return err
		}
		r.Printf("ISO        %s (%.1f MiB), media id %s, label %s", res.Path, float64(res.Size)/(1<<20), res.MediaID, res.Label)
		r.Printf("cmdline    %s", res.Cmdline)
		r.Emit(progress.Event{Kind: "iso", State: "done", Data: map[string]any{
			"path": res.Path, "size": res.Size, "media_id": res.MediaID, "label": res.Label,
			"cmdline": res.Cmdline, "uefi_chain": res.Chain, "customized_from": args[0]}})
		return nil
	}
	return c
}

func newISOShowCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "show [--json] IN.iso|TREE",
		Short: "Print what a minint ISO or network-boot tree carries: PE, package key, sequence, packages, command line",
		Args:  argCount(1, 1),
	}
	asJSON := c.Flags().Bool("json", false, "print JSON for machines")
	c.RunE = func(_ *cobra.Command, args []string) error {
		m, err := media.ReadMedium(args[0])
		if err != nil {
			return err
		}
		w := c.OutOrStdout()
		if *asJSON {
			b, _ := json.MarshalIndent(m, "", "  ")
			fmt.Fprintf(w, "%s\n", b)
			return nil
		}
		p := func(k, f string, a ...any) { fmt.Fprintf(w, "%-12s "+f+"\n", append([]any{k + ":"}, a...)...) }
		p("media id", "%s", m.MediaID)
		if m.CustomizedFrom != "" {
			p("customized", "from %s", m.CustomizedFrom)
		}
		p("label", "%s", m.Label)
		p("created", "%s", m.Created.Format("2006-01-02 15:04:05 MST"))
		p("uefi chain", "%s", m.Chain)
		pe := "unknown"
		if id, ok := m.PE["id"].(string); ok {
			pe = id
			if kv, ok := m.PE["kernel_version"].(string); ok {
				pe += ", kernel " + kv
			}
			if dp, ok := m.PE["driver_packs"].([]any); ok && len(dp) > 0 {
				pe += fmt.Sprintf(", driver packs %v", dp)
			}
		}
		p("pe", "%s", pe)
		if m.Key == "" {
			p("package key", "none (the PE refuses every package)")
		} else {
			p("package key", "%s", m.Key)
		}
		p("cmdline", "%s", m.Cmdline)
		at := ""
		if s := m.Sequence; s != nil && s.URL != "" {
			at = " at " + s.URL
		}
		switch s := m.Sequence; {
		case s == nil:
			p("sequence", "none")
		case s.Error != "":
			p("sequence", "INVALID%s: %s", at, s.Error)
		case s.Digest == "":
			p("sequence", "%s (not in this tree)", s.URL)
		default:
			p("sequence", "%s (%d steps, sha256 %s)%s", orDefault(s.Name, "unnamed"), s.Steps, s.Digest[:16], at)
		}
		for _, pk := range m.Packages {
			if pk.Error != "" {
				p("package", "%s: NOT USABLE: %s", pk.Dir, pk.Error)
				continue
			}
			p("package", "%s: %s, image %s, %d files, signed with the PE's key", pk.Dir, orDefault(pk.Name, "unnamed"), pk.Image, pk.Files)
		}
		for _, f := range m.Files {
			p("file", "%s (%d bytes)", f.Path, f.Size)
		}
		return nil
	}
	return c
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
