package capture

import (
	"maps"
	"strings"
	"testing"
)

// FuzzParseOSRelease: whatever it reads, writing the result back quoted
// and parsing again gives the same map.
func FuzzParseOSRelease(f *testing.F) {
	for _, s := range []string{
		"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"# comment\nID='alpine'\nVERSION_ID=3.20.0\n=x\nnoequals\n",
		"NAME=\"a \\\"quoted\\\" \\$x \\\\ \\`b\\`\"\n",
		"ID=\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := parseOSRelease(data)
		var b strings.Builder
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
		for k, v := range m {
			if k == "" || strings.ContainsAny(k, "=\n") || strings.HasPrefix(k, "#") || strings.Contains(v, "\n") {
				t.Fatalf("bad entry %q=%q", k, v)
			}
			b.WriteString(k + "=\"" + q.Replace(v) + "\"\n")
		}
		if m2 := parseOSRelease([]byte(b.String())); !maps.Equal(m, m2) {
			t.Fatalf("round trip:\n%q\n%v\n%v", b.String(), m, m2)
		}
	})
}
