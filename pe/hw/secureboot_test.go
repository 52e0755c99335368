package hw

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSecureBootState reads the SecureBoot and SetupMode variables as
// efivarfs presents them (4 attribute bytes, then the value) and the
// kernel's lockdown mode.
func TestSecureBootState(t *testing.T) {
	attrs := []byte{0x06, 0, 0, 0} // boot-service and runtime access
	for _, c := range []struct {
		name           string
		uefi           bool
		secure, setup  []byte // nil: variable absent
		lockdown       string
		wantSB, wantSM bool
		wantLockdown   string
	}{
		{"bios", false, nil, nil, "[none] integrity confidentiality\n", false, false, "none"},
		{"uefi, efivarfs not mounted", true, nil, nil, "", false, false, ""},
		{"secure boot on", true, []byte{1}, []byte{0}, "none [integrity] confidentiality\n", true, false, "integrity"},
		{"secure boot off", true, []byte{0}, []byte{0}, "[none] integrity confidentiality\n", false, false, "none"},
		{"setup mode", true, []byte{0}, []byte{1}, "", false, true, ""},
		{"short variable", true, []byte{}, nil, "", false, false, ""},
		{"long variable", true, []byte{1, 0}, nil, "", false, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.uefi {
				vars := filepath.Join(root, "sys/firmware/efi/efivars")
				os.MkdirAll(vars, 0o755)
				for name, v := range map[string][]byte{"SecureBoot": c.secure, "SetupMode": c.setup} {
					if v != nil {
						os.WriteFile(filepath.Join(vars, name+"-8be4df61-93ca-11d2-aa0d-00e098032b8c"), append(append([]byte{}, attrs...), v...), 0o644)
					}
				}
			}
			if c.lockdown != "" {
				os.MkdirAll(filepath.Join(root, "sys/kernel/security"), 0o755)
				os.WriteFile(filepath.Join(root, "sys/kernel/security/lockdown"), []byte(c.lockdown), 0o644)
			}
			inv := Collect(root)
			if inv.SecureBoot != c.wantSB || inv.SetupMode != c.wantSM || inv.Lockdown != c.wantLockdown {
				t.Errorf("secure boot %v, setup mode %v, lockdown %q; want %v, %v, %q",
					inv.SecureBoot, inv.SetupMode, inv.Lockdown, c.wantSB, c.wantSM, c.wantLockdown)
			}
		})
	}
}
