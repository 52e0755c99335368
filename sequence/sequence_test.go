package sequence

import (
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"strings"
	"testing"
	"time"
)

func TestLoadGood(t *testing.T) {
	seq, err := LoadFile("testdata/deploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if seq.Name != "deploy-debian" || len(seq.Steps) != 12 || len(seq.Digest) != 64 {
		t.Fatalf("loaded %+v", seq)
	}
	p := seq.Steps[2].(*Partition)
	if p.Name != "partition-uefi" || p.Table != "gpt" || len(p.Partitions) != 2 || p.Partitions[0].Size.String() != "256MiB" || p.Line != 13 {
		t.Errorf("partition step %+v", p)
	}
	if ok, _ := p.When.Eval(FactMap{"firmware": "uefi"}); !ok {
		t.Error("when: firmware == uefi false under uefi")
	}
	r := seq.Steps[0].(*Requirements)
	if r.MinMemory != 256<<20 || r.MinDisk != 1<<30 || r.MinCPUs != 1 {
		t.Errorf("requirements %+v", r)
	}
	f := seq.Steps[6].(*Fetch)
	if f.Mode != "auto" || f.Retries != 8 || f.Timeout.String() != "20m0s" || f.Dir() != "http://10.0.2.2:8080/debian" {
		t.Errorf("fetch %+v base %s", f, f.Dir())
	}
	s := seq.Steps[8].(*Setup)
	if s.Hostname != "web1" || s.Users[0].SSHKeys[0] != "ssh-ed25519 AAAAC3Nza alice@example" || s.Files[0].Content != "deployed by minint\n" {
		t.Errorf("setup %+v", s.Answer)
	}
	if seq.Steps[11].Base().Type != "reboot" || seq.Steps[11].Base().Name != "reboot" {
		t.Errorf("last step %+v", seq.Steps[11].Base())
	}
}

const head = "version: 1\nsteps:\n"

