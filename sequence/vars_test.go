package sequence

import (
	"errors"
	"strings"
	"testing"
)

// fleet is a sequence that names each host by rules.
const fleet = `version: 1
name: fleet
vars:
  hostname: pc-${machine.serial}
  role: workstation
  site: ~
  server: ~
rules:
  - match: {mac: "52:54:00:12:34:56"}
    vars: {hostname: web1, role: server}
  - match: {model: "ThinkPad*", vendor: lenovo}
    vars: {role: laptop, site: branch}
  - vars: {site: hq, server: 10.0.2.2}
steps:
  - type: select-disk
    disk: {serial: "${var.role}-disk"}
  - type: partition
    partitions: [{name: root, size: rest, fs: ext4}]
  - type: format
  - type: mount
  - type: fetch
    manifest: http://${var.server}:8080/${var.role}/manifest.json
  - type: apply-image
  - type: setup
    hostname: ${var.hostname}
    files:
      - path: /etc/site
        content: |
          site ${var.site} serial ${machine.serial} mac ${machine.mac}
          literal $${var.site} and shell ${HOME}
  - type: bootfiles
  - type: run
    name: hello
    shell: echo "${var.hostname}"
    when: var.role == server
`

func TestBind(t *testing.T) {
	seq, err := Parse("fleet.yaml", []byte(fleet))
	if err != nil {
		t.Fatal(err)
	}
	if len(seq.Vars) != 4 || len(seq.Rules) != 3 || seq.Rules[1].Line != 11 || seq.Vars[2].HasDefault {
		t.Fatalf("vars %+v rules %+v", seq.Vars, seq.Rules)
	}
	// Loaded: stand-ins (a default, else the name), so the plan reads.
	if f := seq.Steps[4].(*Fetch); f.Manifest != "http://server:8080/workstation/manifest.json" {
		t.Errorf("loaded manifest %q", f.Manifest)
	}
	server := Machine{Vendor: "QEMU", Model: "Standard PC", Serial: "S1", MACs: []string{"52:54:00:12:34:56", "52:54:00:00:00:02"}}
	laptop := Machine{Vendor: "LENOVO", Model: "ThinkPad T14", Serial: "PF2ABC", MACs: []string{"8C:16:45:00:00:01"}}
	for _, c := range []struct {
		name     string
		m        Machine
		given    map[string]string
		manifest string
		hostname string
		file     string
		hello    bool
		from     string
	}{
		{"first rule by mac", server, nil, "http://10.0.2.2:8080/server/manifest.json", "web1", "site hq serial S1 mac 52:54:00:12:34:56\n", true, "rule at line 9"},
		// The second MAC matches too: a rule's mac is any NIC's.
		{"second nic", Machine{Serial: "S2", MACs: []string{"52:54:00:00:00:09", "52:54:00:12:34:56"}}, nil, "http://10.0.2.2:8080/server/manifest.json", "web1", "site hq serial S2 mac 52:54:00:00:00:09\n", true, "rule at line 9"},
		// model and vendor both match (ignoring case); site from the
		// earlier rule wins over the catch-all's.
		{"glob rule", laptop, nil, "http://10.0.2.2:8080/laptop/manifest.json", "pc-PF2ABC", "site branch serial PF2ABC mac 8c:16:45:00:00:01\n", false, "default"},
		{"command line wins", laptop, map[string]string{"role": "kiosk", "hostname": "k1"}, "http://10.0.2.2:8080/kiosk/manifest.json", "k1", "site branch serial PF2ABC mac 8c:16:45:00:00:01\n", false, "minint.var"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, bd, err := seq.Bind(c.m, c.given)
			if err != nil {
				t.Fatal(err)
			}
			if b.Digest != seq.Digest || len(b.Steps) != len(seq.Steps) {
				t.Errorf("bound digest %s, %d steps", b.Digest, len(b.Steps))
			}
			if f := b.Steps[4].(*Fetch); f.Manifest != c.manifest {
				t.Errorf("manifest %q, want %q", f.Manifest, c.manifest)
			}
			s := b.Steps[6].(*Setup)
			if s.Hostname != c.hostname {
				t.Errorf("hostname %q, want %q", s.Hostname, c.hostname)
			}
			if want := c.file + "literal ${var.site} and shell ${HOME}\n"; s.Files[0].Content != want {
				t.Errorf("file %q, want %q", s.Files[0].Content, want)
			}
			if got := b.Steps[0].(*SelectDisk).Disk.Serial; got != bd.Values["role"]+"-disk" {
				t.Errorf("disk rule serial %q", got)
			}
			if bd.From["hostname"] != c.from {
				t.Errorf("hostname from %q, want %q", bd.From["hostname"], c.from)
			}
			hello := b.Steps[8]
			if ok, err := hello.Base().When.Eval(FactMap{"var.role": bd.Values["role"]}); err != nil || ok != c.hello {
				t.Errorf("when %s: %v %v", hello.Base().When.Src, ok, err)
			}
			if got := hello.(*Command).Shell; got != `echo "`+c.hostname+`"` {
				t.Errorf("shell %q", got)
			}
		})
	}
	// The loaded sequence is not changed by binding.
	if seq.Steps[6].(*Setup).Hostname != "pc-serial" {
		t.Errorf("loaded hostname %q after Bind", seq.Steps[6].(*Setup).Hostname)
	}
}

