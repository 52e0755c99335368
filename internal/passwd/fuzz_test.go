package passwd

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: whatever Parse accepts has exactly its kind's field count in
// every record, no newline, carriage return or NUL anywhere, unique names,
// and survives Bytes unchanged; whatever CheckRegularUser accepts is a
// regular account.
func FuzzParse(f *testing.F) {
	f.Add(0, "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001:Alice:/home/alice:/bin/sh\n")
	f.Add(0, "alice:x:1001:1001::/home/alice:/bin/sh\nroot2:x:0:0::/root:/bin/sh")
	f.Add(1, "root:x:0:\nsudo:x:27:alice,bob\n")
	f.Add(2, "alice:$y$j9T$salt$hash:19000:0:99999:7:::\n")
	f.Add(3, "sudo:*::alice\n")
	f.Add(0, "a:x:1000:1000::/home/a:/bin/sh\r\n")
	kinds := []Kind{Passwd, Group, Shadow, Gshadow}
	f.Fuzz(func(t *testing.T, k int, data string) {
		kind := kinds[uint(k)%uint(len(kinds))]
		tab, err := Parse(kind, []byte(data))
		if err == nil {
			names := map[string]bool{}
			for _, r := range tab.Rows {
				if len(r) != kind.Fields {
					t.Fatalf("record %q has %d fields, want %d", r, len(r), kind.Fields)
				}
				if strings.ContainsAny(strings.Join(r, ""), "\n\r\x00") {
					t.Fatalf("record %q has a line break or NUL", r)
				}
				if names[r[0]] {
					t.Fatalf("name %q twice", r[0])
				}
				names[r[0]] = true
			}
			again, err := Parse(kind, tab.Bytes())
			if err != nil || string(again.Bytes()) != string(tab.Bytes()) {
				t.Fatalf("Bytes does not parse back: %v", err)
			}
		}
		if kind == Passwd {
			for _, l := range strings.Split(data, "\n") {
				r, err := CheckRegularUser(l)
				if err != nil {
					continue
				}
				uid, _ := strconv.Atoi(r[2])
				gid, _ := strconv.Atoi(r[3])
				if !IsRegular(uid) || !IsRegular(gid) || !ValidName(r[0]) || !strings.HasPrefix(r[5], "/") || r[5] == "/" {
					t.Fatalf("CheckRegularUser accepted %q", l)
				}
			}
		}
	})
}
