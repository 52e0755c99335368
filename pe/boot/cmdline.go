// Package boot holds what the PE learns at boot: the minint.* options on
// the kernel command line and the boot medium those options point to.
package boot

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/minint/minint/netconf"
	"github.com/minint/minint/sign"
)

// What the PE does when its work is finished (minint.done=).
const (
	DoneShell    = "shell"
	DonePoweroff = "poweroff"
	DoneReboot   = "reboot"
)

// Options are the minint.* kernel command-line options.
type Options struct {
	Done  string // minint.done: DoneShell (default), DonePoweroff or DoneReboot
	Media string // minint.media: ID of the boot medium ("" = first minint medium found)
	Net   bool   // false with minint.net=0: skip DHCP
	Shell bool   // minint.shell=1: stop at a shell before doing anything else
	Debug bool   // minint.debug=1: verbose logging
	// Redo is minint.redo=1: run again, from its first fetch, a sequence
	// that the journal on the target says finished in an earlier boot
	// (by default such a PE does nothing: a network boot that comes back
	// after its deployment must not install again), and deploy again a
	// system it deployed whose first boot removed that journal, or a
	// disk whose system is hibernated (by default partition refuses
	// both).
	Redo bool
	// Sequence is minint.sequence=: the task sequence's http(s) URL or
	// path ("" = the one on the boot medium).
	Sequence string
	// URL is minint.url=: the base URL of the network-boot tree the PE
	// was served from (minint netboot --base-url), whose files are under
	// URL/minint/. It is informational: a sequence or manifest is always
	// named by a URL of its own.
	URL string
	// Staged is the file system UUID from minint.staged=UUID=…, written
	// by `minint stage`: the PE was staged onto that file system (the
	// installed system's root) to refresh it in place, and its sequence is
	// that file system's /minint/pe/sequence.yaml.
	Staged string
	// SequenceMinVersion is minint.sequence-min-version=: a network
	// sequence's signature must carry this version or a later one (see
	// sign.Policy); a value that is not a version refuses every sequence.
	SequenceMinVersion string
	// Vars are minint.var.NAME=VALUE: the sequence's variables (see
	// sequence.Bind) and var.NAME in its conditions.
	Vars map[string]string
	// Rest holds every other parameter, key -> value ("" for bare words).
	Rest map[string]string
	// Network is ip=, vlan=, nameserver= and ifname= (see package
	// netconf); NetworkErr says why they do not parse. Unlike the other
	// options' problems it is not a warning: a PE told to use a static
	// address must not go on with another network.
	Network    netconf.Config
	NetworkErr error
	// Events is minint.events=: where the PE's JSON-lines events go
	// besides its log and status URL ("serial" adds the serial consoles,
	// for test harnesses; "" keeps the consoles for people).
	Events string
	// Serial is minint.serial=: what the serial consoles show, SerialLines
	// (default: readable log lines) or SerialScreen (the page the screen
	// shows, redrawn in place).
	Serial string
	// Bench is minint.bench=unverified-medium or unhashed-medium: apply
	// an image on the boot medium without verifying it, the floors `make
	// bench-deploy` measures against. Benchmarks only (see pe.BenchFloor).
	Bench string
	// FailWait is minint.failwait=SECONDS: how long a failed PE shows its
	// failure menu before doing what minint.done says (default 60 s; a key
	// press stops the count).
	FailWait int
}

// Values of minint.serial=.
const (
	SerialLines  = "lines"
	SerialScreen = "screen"
)

// DefaultFailWait is FailWait when minint.failwait= is not given.
const DefaultFailWait = 60

