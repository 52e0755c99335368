package pe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/pe/hw"
	"github.com/minint/minint/pe/journal"
	"github.com/minint/minint/sequence"
)

const fleetSeq = `version: 1
vars:
  hostname: pc-${machine.serial}
  role: ~
rules:
  - match: {mac: "52:54:00:12:34:56"}
    vars: {hostname: web1, role: server}
  - match: {model: "Standard PC*"}
    vars: {role: vm}
steps:
  - type: run
    name: name-it
    shell: 'echo "${var.hostname} ${var.role} ${machine.mac}" > "$MININT_STAGING/name"'
  - type: run
    name: servers-only
    shell: 'touch "$MININT_STAGING/server"'
    when: var.role == server
  - type: run
    name: last
    shell: 'true'
`

func varsRun(t *testing.T, staging string, inv Inventory, given map[string]string, hook func(step, point string) error) (err error, console string) {
	t.Helper()
	seq, err := sequence.Parse("fleet.yaml", []byte(fleetSeq))
	if err != nil {
		t.Fatal(err)
	}
	fd := newFakeDisk(t)
	env, _ := testEnv(t, fd, nil)
	env.Staging, env.Vars, env.hook = staging, given, hook
	env.Inventory.Vendor, env.Inventory.Model, env.Inventory.Serial, env.Inventory.MACs = inv.Vendor, inv.Model, inv.Serial, inv.MACs
	var out bytes.Buffer
	env.Console = &out
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			err, console = nil, out.String() // a power cut
		}
	}()
	err = Run(context.Background(), seq, env)
	return err, out.String()
}

// TestVariablesFromRules: a machine is named by the first rule matching
// one of its MACs; another falls back to a model rule and the default.
func TestVariablesFromRules(t *testing.T) {
	for _, c := range []struct {
		name   string
		inv    Inventory
		given  map[string]string
		want   string
		server bool
	}{
		{"by mac", Inventory{Serial: "S1", Model: "Standard PC (Q35)", MACs: []string{"52:54:00:00:00:07", "52:54:00:12:34:56"}}, nil, "web1 server 52:54:00:00:00:07\n", true},
		{"by model", Inventory{Serial: "S2", Model: "Standard PC (Q35)", MACs: []string{"52:54:00:00:00:08"}}, nil, "pc-S2 vm 52:54:00:00:00:08\n", false},
		{"command line wins", Inventory{Serial: "S1", MACs: []string{"52:54:00:12:34:56"}}, map[string]string{"role": "kiosk"}, "web1 kiosk 52:54:00:12:34:56\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			staging := t.TempDir()
			err, console := varsRun(t, staging, c.inv, c.given, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(staging, "name")); string(b) != c.want {
				t.Errorf("name %q, want %q", b, c.want)
			}
			if _, err := os.Stat(filepath.Join(staging, "server")); (err == nil) != c.server {
				t.Errorf("servers-only step ran: %v, want %v", err == nil, c.server)
			}
			if !strings.Contains(console, "variables: hostname=") {
				t.Errorf("console does not show the variables:\n%s", console)
			}
		})
	}
}

// TestVariableMissing: a used variable without a value on this machine
// stops the run before its first step.
func TestVariableMissing(t *testing.T) {
	staging := t.TempDir()
	err, _ := varsRun(t, staging, Inventory{Serial: "S3", MACs: []string{"52:54:00:00:00:09"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml:13:12: ${var.role} has no value on this machine") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(staging, "name")); err == nil {
		t.Error("a step ran")
	}
}

// TestResumeWithOtherVariables: a journal started with other values is
// not finished with these.
func TestResumeWithOtherVariables(t *testing.T) {
	staging := t.TempDir()
	inv := Inventory{Serial: "S1", MACs: []string{"52:54:00:00:00:07"}}
	err, _ := varsRun(t, staging, inv, map[string]string{"role": "a"}, func(step, point string) error {
		if step == "last" {
			panic(crash{step, point})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Load(filepath.Join(staging, journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(j.State, &st); err != nil || fmt.Sprint(st.Vars) != "map[hostname:pc-S1 role:a]" {
		t.Fatalf("journal state %s, %v", j.State, err)
	}
	err, _ = varsRun(t, staging, inv, map[string]string{"role": "b"}, nil)
	if err == nil || !strings.Contains(err.Error(), "started with other variables (hostname=pc-S1, role=a): refusing to finish it with hostname=pc-S1, role=b") {
		t.Fatalf("error %v", err)
	}
	// The same values resume it.
	if err, _ = varsRun(t, staging, inv, map[string]string{"role": "a"}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestMachineMACs: ${machine.mac} is a NIC with a link, else the first.
func TestMachineMACs(t *testing.T) {
	nics := []hw.NIC{{Name: "enp0s8", MAC: "52:54:00:AB:CD:EF"}, {Name: "eth0", MAC: "52:54:00:12:34:56", Link: true}, {Name: "wlan0"}}
	if got := fmt.Sprint(machineMACs(nics)); got != "[52:54:00:12:34:56 52:54:00:ab:cd:ef]" {
		t.Errorf("MACs %s", got)
	}
}
