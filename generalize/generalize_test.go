package generalize

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/wim"
	"github.com/minint/minint/wim/wimtest"
)

// fakeSystem writes a root with every kind of machine-specific file, plus a
// symlink that leads out of the root (which must never be followed).
func fakeSystem(t *testing.T, root, outside string) map[string]Action {
	t.Helper()
	files := map[string]string{
		"etc/os-release":                                 "ID=debian\n",
		"etc/machine-id":                                 "4f1c2e0d9a8b7c6d5e4f3a2b1c0d9e8f\n",
		"var/lib/dbus/machine-id":                        "4f1c2e0d9a8b7c6d5e4f3a2b1c0d9e8f\n",
		"etc/ssh/ssh_host_ed25519_key":                   "PRIVATE",
		"etc/ssh/ssh_host_ed25519_key.pub":               "PUBLIC",
		"etc/ssh/sshd_config":                            "PermitRootLogin no\n",
		"var/lib/dhcp/dhclient.eth0.leases":              "lease {}\n",
		"var/lib/NetworkManager/internal-x.lease":        "ADDRESS=10.0.2.15\n",
		"var/lib/NetworkManager/NetworkManager.state":    "[main]\n",
		"root/.bash_history":                             "ls\n",
		"home/alice/.bash_history":                       "sudo -i\n",
		"home/alice/.zsh_history":                        ": 1:0;ls\n",
		"home/alice/notes.txt":                           "keep me\n",
		"var/log/syslog":                                 "Nov 28 boot\n",
		"var/log/syslog.1":                               "old\n",
		"var/log/dpkg.log.2.gz":                          "gz",
		"var/log/apt/history.log":                        "Start-Date\n",
		"var/log/journal/abc/system.journal":             "LPKSHHRH",
		"var/lib/cloud/instances/i-123/datasource":       "DataSourceNoCloud\n",
		"var/lib/cloud/sem/config_scripts_per_once.once": "",
		"var/lib/cloud/seed/nocloud/user-data":           "#cloud-config\n",
		"etc/udev/rules.d/70-persistent-net.rules":       "SUBSYSTEM==\"net\"\n",
		"etc/udev/rules.d/99-local.rules":                "# keep\n",
		"var/lib/systemd/random-seed":                    "RANDOMRANDOM",
		"usr/lib/systemd/systemd":                        "ELF",
	}
	for rel, data := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("../instances/i-123", filepath.Join(root, "var/lib/cloud/instance")))
	must(os.MkdirAll(filepath.Join(outside, "evil"), 0o755))
	must(os.WriteFile(filepath.Join(outside, "evil/.bash_history"), []byte("host secret"), 0o600))
	must(os.Symlink(filepath.Join(outside, "evil"), filepath.Join(root, "home/bob")))
	must(os.Symlink(filepath.Join(outside, "evil/.bash_history"), filepath.Join(root, "etc/machine-id.link")))
	return map[string]Action{
		"/etc/machine-id":                                 Empty,
		"/var/lib/dbus/machine-id":                        Empty,
		"/etc/ssh/ssh_host_ed25519_key":                   Delete,
		"/etc/ssh/ssh_host_ed25519_key.pub":               Delete,
		"/var/lib/dhcp/dhclient.eth0.leases":              Delete,
		"/var/lib/NetworkManager/internal-x.lease":        Delete,
		"/root/.bash_history":                             Delete,
		"/home/alice/.bash_history":                       Delete,
		"/home/alice/.zsh_history":                        Delete,
		"/var/log/syslog":                                 Truncate,
		"/var/log/syslog.1":                               Delete,
		"/var/log/dpkg.log.2.gz":                          Delete,
		"/var/log/apt/history.log":                        Truncate,
		"/var/log/journal/abc/system.journal":             Delete,
		"/var/lib/cloud/instances/i-123":                  Delete,
		"/var/lib/cloud/instance":                         Delete,
		"/var/lib/cloud/sem/config_scripts_per_once.once": Delete,
		"/etc/udev/rules.d/70-persistent-net.rules":       Delete,
		"/var/lib/systemd/random-seed":                    Delete,
	}
}

func checkPlan(t *testing.T, p *Plan, want map[string]Action) {
	t.Helper()
	got := map[string]Action{}
	for _, c := range p.Changes {
		got[c.Path] = c.Action
		if c.Reason == "" {
			t.Errorf("%s: no reason", c.Path)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: action %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected change %s %s", v, k)
		}
	}
}

