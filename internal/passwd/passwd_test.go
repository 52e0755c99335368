package passwd

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	cases := []struct {
		kind Kind
		line string
		ok   bool
	}{
		{Passwd, "alice:x:1001:1001:Alice:/home/alice:/bin/bash", true},
		{Passwd, "alice:x:1001:1001:Alice:/home/alice:/bin/bash\nroot2:x:0:0::/root:/bin/sh", false},
		{Passwd, "alice:x:1001:1001:Alice:/home/alice:/bin/bash\r", false},
		{Passwd, "alice:x:1001:1001:Alice:/home/alice", false},
		{Passwd, "alice:x:1001:1001:Alice:/home/alice:/bin/bash:extra", false},
		{Passwd, "alice:x:-1:1001::/home/alice:/bin/sh", false},
		{Passwd, "alice:x:1001:g::/home/alice:/bin/sh", false},
		{Passwd, ":x:1001:1001::/home/alice:/bin/sh", false},
		{Group, "sudo:x:27:alice,bob", true},
		{Group, "sudo:x:27", false},
		{Shadow, "alice:$y$h:19000:0:99999:7:::", true},
		{Shadow, "alice:$y$h", false},
		{Gshadow, "sudo:*::alice", true},
	}
	for _, c := range cases {
		_, err := ParseLine(c.kind, c.line)
		if (err == nil) != c.ok {
			t.Errorf("ParseLine(%s, %q) = %v, want ok=%v", c.kind, c.line, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Errorf("error %v does not wrap ErrFormat", err)
		}
	}
}

func TestParseRefusesDuplicatesAndCountsLines(t *testing.T) {
	_, err := Parse(Passwd, []byte("root:x:0:0::/root:/bin/sh\n\nroot:x:0:0::/root:/bin/sh\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("Parse = %v, want an error on line 3", err)
	}
}

func TestEditRoundTrip(t *testing.T) {
	in := "root:x:0:\nsudo:x:27:\nalice:x:1000:\n"
	g, err := Parse(Group, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Bytes()) != in {
		t.Fatalf("Bytes = %q, want %q", g.Bytes(), in)
	}
	if n := g.NextID(); n != 1001 {
		t.Errorf("NextID = %d, want 1001", n)
	}
	g.AddMember(g.Find("sudo"), "alice")
	g.AddMember(g.Find("sudo"), "alice")
	g.AddMember(g.Find("sudo"), "bob")
	if err := g.Add("bob", "x", "1001", ""); err != nil {
		t.Fatal(err)
	}
	if err := g.Add("bob", "x", "1002", ""); err == nil {
		t.Error("Add of an existing name succeeded")
	}
	if err := g.Add("eve\nroot", "x", "0", ""); err == nil {
		t.Error("Add of a name with a newline succeeded")
	}
	if want := "root:x:0:\nsudo:x:27:alice,bob\nalice:x:1000:\nbob:x:1001:\n"; string(g.Bytes()) != want {
		t.Errorf("Bytes = %q, want %q", g.Bytes(), want)
	}
}

func TestCheckRegular(t *testing.T) {
	for line, ok := range map[string]bool{
		"alice:x:1001:1001:Alice:/home/alice:/bin/bash": true,
		"toor:x:0:0::/root:/bin/sh":                     false,
		"alice:x:1001:0::/home/alice:/bin/sh":           false, // primary group root
		"alice:x:65534:1001::/home/alice:/bin/sh":       false,
		"alice:x:1001:1001::/:/bin/sh":                  false,
		"alice:x:1001:1001::home/alice:/bin/sh":         false,
		"alice:x:1001:1001::/home/../etc:/bin/sh":       false,
		"Alice:x:1001:1001::/home/alice:/bin/sh":        false,
		"alice:x:1001:1001:\x1b[2J:/home/alice:/bin/sh": false,
	} {
		if _, err := CheckRegularUser(line); (err == nil) != ok {
			t.Errorf("CheckRegularUser(%q) = %v, want ok=%v", line, err, ok)
		}
	}
	for line, ok := range map[string]bool{
		"devs:x:1500:alice": true,
		"disk:x:6:":         false,
		"root:x:0:":         false,
		"devs:x:1500":       false,
	} {
		if _, err := CheckRegularGroup(line); (err == nil) != ok {
			t.Errorf("CheckRegularGroup(%q) = %v, want ok=%v", line, err, ok)
		}
	}
}
