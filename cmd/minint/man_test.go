package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestManPages: `minint man DIR` writes a page for every visible command;
// groff renders each without a warning, and the rendered page has the
// command's name, usage line and every visible flag as typed on a command
// line, and no hidden flag.
func TestManPages(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff missing (scripts/setup-host.sh installs it)")
	}
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "man", dir); code != 0 {
		t.Fatalf("minint man: exit %d: %s", code, stderr)
	}
	cmds := visibleCommands()
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(pages) != len(cmds) {
		t.Errorf("%d pages for %d commands", len(pages), len(cmds))
	}
	for path, c := range cmds {
		page := filepath.Join(dir, strings.ReplaceAll(displayName(path), " ", "-")+".1")
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-P", "-cbou", page)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", page, err, stderr.String())
			continue
		}
		text := strings.Join(strings.Fields(string(out)), " ") // undo filling
		for _, want := range []string{displayName(path), c.Short} {
			if !strings.Contains(text, strings.Join(strings.Fields(want), " ")) {
				t.Errorf("%s: rendered page lacks %q:\n%s", page, want, text)
			}
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			has := strings.Contains(text, "--"+f.Name+" ") || strings.HasSuffix(text, "--"+f.Name)
			if has == f.Hidden {
				t.Errorf("%s: --%s (hidden %v) shown %v:\n%s", page, f.Name, f.Hidden, has, text)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(dir, "minint-wim.1")); err != nil || !strings.Contains(string(b), ".BR minint\\-wim\\-apply (1)") {
		t.Errorf("minint-wim.1 does not refer to minint-wim-apply(1): %v\n%s", err, b)
	}
}
