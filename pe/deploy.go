package pe

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/progress"
	"github.com/minint/minint/netconf"
	"github.com/minint/minint/pe/hw"
	"github.com/minint/minint/sequence"
	"github.com/minint/minint/sign"
)

// Default locations inside the PE.
const (
	// DefaultPublicKey is the package signing key built into the PE.
	DefaultPublicKey = "/etc/minint/package.pub"
	// DefaultSetupBinary is minint-setup inside the PE.
	DefaultSetupBinary = "/bin/minint-setup"
	// MediumSequence is the sequence `minint iso --sequence` stores,
	// relative to the boot medium's root.
	MediumSequence = "minint/sequence.yaml"
)

// BenchFloor is a floor of `make bench-deploy` (minint.bench=): the image
// on the boot medium applied with less checking than any deployment gets,
// loudly, to measure what the checks cost. Never for deploying. Only the
// medium: it is trusted like the PE itself (whoever can write it can
// replace the PE), while a server's image is always verified.
type BenchFloor string

const (
	// BenchUnverifiedMedium skips the package's chunk and file hashes (its
	// manifest's signature is still checked); the WIM's SHA-1 of each file
	// is checked, as in every apply without the manifest's XXH64 table
	// (which is not used here: the bytes are not authenticated).
	BenchUnverifiedMedium BenchFloor = "unverified-medium"
	// BenchUnhashedMedium hashes nothing: the WIM's SHA-1s go unchecked
	// too, leaving reading, decompressing and writing, the apply floor
	// issue 16 defines.
	BenchUnhashedMedium BenchFloor = "unhashed-medium"
)

// known reports whether f is one of the floors; any other value verifies
// like none.
func (f BenchFloor) known() bool {
	return f == BenchUnverifiedMedium || f == BenchUnhashedMedium
}

// DeployOptions is what cmd/peinit knows at boot.
type DeployOptions struct {
	// Sequence is a file path or an http(s) URL (minint.sequence=…);
	// empty means MediumSequence on the boot medium.
	Sequence string
	// MediumDir is where the boot medium is mounted ("" if none).
	MediumDir string
	// Staged is the file system UUID of minint.staged=UUID=…: refresh
	// the system `minint stage` prepared on it, with the sequence it
	// staged there (stagedSequence). Sequence must then be empty.
	Staged string
	// Vars are minint.var.NAME=VALUE from the kernel command line.
	Vars map[string]string
	// PublicKey is the key file (default DefaultPublicKey). A missing key
	// file means no package (and no network sequence) is accepted.
	PublicKey string
	// SequenceMinVersion refuses a network sequence signed with a lower
	// version or none (minint.sequence-min-version=).
	SequenceMinVersion string
	// SetupBinary defaults to DefaultSetupBinary.
	SetupBinary string
	// Boot devices and media label keep the boot medium out of selection.
	BootDevices []string
	MediaLabel  string
	DryRun      bool
	// Redo: see Env.Redo (minint.redo=1).
	Redo bool
	// Bench selects a floor of `make bench-deploy` (see BenchFloor);
	// empty for every real deployment.
	Bench BenchFloor
	// Console and Events: see Env.
	Console, Events io.Writer
	HTTP            *httpx.Client
	// Network applies a sequence's network: configuration (see Env).
	Network func(ctx context.Context, cfg netconf.Config) error
}

// Deploy loads the sequence, takes the inventory and runs the sequence
// with the real backend: the single call cmd/peinit makes. On error the
// log is already saved (and uploaded when configured); peinit shows the
// error and offers the rescue shell.
func Deploy(ctx context.Context, o DeployOptions) error {
	keyFile := o.PublicKey
	if keyFile == "" {
		keyFile = DefaultPublicKey
	}
	var pub ed25519.PublicKey
	if b, err := os.ReadFile(keyFile); err == nil {
		if pub, err = sign.ParsePublicKey(b); err != nil {
			return fmt.Errorf("%s: %w", keyFile, err)
		}
	}
	be := &SystemBackend{Discover: diskops.DiscoverOptions{BootDevices: o.BootDevices, MediaLabel: o.MediaLabel}}
	if o.Console != nil {
		be.Log = func(format string, a ...any) { fmt.Fprintf(o.Console, "  "+format+"\n", a...) }
	}
	var seq *sequence.Sequence
	var err error
	if o.Bench != "" && !o.Bench.known() {
		return fmt.Errorf("unknown benchmark floor %q (want %s or %s)", o.Bench, BenchUnverifiedMedium, BenchUnhashedMedium)
	}
	boot := "medium"
	switch {
	case o.Staged != "" && o.Sequence != "":
		// Two sources of truth: refuse rather than pick one.
		return fmt.Errorf("both minint.staged= and minint.sequence=%s on the kernel command line: a staged refresh runs the sequence staged with it", o.Sequence)
	case o.Staged != "":
		seq, err = loadStaged(ctx, be, be, o.Staged)
		boot = "staged"
	default:
		seq, err = loadSource(ctx, o.Sequence, o.MediumDir, pub, o.HTTP, sourceOptions{MinVersion: o.SequenceMinVersion, Warn: be.logf})
		if strings.HasPrefix(o.Sequence, "http://") || strings.HasPrefix(o.Sequence, "https://") {
			boot = "network"
		}
	}
	if err != nil {
		return err
	}
	setup := o.SetupBinary
	if setup == "" {
		setup = DefaultSetupBinary
	}
	return Run(ctx, seq, &Env{
		Backend:     be,
		Inventory:   hostInventory("/", be.Discover),
		Machine:     machineOf(hw.Collect("/")),
		Vars:        o.Vars,
		Boot:        boot,
		PublicKey:   pub,
		MediumDir:   o.MediumDir,
		SetupBinary: setup,
		Console:     o.Console,
		Events:      o.Events,
		HTTP:        o.HTTP,
		Network:     o.Network,
		DryRun:      o.DryRun,
		Redo:        o.Redo,
		Staged:      o.Staged,

		bench: o.Bench,
	})
}

