package sequence

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: any input either loads or fails with a LoadError; never a
// panic, never another error type.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/deploy.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(head + "  - type: run\n    shell: ls\n"))
	f.Add([]byte(head + "  - type: reboot\n    when: \"!(firmware == uefi) || memory >= 1G\"\n"))
	f.Add([]byte("version: 1\nsteps: [\n"))
	f.Add([]byte(fleet))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, err := Parse("f.yaml", b)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		if len(seq.Steps) == 0 {
			t.Fatal("loaded a sequence without steps")
		}
		// Binding reads the file again with values put in: it too loads
		// or fails with a LoadError, and keeps the steps.
		m := Machine{Vendor: "LENOVO", Model: "ThinkPad T14", Serial: "S1", UUID: "u", MACs: []string{"52:54:00:12:34:56"}}
		bound, _, err := seq.Bind(m, map[string]string{"role": "x\n- y: ${var.role}"})
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("bind error %T: %v", err, err)
			}
			return
		}
		if len(bound.Steps) != len(seq.Steps) || bound.Digest != seq.Digest {
			t.Fatalf("bound %d steps of %d", len(bound.Steps), len(seq.Steps))
		}
	})
}

func FuzzCondition(f *testing.F) {
	for _, s := range []string{"firmware == uefi", "!(a == b) || cpus >= 2", "var.x == 'y' && memory < 1G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCondition(s)
		if err != nil {
			return
		}
		c.Eval(FactMap{"firmware": "uefi", "memory": "1", "cpus": "1", "arch": "amd64", "disk": "/dev/vda", "disk-size": "1", "boot": "medium"})
	})
}
