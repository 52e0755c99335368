package answer

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/minint/minint/internal/passwd"
)

func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/shadow":  "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/group":   "root:x:0:\nsudo:x:27:\nusers:x:100:\nnogroup:x:65534:\n",
		"etc/gshadow": "root:*::\nsudo:*::\nusers:*::\nnogroup:*::\n",
		"etc/hosts":   "127.0.0.1\tlocalhost\n127.0.1.1\told-name\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func sample() *Answer {
	return &Answer{
		Hostname: "web1.example.org",
		Users: []User{{
			Name: "alice", PasswordHash: "$6$salt$abcdefgh", Groups: []string{"sudo"}, Shell: "/bin/bash",
			SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@laptop"},
		}, {Name: "bob", UID: 2000}},
		Network: []Interface{{Match: "en*", DHCP: true, DNS: []string{"192.0.2.53"}}},
		Files:   []File{{Path: "/etc/motd", Content: "hello\n", Mode: "0640", Owner: "alice:sudo"}},
	}
}

// treeSum hashes every path, mode, owner and content under root.
func treeSum(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Lstat(p)
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s %v %d %d\n", strings.TrimPrefix(p, root), fi.Mode(), st.Uid, st.Gid)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApply(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown files in the fake root")
	}
	root := fakeRoot(t)
	a := sample()
	// No networkd in the fake root: the ifupdown format, which needs a name.
	a.Network[0].Match = "ens3"
	if err := Apply(a, root, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, root, "/etc/hostname"); got != "web1.example.org\n" {
		t.Errorf("hostname = %q", got)
	}
	if got := read(t, root, "/etc/hosts"); !strings.Contains(got, "127.0.1.1\tweb1.example.org\tweb1\n") || strings.Contains(got, "old-name") || !strings.Contains(got, "127.0.0.1\tlocalhost") {
		t.Errorf("hosts = %q", got)
	}
	passwd := read(t, root, "/etc/passwd")
	if !strings.Contains(passwd, "alice:x:1000:1000::/home/alice:/bin/bash\n") || !strings.Contains(passwd, "bob:x:2000:2000::/home/bob:/bin/sh\n") {
		t.Errorf("passwd = %q", passwd)
	}
	if s := read(t, root, "/etc/shadow"); !strings.Contains(s, "alice:$6$salt$abcdefgh:") || !strings.Contains(s, "bob:!:") {
		t.Errorf("shadow = %q", s)
	}
	group := read(t, root, "/etc/group")
	if !strings.Contains(group, "sudo:x:27:alice\n") || !strings.Contains(group, "alice:x:1000:\n") {
		t.Errorf("group = %q", group)
	}
	if g := read(t, root, "/etc/gshadow"); !strings.Contains(g, "sudo:*::alice\n") {
		t.Errorf("gshadow = %q", g)
	}
	fi, err := os.Stat(filepath.Join(root, "home/alice/.ssh/authorized_keys"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 || fi.Mode().Perm() != 0o600 {
		t.Errorf("authorized_keys owner %d:%d mode %v", st.Uid, st.Gid, fi.Mode())
	}
	fi, _ = os.Stat(filepath.Join(root, "etc/motd"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 27 || fi.Mode().Perm() != 0o640 {
		t.Errorf("motd owner %d:%d mode %v", st.Uid, st.Gid, fi.Mode())
	}
	if n := read(t, root, "/etc/network/interfaces.d/minint"); !strings.Contains(n, "iface ens3 inet dhcp") {
		t.Errorf("interfaces.d = %q", n)
	}
	if n := read(t, root, "/etc/resolv.conf"); n != "nameserver 192.0.2.53\n" {
		t.Errorf("resolv.conf = %q", n)
	}
	// Idempotent: applying again changes nothing.
	mid := treeSum(t, root)
	if err := Apply(a, root, Options{}); err != nil {
		t.Fatal(err)
	}
	if after := treeSum(t, root); after != mid {
		t.Errorf("second apply changed the tree")
	}
}

func TestApplyGlobNeedsNetworkd(t *testing.T) {
	root := fakeRoot(t)
	before := treeSum(t, root)
	err := Apply(sample(), root, Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ifupdown") {
		t.Fatalf("err = %v", err)
	}
	if treeSum(t, root) != before {
		t.Error("a rejected answer changed the tree")
	}
	os.MkdirAll(filepath.Join(root, "lib/systemd"), 0o755)
	os.WriteFile(filepath.Join(root, "lib/systemd/systemd-networkd"), nil, 0o755)
	if os.Geteuid() != 0 {
		return
	}
	if err := Apply(sample(), root, Options{}); err != nil {
		t.Fatal(err)
	}
	if n := read(t, root, "/etc/systemd/network/50-minint-0.network"); n != "# Written by minint-setup from the answer file.\n[Match]\nName=en*\n\n[Network]\nDHCP=yes\nDNS=192.0.2.53\n" {
		t.Errorf("network file = %q", n)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service")); err != nil || l != "/lib/systemd/system/systemd-networkd.service" {
		t.Errorf("networkd not enabled: %q %v", l, err)
	}
}

func TestRejectedBeforeWriting(t *testing.T) {
	cases := map[string]func(a *Answer){
		"bad hostname":        func(a *Answer) { a.Hostname = "bad_host!" },
		"clear-text password": func(a *Answer) { a.Users[0].PasswordHash = "hunter2" },
		"unknown group":       func(a *Answer) { a.Users[0].Groups = []string{"wheel"} },
		"relative file":       func(a *Answer) { a.Files[0].Path = "etc/motd" },
		"bad mode":            func(a *Answer) { a.Files[0].Mode = "rw-r--r--" },
		"unknown owner":       func(a *Answer) { a.Files[0].Owner = "carol" },
		"bad address":         func(a *Answer) { a.Network[0] = Interface{Match: "eth0", Addresses: []string{"10.0.0.300/24"}} },
		"no dhcp no address":  func(a *Answer) { a.Network[0] = Interface{Match: "eth0"} },
		"missing command":     func(a *Answer) { a.Commands = [][]string{{"/bin/nonexistent"}} },
		"duplicate user":      func(a *Answer) { a.Users[1].Name = "alice" },
		"uid taken":           func(a *Answer) { a.Users[1].UID = 65534 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			root := fakeRoot(t)
			before := treeSum(t, root)
			a := sample()
			a.Network[0].Match = "eth0"
			mutate(a)
			if err := Apply(a, root, Options{}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if treeSum(t, root) != before {
				t.Error("rejected answer changed the tree")
			}
		})
	}
}

func TestCommandsRunInTarget(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root (chroot) and busybox-static")
	}
	root := fakeRoot(t)
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	b, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755)
	a := &Answer{Commands: [][]string{
		{"/bin/busybox", "sh", "-c", "echo one > /ran"},
		{"/bin/busybox", "sh", "-c", "echo two >> /ran"},
	}}
	if err := Apply(a, root, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, root, "/ran"); got != "one\ntwo\n" {
		t.Errorf("commands wrote %q", got)
	}
	a.Commands = append(a.Commands, []string{"/bin/busybox", "false"}, []string{"/bin/busybox", "sh", "-c", "echo never >> /ran"})
	if err := Apply(a, root, Options{}); err == nil || !strings.Contains(err.Error(), "false") {
		t.Fatalf("failing command: err = %v", err)
	}
	if got := read(t, root, "/ran"); got != "one\ntwo\n" {
		t.Errorf("commands after a failure ran: %q", got)
	}
}

func TestRemoveArg(t *testing.T) {
	in := "LABEL minint\n  KERNEL /vmlinuz\n  APPEND root=UUID=x rw init=/minint/minint-setup quiet\n"
	out, changed := removeArg([]byte(in), InitArg)
	if !changed || string(out) != "LABEL minint\n  KERNEL /vmlinuz\n  APPEND root=UUID=x rw quiet\n" {
		t.Fatalf("got %q %v", out, changed)
	}
	if again, ch := removeArg(out, InitArg); ch || string(again) != string(out) {
		t.Errorf("second removal changed %q", again)
	}
	if _, ch := removeArg([]byte("options init=/minint/minint-setupX\n"), InitArg); ch {
		t.Error("removed a different argument")
	}
}

// TestMalformedTargetAccountsRefused: a target account file with a record
// of the wrong field count is refused, naming file and line, before
// anything is written: rewriting it would shift fields into other meanings.
func TestMalformedTargetAccountsRefused(t *testing.T) {
	for file, content := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nodd:x:1000:1000:/home/odd:/bin/sh\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\nodd:*\n",
		"etc/group":  "root:x:0:\nsudo:x:27\n",
	} {
		t.Run(file, func(t *testing.T) {
			root := fakeRoot(t)
			os.WriteFile(filepath.Join(root, file), []byte(content), 0o644)
			before := treeSum(t, root)
			err := Apply(sample(), root, Options{NoCommands: true})
			if !errors.Is(err, passwd.ErrFormat) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("Apply = %v, want a format error naming %s line 2", err, file)
			}
			if treeSum(t, root) != before {
				t.Error("refused answer changed the tree")
			}
		})
	}
}