// ParseCmdline parses a kernel command line such as the contents of
// /proc/cmdline. Invalid minint.* values do not stop parsing: the default is
// kept and the problems are returned together, so that the PE can still
// boot and report them.
func ParseCmdline(s string) (Options, error) {
	o := Options{Done: DoneShell, Net: true, Rest: map[string]string{}, Vars: map[string]string{}, FailWait: DefaultFailWait, Serial: SerialLines}
	var bad []string
	netParams := map[string][]string{}
	for _, w := range splitCmdline(s) {
		k, v, hasValue := strings.Cut(w, "=")
		switch k {
		case "ip", "vlan", "nameserver", "ifname":
			netParams[k] = append(netParams[k], v)
		case "minint.events":
			switch v {
			case "serial", "":
				o.Events = v
			default:
				bad = append(bad, fmt.Sprintf("minint.events=%q (want serial)", v))
			}
		case "minint.serial":
			switch v {
			case SerialLines, SerialScreen:
				o.Serial = v
			default:
				bad = append(bad, fmt.Sprintf("minint.serial=%q (want lines or screen)", v))
			}
		case "minint.failwait":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 86400 {
				bad = append(bad, fmt.Sprintf("minint.failwait=%q (want seconds, 0 to 86400)", v))
				continue
			}
			o.FailWait = n
		case "minint.done":
			switch v {
			case DoneShell, DonePoweroff, DoneReboot:
				o.Done = v
			default:
				bad = append(bad, fmt.Sprintf("minint.done=%q (want poweroff, reboot or shell)", v))
			}
		case "minint.bench":
			if v != "unverified-medium" && v != "unhashed-medium" {
				bad = append(bad, fmt.Sprintf("minint.bench=%q (want unverified-medium or unhashed-medium)", v))
				continue
			}
			o.Bench = v
		case "minint.media":
			if v == "" {
				bad = append(bad, "minint.media needs a value (the media ID)")
			}
			o.Media = v
		case "minint.sequence":
			if v == "" {
				bad = append(bad, "minint.sequence needs a value (the sequence's URL or path)")
			}
			o.Sequence = v
		case "minint.url":
			if v == "" {
				bad = append(bad, "minint.url needs a value (the URL the PE was served from)")
			}
			o.URL = v
		case "minint.sequence-min-version":
			if _, err := sign.CompareVersions(v, v); err != nil {
				bad = append(bad, fmt.Sprintf("minint.sequence-min-version=%q: %v (every network sequence will be refused)", v, err))
			}
			o.SequenceMinVersion = v
		case "minint.staged":
			id, ok := strings.CutPrefix(v, "UUID=")
			if !ok || id == "" || strings.ContainsAny(id, "/ ") {
				bad = append(bad, fmt.Sprintf("minint.staged=%q (want UUID=<file system UUID>)", v))
				continue
			}
			o.Staged = id
		case "minint.net", "minint.shell", "minint.debug", "minint.redo":
			b, ok := parseBool(v, hasValue)
			if !ok {
				bad = append(bad, fmt.Sprintf("%s=%q (want 0 or 1)", k, v))
				continue
			}
			switch k {
			case "minint.net":
				o.Net = b
			case "minint.shell":
				o.Shell = b
			case "minint.debug":
				o.Debug = b
			case "minint.redo":
				o.Redo = b
			}
		default:
			if name, ok := strings.CutPrefix(k, "minint.var."); ok && name != "" {
				o.Vars[name] = v
				continue
			}
			if strings.HasPrefix(k, "minint.") {
				bad = append(bad, fmt.Sprintf("unknown option %s", k))
				continue
			}
			o.Rest[k] = v
		}
	}
	o.Network, o.NetworkErr = netconf.ParseCmdline(netParams)
	if o.NetworkErr != nil {
		o.NetworkErr = fmt.Errorf("kernel command line: %w", o.NetworkErr)
	}
	if o.Network.Off {
		o.Net = false
	}
	if len(bad) > 0 {
		return o, fmt.Errorf("kernel command line: %s", strings.Join(bad, "; "))
	}
	return o, nil
}

func parseBool(v string, hasValue bool) (bool, bool) {
	if !hasValue {
		return true, true // a bare "minint.debug" means on
	}
	switch strings.ToLower(v) {
	case "1", "y", "yes", "true", "on":
		return true, true
	case "0", "n", "no", "false", "off":
		return false, true
	}
	return false, false
}

// splitCmdline splits at spaces outside double quotes and removes the
// quotes, as the kernel does (param="a b" is one parameter).
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
