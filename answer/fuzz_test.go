package answer

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadConfig: any config file either is rejected or validates.
func FuzzReadConfig(f *testing.F) {
	f.Add([]byte(`{"answer":{"hostname":"a","users":[{"name":"u","ssh-authorized-keys":["ssh-ed25519 AAAA u"]}],"files":[{"path":"/etc/x","mode":"0600","owner":"u:u"}]},"boot-entries":[{"path":"/boot/extlinux.conf"}]}`))
	f.Add([]byte(`{"answer":{"network":[{"match":"en*","dhcp":true,"dns":["192.0.2.1"]}]},"init":"/sbin/init"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "setup.json")
		os.WriteFile(p, b, 0o600)
		c, err := ReadConfig(p)
		if err != nil {
			return
		}
		if err := c.Answer.Validate(); err != nil {
			t.Fatalf("ReadConfig accepted what Validate rejects: %v", err)
		}
	})
}