// sourceOptions tunes loadSource.
type sourceOptions struct {
	MinVersion string                        // see DeployOptions.SequenceMinVersion
	Warn       func(format string, a ...any) // deprecated formats and names
}

// loadSource loads a sequence from a file, an http(s) URL, or (src empty)
// the boot medium. A sequence fetched over the network must carry a
// detached signature (sign.SignatureFor: seq.yaml -> seq.yaml.sig, made
// by `minint package sign`) by the package key, made for the purpose
// "sequence" (a package manifest's signature does not do), not expired,
// for this file name when it names one, and not older than o.MinVersion:
// a sequence runs commands in the PE, so an unauthenticated or replayed
// one would be a way in. Files on the boot medium are trusted like the PE
// itself.
func loadSource(ctx context.Context, src, mediumDir string, pub ed25519.PublicKey, client *httpx.Client, o sourceOptions) (*sequence.Sequence, error) {
	if o.Warn == nil {
		o.Warn = func(string, ...any) {}
	}
	if src == "" {
		if mediumDir == "" {
			return nil, fmt.Errorf("no task sequence: none on the kernel command line (minint.sequence=) and no boot medium")
		}
		src = filepath.Join(mediumDir, MediumSequence)
	}
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return sequence.LoadFile(src)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var c httpx.Client
	if client != nil {
		c = *client
	}
	if c.Tries == 0 {
		c.Tries = 11 // the PE's network may still be coming up
	}
	b, err := c.Get(ctx, src, sequence.MaxSize)
	if err != nil {
		return nil, err // names the URL; peinit says "task sequence:"
	}
	sig, err := readSignature(ctx, &c, src, o.Warn)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	s, err := sign.Verify(b, sig, pub, sign.Policy{Purpose: sign.PurposeSequence, MinVersion: o.MinVersion})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	// The name binds the signature to the file it was made for, so that
	// another sequence signed with the same key cannot stand in for it.
	if u, err := url.Parse(src); err == nil && s.Name != "" && s.Name != path.Base(u.Path) {
		return nil, fmt.Errorf("%s: %w: signed for %q, not %q", src, sign.ErrSignature, s.Name, path.Base(u.Path))
	}
	warnLegacy(s, src, o.Warn)
	return sequence.Parse(src, b)
}

// machineOf names the machine for a status URL: its serial number, and
// the NIC that has an address (the one talking to the server), else the
// first one.
func machineOf(h *hw.Inventory) progress.Machine {
	var mac, ip string
	for _, n := range h.NICs {
		if n.MAC == "" {
			continue
		}
		if mac == "" {
			mac = n.MAC
		}
		if len(n.Addresses) > 0 {
			mac, ip = n.MAC, n.Addresses[0]
			if i := strings.IndexByte(ip, '/'); i >= 0 {
				ip = ip[:i]
			}
			break
		}
	}
	host, _ := os.Hostname()
	if host == "(none)" || host == "localhost" {
		host = ""
	}
	return progress.NewMachine(h.Serial, mac, host, ip, strings.TrimSpace(h.Vendor+" "+h.Model))
}

// machineMACs orders the NICs' addresses for rules and ${machine.mac},
// which is the first: NICs with a link (the one the machine is cabled
// by) before those without, each by name as hw lists them.
func machineMACs(nics []hw.NIC) []string {
	var out []string
	for _, link := range []bool{true, false} {
		for _, n := range nics {
			if n.Link == link && n.MAC != "" {
				out = append(out, strings.ToLower(n.MAC))
			}
		}
	}
	return out
}

// hostInventory takes the inventory of the running machine (root "/"
// normally), with disks as diskops discovers them so that the boot medium
// is marked.
func hostInventory(root string, d diskops.DiscoverOptions) Inventory {
	h := hw.Collect(root)
	inv := Inventory{Firmware: h.Firmware, SecureBoot: h.SecureBoot, Arch: runtime.GOARCH, Memory: h.MemoryBytes, CPUs: h.CPUs,
		Vendor: h.Vendor, Model: h.Model, Serial: h.Serial, UUID: h.UUID}
	for _, n := range h.NICs {
		inv.NICs = append(inv.NICs, n.Name)
	}
	inv.MACs = machineMACs(h.NICs)
	if disks, err := diskops.Discover(context.Background(), d); err == nil {
		for _, x := range disks {
			if x.Kind == "disk" {
				inv.Disks = append(inv.Disks, DiskInfo{Path: x.Path, Size: x.Size, BootMedium: x.BootMedium})
			}
		}
	}
	devs, _ := filepath.Glob(filepath.Join(root, "sys/bus/pci/devices/*"))
	for _, dev := range devs {
		v, err1 := os.ReadFile(filepath.Join(dev, "vendor"))
		p, err2 := os.ReadFile(filepath.Join(dev, "device"))
		if err1 == nil && err2 == nil {
			inv.PCI = append(inv.PCI, strings.TrimPrefix(strings.TrimSpace(string(v)), "0x")+":"+strings.TrimPrefix(strings.TrimSpace(string(p)), "0x"))
		}
	}
	return inv
}