func TestLoadNetwork(t *testing.T) {
	seq, err := Parse("seq.yaml", []byte(`version: 1
network:
  - interface: eth0
    vlan: 20
    address: 192.0.2.10/24
    gateway: 192.0.2.1
    dns: [192.0.2.53]
  - {mac: "52:54:00:12:34:57", dhcp: true}
steps:
  - type: reboot
`))
	if err != nil {
		t.Fatal(err)
	}
	n := seq.Network
	if n == nil || len(n.Interfaces) != 2 || len(n.Names) != 1 {
		t.Fatalf("network %+v", n)
	}
	if got := n.Interfaces[0].String(); got != "eth0.20 (VLAN 20 on eth0) 192.0.2.10/24 via 192.0.2.1 dns 192.0.2.53" {
		t.Errorf("first interface %q", got)
	}
	if i := n.Interfaces[1]; !i.DHCP || i.Name != n.Names[0].Name || n.Names[0].MAC.String() != "52:54:00:12:34:57" {
		t.Errorf("second interface %+v, names %+v", i, n.Names)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		want      string
	}{
		{"unknown top key", "version: 1\nstepz: []\n", 2, `2:1: unknown key "stepz": did you mean "steps"?`},
		{"far top key", "version: 1\ncolour: red\nsteps: []\n", 2, `unknown key "colour" (want name, network, rules, status-url, steps, vars, version)`},
		{"snake top key", "version: 1\nstatus_url: http://x/\nsteps: []\n", 2, `unknown key "status_url": did you mean "status-url"?`},
		{"snake step type", head + "  - type: select_disk\n", 3, `3:11: unknown step type "select_disk": did you mean "select-disk"?`},
		{"old rule key", head + "  - type: select-disk\n    disk: {transport: virtio, min_size: 8G}\n", 4, `4:31: unknown key "min_size": did you mean "min-size"?`},
		{"old rule keyword", head + "  - type: select-disk\n    disk: {first_largest: true}\n", 4, `unknown key "first_largest": did you mean "first-largest"?`},
		{"layout near miss", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions:\n      - {name: root, sise: rest, fs: ext4}\n", 7, `7:22: unknown key "sise": did you mean "size"?`},
		{"old answer key", head + "  - type: setup\n    restore_state: {}\n", 4, `unknown key "restore_state": did you mean "restore-state"?`},
		{"old user key", head + "  - type: setup\n    users: [{name: a, password_hash: x}]\n", 4, `unknown key "password_hash": did you mean "password-hash"?`},
		{"old generalize key", head + "  - type: capture-image\n    generalize: {machine_id: false}\n    destination: {url: http://h/x.wim}\n", 4, `unknown key "machine_id": did you mean "machine-id"?`},
		{"pull-state without keys", head + "  - type: pull-state\n    from: http://h/s/pc1\n", 3, "pull-state needs keys:"},
		{"pull-state bad key", head + "  - type: pull-state\n    from: http://h/s/pc1\n    keys: [\"minint-ed25519-private AAAA\"]\n", 5, "pull-state keys[0]: bad key"},
		{"restore-state bad key", head + "  - type: setup\n    restore-state: {keys: [nope]}\n", 3, "restore-state: keys[0]: bad key"},
		{"no version", "steps:\n  - type: reboot\n", 1, "missing key version"},
		{"bad version", "version: 2\nsteps:\n  - type: reboot\n", 1, "version 2"},
		{"unknown step type", head + "  - type: reboot\n  - type: frobnicate\n", 4, `unknown step type "frobnicate"`},
		{"no type", head + "  - name: x\n", 3, "no type"},
		{"unknown step key", head + "  - type: run\n    shell: ls\n    colour: red\n", 5, `5:5: unknown key "colour" (want command, continue-on-error, env, in-target, name, retries, retry-delay, shell, timeout, type, when)`},
		{"retries on partition", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n    retries: 2\n", 7, `7:14: retries: a failed partition step is not retried`},
		{"retries on apply", head + "  - type: apply-image\n    retries: 1\n", 4, "a failed apply-image step is not retried"},
		{"retries on requirements", head + "  - type: requirements\n    min-cpus: 1\n    retries: 1\n", 5, "(retries are for capture-image, fetch, pull-state, run, select-disk)"},
		{"negative retries", head + "  - type: run\n    shell: a\n    retries: -1\n", 5, "5:14: retries must not be negative"},
		{"too many retries", head + "  - type: run\n    shell: a\n    retries: 1000\n", 5, "at most 100"},
		{"delay without retries", head + "  - type: run\n    shell: a\n    retry-delay: 5s\n", 5, "5:18: retry-delay without retries"},
		{"bad retry delay", head + "  - type: run\n    shell: a\n    retries: 2\n    retry-delay: soon\n", 6, "bad duration"},
		{"timeout on any step", head + "  - type: select-disk\n    disk: {transport: virtio}\n    timeout: never\n", 5, "bad duration"},
		{"continue on clean", head + "  - type: clean\n    continue-on-error: true\n", 4, `4:24: continue-on-error: a failed clean step must stop the run: it guards the fail-safe order`},
		{"continue on capture-state", head + "  - type: capture-state\n    continue-on-error: true\n", 4, "a failed capture-state step must stop the run"},
		{"continue on requirements", head + "  - type: requirements\n    min-cpus: 1\n    continue-on-error: true\n", 5, "a failed requirements step must stop the run"},
		{"continue on fetch", head + "  - type: fetch\n    manifest: http://x/m.json\n    mode: stream\n    continue-on-error: true\n", 6, "a failed fetch step must stop the run"},
		{"wrong type", head + "  - type: requirements\n    min-cpus: many\n", 4, "cannot unmarshal"},
		{"bad size", head + "  - type: requirements\n\n    min-memory: 12 parsecs\n", 5, `5:17: invalid size "12 parsecs": unknown unit "parsecs"`},
		{"percent size", head + "  - type: requirements\n    min-disk: 50%\n", 4, `4:15: invalid size "50%": a percentage is not a size here`},
		{"bad partition size", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions:\n      - {name: root, size: 12 parsecs, fs: ext4}\n", 7, `7:28: invalid size "12 parsecs"`},
		{"bad duration", head + "  - type: run\n    shell: ls\n    timeout: forever\n", 5, "bad duration"},
		{"bad min-version", head + "  - type: fetch\n    manifest: http://h/m.json\n    min-version: 12.x\n", 5, `5:18: version "12.x": want dot-separated numbers`},
		{"missing param", head + "  - type: run\n    timeout: 5m\n", 3, "exactly one of command"},
		{"bad firmware", head + "  - type: requirements\n    firmware: [coreboot]\n", 4, `firmware "coreboot"`},
		{"bad condition", head + "  - type: reboot\n    when: firmwear == uefi\n", 4, `unknown fact "firmwear"`},
		{"bad operator", head + "  - type: reboot\n    when: firmware = uefi\n", 4, "bad operator"},
		{"duplicate name", head + "  - type: run\n    shell: a\n  - type: run\n    shell: b\n", 5, `"run" already used`},
		{"bad url", head + "  - type: run\n    shell: a\n  - type: fetch\n    manifest: ftp://x/m.json\n    mode: stream\n", 6, "not an http(s) URL"},
		{"bad layout", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions:\n      - {name: root, size: lots, fs: ext4}\n", 7, "size"},
		{"order", head + "  - type: format\n", 3, "needs a partition step"},
		{"late requirements", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: requirements\n    min-cpus: 2\n", 7, "before anything destructive"},
		{"fetch before mount", head + "  - type: fetch\n    manifest: http://x/m.json\n", 3, "needs a mount step"},
		{"bad answer", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: mount\n  - type: setup\n    hostname: \"no way\"\n", 8, "hostname"},
		{"setup before apply", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: mount\n  - type: setup\n    hostname: a\n", 8, "apply-image steps before it"},
		{"bootfiles before setup", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: mount\n  - type: fetch\n    manifest: http://x/m.json\n  - type: apply-image\n  - type: bootfiles\n  - type: setup\n    hostname: a\n", 12, "setup must come before bootfiles"},
		{"reboot between fetch and apply", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: mount\n  - type: fetch\n    manifest: http://x/m.json\n  - type: reboot\n  - type: apply-image\n", 11, `step "apply-image": apply-image needs the package verified in the same boot, but the power step "reboot" (line 10) ends the boot of the fetch before it`},
		{"conditional poweroff between fetch and apply", head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: mount\n  - type: fetch\n    manifest: http://x/m.json\n  - type: poweroff\n    when: firmware == uefi\n  - type: apply-image\n", 12, `the power step "poweroff" (line 10)`},
		{"reboot between fetch and clean", head + "  - type: mount\n    existing: true\n  - type: capture-state\n  - type: fetch\n    manifest: http://x/m.json\n  - type: reboot\n  - type: clean\n", 9, `clean needs the package verified in the same boot, but the power step "reboot" (line 8)`},
		{"not yaml", "version: 1\nsteps: [\n", 0, ""},
		{"steps not list", "version: 1\nsteps: 3\n", 2, "non-empty list"},
		{"bad rule", head + "  - type: select-disk\n    disk: {colour: blue}\n", 4, "colour"},
		{"network bad address", "version: 1\nnetwork:\n  - interface: eth0\n    address: 192.0.2.300/24\nsteps:\n  - type: reboot\n", 4, `address "192.0.2.300/24"`},
		{"network gateway outside", "version: 1\nnetwork:\n  - {interface: eth0, address: 192.0.2.10/24, gateway: 198.51.100.1}\nsteps:\n  - type: reboot\n", 3, "gateway 198.51.100.1 is not in 192.0.2.0/24"},
		{"network no address", "version: 1\nnetwork:\n  - {interface: eth0}\nsteps:\n  - type: reboot\n", 3, "needs address"},
		{"network both names", "version: 1\nnetwork:\n  - {interface: eth0, mac: 52:54:00:12:34:56, dhcp: true}\nsteps:\n  - type: reboot\n", 3, "interface or mac"},
		{"network bad vlan", "version: 1\nnetwork:\n  - {interface: eth0, vlan: 5000, dhcp: true}\nsteps:\n  - type: reboot\n", 3, "4094"},
		{"network unknown key", "version: 1\nnetwork:\n  - {interface: eth0, adress: 192.0.2.10/24}\nsteps:\n  - type: reboot\n", 3, `3:23: unknown key "adress": did you mean "address"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("seq.yaml", []byte(c.src))
			if err == nil {
				t.Fatal("accepted")
			}
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrSequence) {
				t.Fatalf("error %T %v is not a LoadError", err, err)
			}
			if c.line > 0 && le.Line != c.line {
				t.Errorf("line %d, want %d: %v", le.Line, c.line, err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "seq.yaml:") {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestFlakyKeys: the keys every step takes for a flaky world, and what
// a plan says about them.
func TestFlakyKeys(t *testing.T) {
	seq, err := Parse("s.yaml", []byte(head+`  - type: select-disk
    disk: {transport: usb}
    retries: 5
    retry-delay: 1m
    timeout: 30s
  - type: run
    shell: "false"
    retries: 2
    continue-on-error: true
  - type: run
    name: quick
    shell: "true"
    timeout: 90s
  - type: reboot
    timeout: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	d := seq.Steps[0].Base()
	if d.Retries != 5 || time.Duration(d.RetryDelay) != time.Minute || time.Duration(d.Timeout) != 30*time.Second || d.ContinueOnError {
		t.Errorf("select-disk %+v", d)
	}
	var waits []time.Duration
	for try := 1; try <= 5; try++ {
		waits = append(waits, d.RetryWait(try))
	}
	if fmt.Sprint(waits) != "[1m0s 2m0s 4m0s 5m0s 5m0s]" {
		t.Errorf("waits %v: want doubling from retry-delay, capped at MaxRetryDelay", waits)
	}
	r := seq.Steps[1].(*Command)
	if r.Retries != 2 || !r.ContinueOnError || time.Duration(r.Timeout) != time.Hour || r.RetryWait(1) != DefaultRetryDelay {
		t.Errorf("run %+v: want the run step's default timeout 1h and the default retry delay", r.StepBase)
	}
	if q := seq.Steps[2].(*Command); time.Duration(q.Timeout) != 90*time.Second {
		t.Errorf("run timeout %v", q.Timeout)
	}
	plan := seq.Plan(FactMap{})
	if got := plan[1].String(); got != "run: run: /bin/sh -c false (retries 2, continue on error)" {
		t.Errorf("plan line %q", got)
	}
	if got := plan[3].String(); got != "reboot: reboot" {
		t.Errorf("plan line %q", got)
	}
}

func TestConditions(t *testing.T) {
	f := FactMap{"firmware": "uefi", "memory": "2147483648", "cpus": "2", "var.role": "kiosk"}
	for src, want := range map[string]bool{
		"":                                     true,
		"firmware == uefi":                     true,
		"firmware != uefi":                     false,
		"memory >= 2GiB":                       true,
		"memory > 2GiB":                        false,
		"memory < 3GB && cpus == 2":            true,
		"firmware == bios || cpus >= 2":        true,
		"!(firmware == uefi)":                  false,
		"var.role == kiosk && !(cpus < 2)":     true,
		"var.unset == ''":                      true,
		`var.role == "kiosk"`:                  true,
		"firmware == bios && cpus > 1 || true": true,
		"false || firmware == bios":            false,
	} {
		c, err := parseCondition(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		got, err := c.Eval(f)
		if err != nil || got != want {
			t.Errorf("%q = %v, %v; want %v", src, got, err, want)
		}
	}
	for _, bad := range []string{"firmware ==", "== uefi", "(firmware == uefi", "firmware == uefi &&", "memory => 1G", "x == 1", "firmware == uefi extra"} {
		if _, err := parseCondition(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c, _ := parseCondition("disk-size > 1G")
	if _, err := c.Eval(f); err == nil {
		t.Error("unknown-yet fact evaluated without error")
	}
	c, _ = parseCondition("firmware > 1G")
	if _, err := c.Eval(f); err == nil {
		t.Error("ordering a non-number did not fail")
	}
}

// TestOneSizeRule: every size key of a sequence reads sizes by one rule
// (package bytesize): bare K/M/G/T binary, KB/MB/GB/TB decimal.
func TestOneSizeRule(t *testing.T) {
	src := head + `  - type: requirements
    min-memory: 512M
    min-disk: 8G
  - type: select-disk
    disk: {min-size: 8GB, max-size: 2T}
  - type: partition
    partitions:
      - {name: esp, size: 256M, type: esp, fs: vfat}
      - {name: swap, size: 1GB, type: swap, fs: swap}
      - {name: root, size: rest, fs: ext4}
  - type: capture-image
    destination: {disk: {removable: true}, path: /x.wim, split-size: 3900M}
`
	seq, err := Parse("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := seq.Steps[0].(*Requirements)
	if r.MinMemory != 512*bytesize.MiB || r.MinDisk != 8*bytesize.GiB {
		t.Errorf("requirements: min-memory %d, min-disk %d; want 512 MiB and 8 GiB", r.MinMemory, r.MinDisk)
	}
	d := seq.Steps[1].(*SelectDisk)
	if d.Disk.MinSize != 8*bytesize.GB || d.Disk.MaxSize != 2*bytesize.TiB {
		t.Errorf("select-disk: %d..%d; want 8 GB .. 2 TiB", d.Disk.MinSize, d.Disk.MaxSize)
	}
	p := seq.Steps[2].(*Partition)
	if p.Partitions[0].Size.Bytes != 256*bytesize.MiB || p.Partitions[1].Size.Bytes != bytesize.GB {
		t.Errorf("partition sizes %+v", p.Partitions)
	}
	c := seq.Steps[3].(*CaptureImage)
	if c.Destination.SplitSize != 3900*bytesize.MiB {
		t.Errorf("split-size %d", c.Destination.SplitSize)
	}
	// Conditions compare sizes by the same rule.
	cond, _ := parseCondition("memory >= 2G")
	if ok, err := cond.Eval(FactMap{"memory": "2000000000"}); ok || err != nil {
		t.Errorf("2e9 bytes >= 2G (2 GiB): %v, %v", ok, err)
	}
	// The plan shows sizes as understood, exactly.
	if got := r.Describe(); got != "check memory >= 512MiB, a disk >= 8GiB" {
		t.Errorf("describe: %q", got)
	}
}

// TestMinVersionAsWritten: 2.10 stays 2.10 (later than 2.9), not the YAML
// number 2.1.
func TestMinVersionAsWritten(t *testing.T) {
	seq, err := Parse("seq.yaml", []byte(head+"  - type: fetch\n    manifest: http://h/m.json\n    mode: stream\n    package: debian-12\n    min-version: 2.10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f := seq.Steps[0].(*Fetch); f.MinVersion != "2.10" || f.Package != "debian-12" {
		t.Errorf("fetch step: min-version %q, package %q", f.MinVersion, f.Package)
	}
}

// TestPowerAfterFetch: a power step between a fetch and what uses its
// package is refused (above); one with a fetch after it, or after the
// apply, is fine.
func TestPowerAfterFetch(t *testing.T) {
	disk := head + "  - type: select-disk\n    disk: {transport: virtio}\n  - type: partition\n    partitions: [{name: root, size: rest, fs: ext4}]\n  - type: mount\n"
	fetch := func(name string) string {
		return "  - type: fetch\n    name: " + name + "\n    manifest: http://x/m.json\n"
	}
	for name, src := range map[string]string{
		"fetched again": disk + fetch("first") + "  - type: reboot\n" + fetch("again") + "  - type: apply-image\n",
		"after apply":   disk + fetch("first") + "  - type: apply-image\n  - type: bootfiles\n  - type: reboot\n",
		"before fetch":  disk + "  - type: reboot\n" + fetch("first") + "  - type: apply-image\n",
	} {
		if _, err := Parse("seq.yaml", []byte(src)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
