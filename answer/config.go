package answer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minint/minint/internal/durable"
)

// Where the PE puts things on the target, and what minint-setup looks for.
const (
	// Dir is the staging folder on the target root (also home of the
	// PE's journal and downloads).
	Dir = "/minint"
	// Binary is where the PE copies minint-setup.
	Binary = Dir + "/minint-setup"
	// ConfigFile is the answer file plus hand-off details, as JSON.
	ConfigFile = Dir + "/setup.json"
	// ResultFile is written by minint-setup when it finishes or fails.
	ResultFile = Dir + "/setup-result.json"
	// InitArg is the kernel argument the bootfiles step adds for the first
	// boot, and minint-setup removes when it has succeeded.
	InitArg = "init=" + Binary
)

// Config is the file minint-setup reads: the answer plus what it needs to
// undo the one-shot first boot.
type Config struct {
	Answer Answer `json:"answer"`
	// Init is the real init to exec afterwards (default /sbin/init).
	Init string `json:"init,omitempty"`
	// BootEntries are the loader files whose kernel command line carries
	// InitArg (an extlinux.conf, a systemd-boot entry…).
	BootEntries []BootEntry `json:"boot-entries,omitempty"`
	// Created is when the PE wrote this file.
	Created time.Time `json:"created"`
}

// BootEntry locates one boot loader file. With neither Device nor FSUUID,
// Path is inside the root file system; otherwise minint-setup mounts that
// file system (found by its UUID first: device names can change between the
// PE and the deployed kernel) and edits Path inside it.
type BootEntry struct {
	Path   string `json:"path"`
	Device string `json:"device,omitempty"`
	FSUUID string `json:"fs-uuid,omitempty"` // ext4 UUID or FAT serial "ABCD-1234"
	FSType string `json:"fstype,omitempty"`  // vfat, ext4
}

// Result is what minint-setup leaves in ResultFile.
type Result struct {
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Finished time.Time `json:"finished"`
	Log      []string  `json:"log,omitempty"`
}

// ReadConfig reads and validates a config file.
func ReadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	if err := c.Answer.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, e := range c.BootEntries {
		if !filepath.IsAbs(e.Path) {
			return nil, invalid("%s: boot entry path %q is not absolute", path, e.Path)
		}
	}
	if c.Init != "" && !filepath.IsAbs(c.Init) {
		return nil, invalid("%s: init %q is not absolute", path, c.Init)
	}
	return &c, nil
}

// WriteConfig writes c durably (used by the PE).
func WriteConfig(path string, c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(b, '\n'), 0o600)
}

// WriteResult writes r durably.
func WriteResult(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(path, append(b, '\n'), 0o644)
}

// removeArg deletes every whitespace-separated occurrence of arg from the
// lines of a loader file, keeping everything else byte for byte. It reports
// whether anything changed; a second call is a no-op.
func removeArg(content []byte, arg string) ([]byte, bool) {
	lines := strings.SplitAfter(string(content), "\n")
	changed := false
	for i, l := range lines {
		if !strings.Contains(l, arg) {
			continue
		}
		body := strings.TrimRight(l, "\r\n")
		end := l[len(body):]
		fields := strings.Split(body, " ")
		var kept []string
		for _, f := range fields {
			if f == arg {
				changed = true
				continue
			}
			kept = append(kept, f)
		}
		lines[i] = strings.Join(kept, " ") + end
	}
	return []byte(strings.Join(lines, "")), changed
}

// FixBootEntry removes InitArg from the file at dir+path.
func FixBootEntry(dir, path string) error {
	full := filepath.Join(dir, path)
	b, err := os.ReadFile(full)
	if err != nil {
		return err
	}
	nb, changed := removeArg(b, InitArg)
	if !changed {
		return nil
	}
	fi, err := os.Stat(full)
	if err != nil {
		return err
	}
	return durable.WriteFile(full, nb, fi.Mode().Perm())
}
