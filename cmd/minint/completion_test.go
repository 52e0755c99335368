package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for minint: the shell completion
// scripts call `minint __complete …`, and the tests put a `minint` that
// runs this binary with MININT_TEST_AS_MININT=1 first in PATH.
func TestMain(m *testing.M) {
	if os.Getenv("MININT_TEST_AS_MININT") == "1" {
		os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// minintOnPath puts a `minint` that is this test binary first in PATH.
func minintOnPath(t *testing.T) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\nMININT_TEST_AS_MININT=1 exec %q \"$@\"\n", self)
	if err := os.WriteFile(filepath.Join(dir, "minint"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// completionCases are command lines to complete and what each completion
// must offer: every visible subcommand of every group, and the flags of a
// leaf (never a hidden one).
func completionCases(t *testing.T) map[string][]string {
	cases := map[string][]string{}
	for path, c := range visibleCommands() {
		line := strings.TrimSpace(strings.Join(append([]string{"minint"}, argv(path)...), " "))
		if c.HasAvailableSubCommands() {
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					cases[line+" "] = append(cases[line+" "], s.Name())
				}
			}
		}
	}
	cases["minint disk list --"] = []string{"--json", "--boot-device", "--media-label", "--help"}
	cases["minint wim apply --"] = []string{"--threads", "--unix-data", "--json-events", "--quiet", "--help"}
	for _, subs := range cases {
		sort.Strings(subs)
	}
	return cases
}

var notOffered = []string{"--sys-root", "--efivars"}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, script, stderr := runCLI(t, "completion", shell)
	if code != 0 || !strings.Contains(script, "minint") || !strings.Contains(script, "__complete") {
		t.Fatalf("minint completion %s: exit %d, stderr %q, script:\n%.300s", shell, code, stderr, script)
	}
	return script
}

// TestBashCompletion runs the generated bash completion in bash, with
// bash-completion, the way bash does on TAB, for every group and some
// flags.
func TestBashCompletion(t *testing.T) {
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("bash-completion missing (scripts/setup-host.sh installs it): %v", err)
	}
	minintOnPath(t)
	script := filepath.Join(t.TempDir(), "minint.bash")
	os.WriteFile(script, []byte(completionScript(t, "bash")), 0o644)
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	cases := completionCases(t)
	var driver strings.Builder
	fmt.Fprintf(&driver, "source %s\nsource %s\n", lib, script)
	// complete LINE: what TAB at the end of LINE offers, one per line,
	// then an end marker.
	driver.WriteString(`complete_line() {
	COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
	read -ra COMP_WORDS <<<"$COMP_LINE"
	[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	__start_minint minint 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}" "--end--"
}
`)
	var lines []string
	for line := range cases {
		lines = append(lines, line)
		fmt.Fprintf(&driver, "complete_line %q\n", line)
	}
	out, err := exec.Command("bash", "-c", driver.String()).Output()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	results := strings.Split(string(out), "--end--\n")
	for i, line := range lines {
		checkOffered(t, "bash", line, strings.Fields(results[i]), cases[line])
	}
}

// TestFishCompletion asks fish what it completes with the generated script.
func TestFishCompletion(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish missing (scripts/setup-host.sh installs it)")
	}
	minintOnPath(t)
	script := filepath.Join(t.TempDir(), "minint.fish")
	os.WriteFile(script, []byte(completionScript(t, "fish")), 0o644)
	if out, err := exec.Command("fish", "--no-execute", script).CombinedOutput(); err != nil {
		t.Fatalf("fish --no-execute: %v\n%s", err, out)
	}
	for line, want := range completionCases(t) {
		out, err := exec.Command("fish", "--no-config", "-c", fmt.Sprintf("source %s; complete -C %q", script, line)).Output()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
		checkOffered(t, "fish", line, got, want)
	}
}

// TestZshCompletion checks the zsh script's syntax and that it asks minint
// itself (`__complete`, which the bash and fish tests drive) for the
// candidates; zsh's completion system cannot run without a terminal.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh missing (scripts/setup-host.sh installs it)")
	}
	script := completionScript(t, "zsh")
	if !strings.HasPrefix(script, "#compdef minint") {
		t.Errorf("zsh script does not declare #compdef minint:\n%.200s", script)
	}
	cmd := exec.Command("zsh", "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	for line, want := range completionCases(t) {
		args := append([]string{"__complete"}, strings.Fields(line)[1:]...)
		if strings.HasSuffix(line, " ") {
			args = append(args, "") // complete a new word
		}
		_, out, _ := runCLI(t, args...)
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		checkOffered(t, "__complete", line, got, want)
	}
}

func checkOffered(t *testing.T, shell, line string, got, want []string) {
	t.Helper()
	offered := map[string]bool{}
	for _, g := range got {
		offered[g] = true
	}
	for _, w := range want {
		if !offered[w] {
			t.Errorf("%s: %q does not offer %s; offers %q", shell, line, w, got)
		}
	}
	for _, h := range notOffered {
		if offered[h] {
			t.Errorf("%s: %q offers the hidden %s", shell, line, h)
		}
	}
}