func TestCaptureGeneralizedLeavesSourceAlone(t *testing.T) {
	tmp := t.TempDir()
	root, outside := filepath.Join(tmp, "root"), filepath.Join(tmp, "outside")
	want := fakeSystem(t, root, outside)
	treetest.Generate(t, filepath.Join(root, "usr/share/bulk"), treetest.Options{Seed: 3})
	before, err := treetest.Snapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	outBefore, _ := treetest.Snapshot(outside)

	p, err := Scan(root, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p, want)
	for _, line := range []string{"empty /etc/machine-id: ", "delete /etc/ssh/ssh_host_ed25519_key: SSH host key"} {
		if !strings.Contains(p.Report(), line) {
			t.Errorf("report lacks %q:\n%s", line, p.Report())
		}
	}

	out := filepath.Join(tmp, "ref.wim")
	wimtest.Capture(t, root, out, wim.WriterOptions{Compression: wim.CompressionXPRESS}, wim.ImageOptions{Name: "ref", Filter: p.Filter()})

	// The source and what its links point to are byte-identical.
	after, err := treetest.Snapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	if d := treetest.Diff(before, after, treetest.DiffOptions{}); len(d) > 0 {
		t.Errorf("source changed by the capture:\n%s", strings.Join(d, "\n"))
	}
	outAfter, _ := treetest.Snapshot(outside)
	if d := treetest.Diff(outBefore, outAfter, treetest.DiffOptions{}); len(d) > 0 {
		t.Errorf("outside changed:\n%s", strings.Join(d, "\n"))
	}

	// The image is the source minus the plan, and exactly that.
	rc, err := wim.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	img, _ := rc.Image(1)
	for path, a := range want {
		f, err := img.Lookup(path)
		switch a {
		case Delete:
			if !errors.Is(err, wim.ErrNotFound) {
				t.Errorf("%s: still in the image (%v)", path, err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if f.Size != 0 || f.Perm() != 0o600 {
				t.Errorf("%s: size %d perm %o, want empty 0600", path, f.Size, f.Perm())
			}
		}
	}
	applied := filepath.Join(tmp, "applied")
	if err := rc.Apply(context.Background(), 1, applied, wim.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := treetest.Snapshot(applied)
	if err != nil {
		t.Fatal(err)
	}
	opts := treetest.WIMOptions()
	opts.IgnoreDirMtime = true // directories lost entries, the source's mtimes are kept
	opts.Ignore = func(path string) bool {
		path = "/" + strings.TrimPrefix(path, "/")
		for w := range want {
			if path == w || strings.HasPrefix(path, w+"/") {
				return true
			}
		}
		return false
	}
	if d := treetest.Diff(before, got, opts); len(d) > 0 {
		t.Errorf("image differs from the source beyond the plan:\n%s", strings.Join(d, "\n"))
	}
	if b, _ := os.ReadFile(filepath.Join(applied, "var/lib/cloud/seed/nocloud/user-data")); string(b) != "#cloud-config\n" {
		t.Errorf("cloud-init seed lost: %q", b)
	}
}

func TestApplyInPlace(t *testing.T) {
	tmp := t.TempDir()
	root, outside := filepath.Join(tmp, "root"), filepath.Join(tmp, "outside")
	want := fakeSystem(t, root, outside)
	outBefore, _ := treetest.Snapshot(outside)
	p, err := Scan(root, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyInPlace(root); err != nil {
		t.Fatal(err)
	}
	for path, a := range want {
		fi, err := os.Lstat(filepath.Join(root, path))
		if a == Delete {
			if err == nil {
				t.Errorf("%s not deleted", path)
			}
		} else if err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", path, fi, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "home/alice/notes.txt")); string(b) != "keep me\n" {
		t.Errorf("notes.txt: %q", b)
	}
	outAfter, _ := treetest.Snapshot(outside)
	if d := treetest.Diff(outBefore, outAfter, treetest.DiffOptions{}); len(d) > 0 {
		t.Errorf("in-place generalize reached outside the root:\n%s", strings.Join(d, "\n"))
	}
	// Scanning again finds only the (now empty) files it keeps.
	p2, err := Scan(root, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p2.Changes {
		if c.Action == Delete || c.Size != 0 {
			t.Errorf("left after apply: %+v", c)
		}
	}
}

func TestOptionsSwitch(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	fakeSystem(t, root, filepath.Join(tmp, "outside"))
	p, err := Scan(root, Options{SSHHostKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p, map[string]Action{"/etc/ssh/ssh_host_ed25519_key": Delete, "/etc/ssh/ssh_host_ed25519_key.pub": Delete})
	p, err = Scan(root, Options{})
	if err != nil || len(p.Changes) != 0 {
		t.Errorf("no options: %v %v", p.Changes, err)
	}
}
