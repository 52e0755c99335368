package sequence

import (
	"strings"
	"testing"
)

// TestConditionalGuardsDoNotGuard: a step with when: may not run, so it
// cannot be what makes clean (or apply-image in a refresh) safe.
func TestConditionalGuardsDoNotGuard(t *testing.T) {
	const (
		mount   = "  - {type: mount, existing: true}\n"
		capture = "  - {type: capture-state}\n"
		fetch   = "  - {type: fetch, manifest: 'http://h/m.json'}\n"
		clean   = "  - {type: clean}\n"
		apply   = "  - {type: apply-image}\n"
	)
	cond := func(step, when string) string {
		return strings.Replace(step, "}", ", when: \""+when+"\"}", 1)
	}
	for _, c := range []struct{ name, src, want string }{
		{"all unconditional", mount + capture + fetch + clean + apply, ""},
		{"conditional clean and apply after", mount + capture + fetch + cond(clean, "firmware == uefi") + apply, "apply-image needs a clean step that runs unconditionally"},
		{"capture-state when false", mount + cond(capture, "firmware == none") + fetch + clean, "capture-state step that runs unconditionally"},
		{"capture-state conditional", mount + cond(capture, "memory >= 1G") + fetch + clean, "a step with when: may not run"},
		{"conditional fetch", mount + capture + cond(fetch, "boot == network") + clean, "staging fetch step that runs unconditionally"},
		{"conditional mount", cond(mount, "boot == medium") + capture + fetch + clean, "mount of the existing root (existing: true) to run unconditionally"},
		{"conditional and unconditional capture", mount + cond(strings.Replace(capture, "}", ", name: c1}", 1), "memory >= 1G") + capture + fetch + clean + apply, ""},
		{"conditional clean before capture", mount + capture + fetch + cond(clean, "cpus > 1") + "  - {type: capture-state, name: again}\n", "after clean"},
	} {
		_, err := Parse("g.yaml", []byte(head+c.src))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestCommandRefusesNUL: execve would cut an argument at a NUL, so the
// command run would not be the one the sequence shows.
func TestCommandRefusesNUL(t *testing.T) {
	for _, c := range []struct{ step, want string }{
		{`{type: run, command: [/bin/rm, "-rf", "/tmp/x\0/"]}`, `command[2] "/tmp/x\x00/" contains a NUL byte`},
		{`{type: run, command: ["/bin/ls\0x"]}`, "command[0]"},
		{`{type: run, shell: "ls\0; rm -rf /"}`, "shell contains a NUL byte"},
		{`{type: run, shell: ls, env: {"A\0B": x}}`, "env"},
		{`{type: run, shell: ls, env: {A: "x\0y"}}`, "env"},
		{`{type: run, shell: ls, env: {"A=B": x}}`, "env"},
		{`{type: run, command: [/bin/echo, "a b"], env: {A: x}}`, ""},
	} {
		_, err := Parse("n.yaml", []byte(head+"  - "+c.step+"\n"))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.step, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "n.yaml:3:") {
			t.Errorf("%s: %v, want n.yaml:3:… %q", c.step, err, c.want)
		}
	}
}