// TestBindErrors: what only the machine can tell stops the run before
// any step, naming the place in the file.
func TestBindErrors(t *testing.T) {
	for _, c := range []struct {
		name, src string
		m         Machine
		given     map[string]string
		want      string
	}{
		{"no value", head + "  - type: run\n    shell: echo ${var.site}\nvars: {site: ~}\n", Machine{Serial: "S1"}, nil,
			"seq.yaml:4:12: ${var.site} has no value on this machine: it has no default, no rule sets it for mac (none), model (none), serial S1"},
		{"no serial", head + "  - type: run\n    shell: echo ${machine.serial}\n", Machine{MACs: []string{"52:54:00:12:34:56"}}, nil,
			"seq.yaml:4:12: ${machine.serial}: this machine does not report its serial"},
		{"default needs serial", head + "  - type: run\n    shell: echo ${var.h}\nvars: {h: \"pc-${machine.serial}\"}\n", Machine{}, nil,
			"seq.yaml:4:12: ${var.h}: h's value (default) uses ${machine.serial}, which this machine does not report"},
		// A value a step refuses is refused when bound, with its place.
		{"bad bound url", head + "  - type: pull-state\n    from: ${var.url}\n    keys: [RWQarGru80GFAMX1kMiDeCGFtdAU7JdmkyGf8GOuIZOZGxe8YDVqTbcn]\nvars: {url: http://x/s}\n", Machine{}, map[string]string{"url": "ftp://evil/s"},
			`seq.yaml:3:9: pull-state from "ftp://evil/s": give an http(s) URL or an absolute directory`},
	} {
		t.Run(c.name, func(t *testing.T) {
			seq, err := Parse("seq.yaml", []byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = seq.Bind(c.m, c.given)
			if err == nil || !errors.Is(err, ErrSequence) || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestBoundValueIsText: a value is put in as text; YAML or references in
// it stay text.
func TestBoundValueIsText(t *testing.T) {
	seq, err := Parse("seq.yaml", []byte(head+"  - type: run\n    command: [echo, \"${var.h}\"]\n    env: {X: \"${var.h}\"}\nvars: {h: a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	v := "x]\n  - type: clean\nusers: [{name: root}] ${var.h} $${var.h}"
	b, _, err := seq.Bind(Machine{}, map[string]string{"h": v})
	if err != nil {
		t.Fatal(err)
	}
	c := b.Steps[0].(*Command)
	if len(b.Steps) != 1 || len(c.Command) != 2 || c.Command[1] != v || c.Env["X"] != v {
		t.Errorf("bound %d steps, command %q env %q", len(b.Steps), c.Command, c.Env)
	}
}

func TestVarsLoadErrors(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"undeclared", head + "  - type: run\n    shell: echo ${var.hostnme}\nvars: {hostname: a}\n", "4:12: ${var.hostnme}: no such variable: declare it under vars:"},
		{"unknown machine key", head + "  - type: run\n    shell: echo ${machine.asset}\n", "4:12: ${machine.asset}: unknown machine key (known: mac, model, serial, uuid, vendor)"},
		{"in a name", head + "  - type: run\n    name: x-${var.h}\n    shell: a\nvars: {h: a}\n", "4:11: name: no ${…} here"},
		{"in when", head + "  - type: run\n    shell: a\n    when: var.h == ${var.h}\nvars: {h: a}\n", "5:11: when: no ${…} here"},
		{"rule sets undeclared", head + "  - type: reboot\nvars: {hostname: a}\nrules:\n  - match: {serial: X1}\n    vars: {hostnme: b}\n", `7:12: rule sets "hostnme", which vars: does not declare: did you mean "hostname"?`},
		{"rule bad key", head + "  - type: reboot\nvars: {h: a}\nrules:\n  - match: {asset-tag: X1}\n    vars: {h: b}\n", `6:13: unknown key "asset-tag"`},
		{"rule bad glob", head + "  - type: reboot\nvars: {h: a}\nrules:\n  - match: {model: \"[ab\"}\n    vars: {h: b}\n", `match model: bad glob "[ab"`},
		{"rule without vars", head + "  - type: reboot\nvars: {h: a}\nrules:\n  - match: {model: x}\n", "seq.yaml:6:10: rule sets no variables"},
		{"var in a value", head + "  - type: reboot\nvars: {h: a, g: \"${var.h}\"}\n", "${var.h}: a variable's value may use ${machine.…} only"},
		{"machine key in a value", head + "  - type: reboot\nvars: {h: \"${machine.asset}\"}\n", "${machine.asset}: unknown machine key"},
		{"bad var name", head + "  - type: reboot\nvars: {\"a b\": x}\n", `variable name "a b"`},
		{"vars not a mapping", head + "  - type: reboot\nvars: [a]\n", "vars must be a mapping"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("seq.yaml", []byte(c.src))
			if err == nil || !errors.Is(err, ErrSequence) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "seq.yaml:") {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}
