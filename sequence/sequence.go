package sequence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/strictyaml"
	"net/url"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/netconf"
)

// Sequence is a loaded, validated task sequence.
//
//	version: 1
//	name: deploy-debian
//	status-url: http://10.0.2.2:8080/status   # optional: events are POSTed here
//	network:                                  # optional: static addresses (NetworkInterface)
//	  - {interface: eth0, address: 192.0.2.10/24, gateway: 192.0.2.1, dns: [192.0.2.53]}
//	steps:
//	  - type: requirements
//	    min-memory: 512MiB
//	  - type: select-disk
//	    disk: {first-largest: true}
//	  - type: partition
//	    partitions:
//	      - {name: esp, size: 256MiB, type: esp, fs: vfat}
//	      - {name: root, size: rest, type: linux, fs: ext4}
//	  - type: format
//	  - type: mount
//	  - type: fetch
//	    manifest: http://10.0.2.2:8080/debian/manifest.json
//	  - type: apply-image
//	  - type: bootfiles
//	  - type: reboot
//
// Optional vars: and rules: give steps per-machine values (${var.NAME},
// ${machine.serial}…; see vars.go).
//
// Every step has `type`, an optional `name` (defaults to the type; names must
// be unique because the journal records steps by name) and an optional `when`
// condition; the other keys depend on the type (see the Step types in
// steps.go). Unknown keys, values of the wrong type, missing parameters and
// unknown step types are load errors naming the line.
type Sequence struct {
	Version   int
	Name      string
	StatusURL string
	// Network is the static network configuration of the network: key
	// (nil: the network the PE brought up is kept); see NetworkInterface.
	Network *netconf.Config
	Steps   []Step
	// Vars and Rules give steps per-machine values (see vars.go and
	// Bind).
	Vars  []Var
	Rules []Rule
	// Digest is the SHA-256 of the file's bytes: the journal belongs to one
	// sequence, and a different sequence never resumes another's journal.
	Digest string
	src    []byte // for Bind
	file   string
	refs   bool // step values use ${…}
}

// Step is one entry of a sequence. The concrete types are *Requirements,
// *SelectDisk, *Partition, *Format, *Mount, *Fetch, *ApplyImage, *BootFiles,
// *Setup, *Command (type run), *Power, *CaptureImage, *CaptureState,
// *PullState and *Clean.
type Step interface {
	// Base gives the fields every step has.
	Base() *StepBase
	// Describe is one line for plans and logs.
	Describe() string
	// check validates values beyond their types; errors should be nodeErr
	// on the offending key's node.
	check(n *ast.MappingNode) error
}

// StepBase holds the keys common to all steps.
type StepBase struct {
	Type string    `yaml:"type" json:"type"`
	Name string    `yaml:"name" json:"name"`
	When Condition `yaml:"when" json:"when,omitempty"`
	// Timeout, Retries, RetryDelay and ContinueOnError are how a step
	// meets a flaky world: see flaky.go for which steps may have them.
	Timeout         Duration `yaml:"timeout" json:"timeout,omitempty"`
	Retries         int      `yaml:"retries" json:"retries,omitempty"`
	RetryDelay      Duration `yaml:"retry-delay" json:"retry-delay,omitempty"`
	ContinueOnError bool     `yaml:"continue-on-error" json:"continue-on-error,omitempty"`
	Line            int      `yaml:"-" json:"line"` // where the step starts in the file
}

func (b *StepBase) Base() *StepBase { return b }

// stepTypes maps a `type:` to a constructor of its zero value.
var stepTypes = map[string]func() Step{
	"requirements": func() Step { return &Requirements{} },
	"select-disk":  func() Step { return &SelectDisk{} },
	"partition":    func() Step { return &Partition{} },
	"format":       func() Step { return &Format{} },
	"mount":        func() Step { return &Mount{} },
	"fetch":        func() Step { return &Fetch{} },
	"apply-image":  func() Step { return &ApplyImage{} },
	"bootfiles":    func() Step { return &BootFiles{} },
	"setup":        func() Step { return &Setup{} },
	"pull-state":   func() Step { return &PullState{} },
	"run":          func() Step { return &Command{} },
	"reboot":       func() Step { return &Power{} },
	"poweroff":     func() Step { return &Power{} },
	// capture-image starts with defaults that a mapping only overrides
	// (generalize on, check on).
	"capture-image": newCaptureImage,
	"capture-state": func() Step { return &CaptureState{} },
	"clean":         func() Step { return &Clean{} },
}

// StepTypes lists the step types a sequence may use.
func StepTypes() []string {
	var s []string
	for k := range stepTypes {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// MaxSize is the largest sequence a PE reads, from its boot medium or a
// server: a long one is a few KiB.
const MaxSize = 1 << 20

// LoadFile reads and validates a sequence file, at most MaxSize bytes.
func LoadFile(path string) (*Sequence, error) {
	b, err := bounded.ReadFile(path, MaxSize)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse validates a sequence. name is used in error messages only.
func Parse(name string, src []byte) (*Sequence, error) {
	seq, err := parse(src, loadBinding)
	if err == nil {
		err = checkOrder(seq)
	}
	if err != nil {
		return nil, toLoadError(name, err)
	}
	sum := sha256.Sum256(src)
	seq.Digest = hex.EncodeToString(sum[:])
	// Bind reads the very bytes the digest is of, whatever the caller
	// does with its buffer later.
	seq.src, seq.file = bytes.Clone(src), name
	return seq, nil
}

// parse reads and validates everything but the order of the steps, with
// the references in step values put in by bind's binding for the
// declared variables.
func parse(src []byte, bind func([]Var) *binding) (*Sequence, error) {
	f, err := strictyaml.Parse(src)
	if err != nil {
		return nil, err
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return nil, fmt.Errorf("want exactly one YAML document with version and steps")
	}
	root, ok := strictyaml.Unwrap(f.Docs[0].Body).(*ast.MappingNode)
	if !ok {
		return nil, nodeErr(f.Docs[0].Body, "the sequence must be a mapping with version and steps")
	}
	seq := &Sequence{}
	var stepsNode, rulesNode ast.Node
	seen := map[string]bool{}
	for _, kv := range root.Values {
		key := strictyaml.KeyString(kv.Key)
		if seen[key] {
			return nil, nodeErr(kv.Key, "duplicate key %q", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "version":
			err = yaml.NodeToValue(kv.Value, &seq.Version)
			if err == nil && seq.Version != 1 {
				err = nodeErr(kv.Value, "version %d is not supported (this build reads version 1)", seq.Version)
			}
		case "name":
			err = yaml.NodeToValue(kv.Value, &seq.Name)
		case "status-url":
			err = yaml.NodeToValue(kv.Value, &seq.StatusURL)
			if err == nil {
				err = checkURL(kv.Value, seq.StatusURL)
			}
		case "network":
			seq.Network, err = parseNetwork(kv.Value)
		case "vars":
			seq.Vars, err = parseVars(kv.Value)
		case "rules":
			rulesNode = kv.Value
		case "steps":
			stepsNode = kv.Value
		default:
			err = strictyaml.UnknownKey(kv.Key, key, []string{"name", "network", "rules", "status-url", "steps", "vars", "version"})
		}
		if err != nil {
			return nil, err
		}
	}
	if !seen["version"] {
		return nil, nodeErr(root, "missing key version (write version: 1)")
	}
	if stepsNode == nil {
		return nil, nodeErr(root, "missing key steps")
	}
	list, ok := strictyaml.Unwrap(stepsNode).(*ast.SequenceNode)
	if !ok || len(list.Values) == 0 {
		return nil, nodeErr(stepsNode, "steps must be a non-empty list")
	}
	if rulesNode != nil {
		// After the loop: rules may come before vars in the file.
		var err error
		if seq.Rules, err = parseRules(rulesNode, seq.Vars); err != nil {
			return nil, err
		}
	}
	b := bind(seq.Vars)
	if err := expandSteps(list, b); err != nil {
		return nil, err
	}
	seq.refs = b.used
	names := map[string]int{}
	for _, sn := range list.Values {
		st, err := parseStep(strictyaml.Unwrap(sn))
		if err != nil {
			return nil, err
		}
		b := st.Base()
		if prev, dup := names[b.Name]; dup {
			return nil, nodeErr(sn, "step name %q already used by the step at line %d (give one a name:)", b.Name, prev)
		}
		names[b.Name] = b.Line
		seq.Steps = append(seq.Steps, st)
	}
	return seq, nil
}

// scalarString is the text of a scalar value (a string, number or bool).
func scalarString(n ast.Node) (string, error) {
	if s, ok := strictyaml.Scalar(n); ok {
		return s, nil
	}
	return "", nodeErr(n, "want a single value here, not %s", n.Type())
}

func parseStep(n ast.Node) (Step, error) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return nil, nodeErr(n, "a step must be a mapping with a type")
	}
	var typ string
	var typNode ast.Node
	for _, kv := range m.Values {
		if strictyaml.KeyString(kv.Key) == "type" {
			typNode = kv.Value
			typ, _ = scalarString(kv.Value)
		}
	}
	if typNode == nil {
		return nil, nodeErr(m, "step has no type (one of %s)", strings.Join(StepTypes(), ", "))
	}
	mk, ok := stepTypes[typ]
	if !ok {
		if s := strictyaml.Suggest(typ, StepTypes()); s != "" {
			return nil, nodeErr(typNode, "unknown step type %q: did you mean %q?", typ, s)
		}
		return nil, nodeErr(typNode, "unknown step type %q (want one of %s)", typ, strings.Join(StepTypes(), ", "))
	}
	st := mk()
	if err := strictyaml.Decode(m, st); err != nil {
		return nil, err
	}
	b := st.Base()
	b.Line = m.GetToken().Position.Line
	if b.Name == "" {
		b.Name = typ
	}
	if err := st.check(m); err != nil {
		return nil, err
	}
	if err := checkFlaky(b, m); err != nil {
		return nil, err
	}
	return st, nil
}

// field finds the value node of key in m (for positioned errors); m itself
// when absent.
func field(m *ast.MappingNode, key string) ast.Node {
	for _, kv := range m.Values {
		if strictyaml.KeyString(kv.Key) == key {
			return kv.Value
		}
	}
	return m
}

func has(m *ast.MappingNode, key string) bool {
	for _, kv := range m.Values {
		if strictyaml.KeyString(kv.Key) == key {
			return true
		}
	}
	return false
}

func checkURL(n ast.Node, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nodeErr(n, "%q is not an http(s) URL", s)
	}
	return nil
}

// checkOrder rejects sequences whose steps cannot work in that order, e.g.
// apply-image before any mount, so that `minint sequence check` catches them
// on the host.
func checkOrder(seq *Sequence) error {
	var haveDisk, havePart, haveMount, haveFetch, haveApply, haveBoot bool
	// An in-place refresh (mount existing) has its own rules: see
	// package pe (refresh.go) for why this order is the fail-safe one.
	var existing, haveCapture, haveClean, stageFetch bool
	// A step with when: may not run, and a guard that may not run does not
	// guard: what clean (and apply-image in a refresh) rely on must come
	// from steps without when:. A conditional step still counts where its
	// presence is the danger (a clean before capture-state).
	var guardExisting, guardCapture, guardFetch, guardClean bool
	// A power step after a fetch ends the boot that verified the package:
	// the journal does not carry the verified image across it (package
	// pe, distrust), so what uses the package needs a fetch after it.
	var cut *StepBase
	const conditional = " (a step with when: may not run: it guards nothing)"
	for _, st := range seq.Steps {
		if m, ok := st.(*Mount); ok && m.Existing {
			existing = true
		}
	}
	for _, st := range seq.Steps {
		b := st.Base()
		always := b.When.Src == ""
		bad := func(format string, a ...any) error {
			return &strictyaml.Error{Line: b.Line, Msg: fmt.Sprintf("step %q: ", b.Name) + fmt.Sprintf(format, a...)}
		}
		noPackage := func(what string) error {
			return bad("%s needs the package verified in the same boot, but the power step %q (line %d) ends the boot of the fetch before it: add a fetch step after %q, or move %q after %s", what, cut.Name, cut.Line, cut.Name, cut.Name, what)
		}
		switch st.(type) {
		case *Power:
			if haveFetch {
				cut = b
			}
		case *Requirements:
			if havePart || haveClean {
				return bad("requirements must be checked before anything destructive (move it before the partition or clean step)")
			}
		case *SelectDisk:
			haveDisk = true
		case *Partition:
			if existing {
				return bad("a sequence that refreshes an existing root (mount existing: true) must not partition: that would destroy the user state in /minint")
			}
			if !haveDisk {
				return bad("partition needs a select-disk step before it")
			}
			havePart = true
		case *Format:
			if existing {
				return bad("a sequence that refreshes an existing root (mount existing: true) must not format: that would destroy the user state in /minint")
			}
			if !havePart {
				return bad("format needs a partition step before it")
			}
		case *Mount:
			if m := st.(*Mount); m.Existing {
				if haveMount {
					return bad("only one mount step may mount the existing root")
				}
			} else if existing {
				return bad("mount: a refresh mounts only the existing root (existing: true)")
			} else if !havePart {
				return bad("mount needs a partition step before it")
			}
			haveMount = true
			guardExisting = guardExisting || (always && st.(*Mount).Existing)
		case *CaptureState:
			if !haveMount {
				return bad("capture-state needs a mount step before it (it captures from the mounted root)")
			}
			if haveClean {
				return bad("capture-state after clean would capture the emptied root over the good state (move it before clean)")
			}
			haveCapture = true
			guardCapture = guardCapture || always
		case *Clean:
			switch {
			case !existing:
				return bad("clean empties an existing root: it needs a mount step with existing: true before it")
			case !haveFetch || !stageFetch:
				return bad("clean needs a fetch step before it that stages the package and verifies it in full (not mode: stream): nothing may be deleted before the new system is known good")
			case !haveCapture:
				return bad("clean needs a capture-state step before it: the user state must be captured before anything is deleted")
			case haveApply:
				return bad("clean after apply-image would delete the applied system")
			case cut != nil:
				return noPackage("clean")
			case !guardExisting:
				return bad("clean needs the mount of the existing root (existing: true) to run unconditionally before it" + conditional)
			case !guardFetch:
				return bad("clean needs a staging fetch step that runs unconditionally before it" + conditional)
			case !guardCapture:
				return bad("clean needs a capture-state step that runs unconditionally before it" + conditional)
			}
			haveClean = true
			guardClean = guardClean || always
		case *Fetch:
			if f := st.(*Fetch); !haveMount && f.Mode != "stream" && !strings.HasPrefix(f.Manifest, "medium:") {
				return bad("fetch stages into the target disk's /minint folder, so it needs a mount step before it (or mode: stream)")
			}
			haveFetch, cut = true, nil
			if f := st.(*Fetch); f.Mode != "stream" {
				stageFetch = true
				guardFetch = guardFetch || always
			}
		case *ApplyImage:
			if existing && !haveClean {
				return bad("in a refresh, apply-image needs a clean step before it (clean makes the PE the boot default before anything is deleted)")
			}
			if existing && !guardClean {
				return bad("in a refresh, apply-image needs a clean step that runs unconditionally before it" + conditional)
			}
			if !haveFetch {
				return bad("apply-image needs a fetch step before it")
			}
			if cut != nil {
				return noPackage("apply-image")
			}
			if !haveMount {
				return bad("apply-image needs a mount step before it")
			}
			if haveBoot {
				return bad("apply-image after bootfiles would make a disk bootable before its image is in place")
			}
			haveApply = true
		case *BootFiles, *Setup:
			if !haveMount || !haveApply {
				return bad("%s needs mount and apply-image steps before it", b.Type)
			}
			if _, ok := st.(*Setup); ok && haveBoot {
				return bad("setup must come before bootfiles, which arranges the first boot into setup")
			}
			if _, ok := st.(*BootFiles); ok {
				haveBoot = true
			}
		}
	}
	return nil
}
