package state

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/bounded"
	"golang.org/x/sys/unix"
)

// craft rewrites a store's manifest as an attacker with write access to
// the store would, with a matching index (the hashes are self-consistent;
// they prove nothing about who wrote them).
func craft(t *testing.T, store string, f func(m *Manifest)) {
	t.Helper()
	m, err := ReadManifest(store)
	if err != nil {
		t.Fatal(err)
	}
	f(m)
	if err := writeManifest(store, m, testKey); err != nil {
		t.Fatal(err)
	}
}

// object stores data in the store and returns its file entry.
func object(t *testing.T, store, rel string, data string, uid, gid, mode uint32) Entry {
	t.Helper()
	sum := sha256.Sum256([]byte(data))
	s := hex.EncodeToString(sum[:])
	p := filepath.Join(store, ObjectPath(s))
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return Entry{Path: rel, Type: TypeFile, UID: uid, GID: gid, Mode: mode, Size: int64(len(data)), SHA256: s}
}

func dir(rel string, uid, gid, mode uint32) Entry {
	return Entry{Path: rel, Type: TypeDir, UID: uid, GID: gid, Mode: mode}
}

// TestHostileStore: each attack a writable store made possible (issue
// 13.1) either fails the restore before anything is written or has its
// dangerous part dropped with a warning, the rest being restored.
func TestHostileStore(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name  string
		image map[string]string // replaces files of the fresh root
		paths []string          // RestoreOptions.Paths
		craft func(t *testing.T, store string, m *Manifest)
		check func(t *testing.T, dst string, rep *Report)
		warn  string // in Report.Warnings
	}{
		{name: "uid 0 account through a newline in a passwd line",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Accounts.Passwd[0] += "\nroot2:x:0:0::/root:/bin/sh"
				m.Accounts.Shadow = append(m.Accounts.Shadow, "root2:$6$known$hash:19000:0:99999:7:::")
				m.Accounts.Passwd = append(m.Accounts.Passwd, "toor:x:0:0::/root:/bin/sh", "eve:x:1003:0::/home/eve:/bin/sh")
			},
			check: func(t *testing.T, dst string, rep *Report) {
				pw := read(t, dst, "etc/passwd")
				if strings.Contains(pw, "root2") || strings.Contains(pw, "toor") || strings.Contains(pw, "eve") || strings.Count(pw, ":x:0:") != 1 {
					t.Errorf("passwd gained a root account:\n%s", pw)
				}
				if strings.Contains(read(t, dst, "etc/shadow"), "known") {
					t.Errorf("shadow gained the known password")
				}
				if !strings.Contains(pw, "\nbob:x:1002:") {
					t.Errorf("the well-formed account bob was not restored:\n%s", pw)
				}
			},
			warn: "newline"},
		{name: "account without a password",
			craft: func(t *testing.T, store string, m *Manifest) {
				for i, l := range m.Accounts.Shadow {
					if strings.HasPrefix(l, "bob:") {
						m.Accounts.Shadow[i] = "bob::19000:0:99999:7:::"
					}
				}
			},
			check: func(t *testing.T, dst string, rep *Report) {
				if sh := read(t, dst, "etc/shadow"); !strings.Contains(sh, "\nbob:!:") {
					t.Errorf("bob restored with an empty password:\n%s", sh)
				}
			},
			warn: "empty password"},
		{name: "new user added to root and sudo",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Accounts.Members = map[string][]string{"sudo": {"bob"}, "root": {"bob", "alice"}}
				m.Accounts.Group = append(m.Accounts.Group, "root:x:0:bob", "wheel:x:10:bob")
			},
			check: func(t *testing.T, dst string, rep *Report) {
				gr := read(t, dst, "etc/group")
				if !strings.Contains(gr, "root:x:0:\n") || !strings.Contains(gr, "sudo:x:27:\n") || strings.Contains(gr, "wheel") {
					t.Errorf("system groups gained members:\n%s", gr)
				}
			},
			warn: "system group"},
		{name: "existing user added to disk",
			image: map[string]string{
				"etc/passwd": "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n",
				"etc/group":  "root:x:0:\ndisk:x:6:\nalice:x:1001:\ndevs:x:1500:\n",
			},
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Accounts.Members = map[string][]string{"disk": {"alice"}, "devs": {"alice"}}
				m.Accounts.Group = append(m.Accounts.Group, "devs:x:1500:alice")
			},
			check: func(t *testing.T, dst string, rep *Report) {
				gr := read(t, dst, "etc/group")
				if !strings.Contains(gr, "disk:x:6:\n") || !strings.Contains(gr, "devs:x:1500:\n") {
					t.Errorf("an account the image has gained groups:\n%s", gr)
				}
			},
			warn: "not an account this restore adds"},
		{name: "file in /etc/cron.d",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Entries = append(m.Entries, dir("etc", 0, 0, 0o755), dir("etc/cron.d", 0, 0, 0o755),
					object(t, store, "etc/cron.d/evil", "* * * * * root /home/bob/x\n", 0, 0, 0o644))
			},
			check: func(t *testing.T, dst string, rep *Report) {
				if _, err := os.Lstat(filepath.Join(dst, "etc/cron.d")); !os.IsNotExist(err) {
					t.Errorf("/etc/cron.d restored: %v", err)
				}
			},
			warn: "/etc not restored"},
		{name: "root's authorized_keys",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Entries = append(m.Entries, dir("root", 0, 0, 0o700), dir("root/.ssh", 0, 0, 0o700),
					object(t, store, "root/.ssh/authorized_keys", "ssh-ed25519 AAAA attacker\n", 0, 0, 0o600))
			},
			check: func(t *testing.T, dst string, rep *Report) {
				if _, err := os.Lstat(filepath.Join(dst, "root")); !os.IsNotExist(err) {
					t.Errorf("/root restored: %v", err)
				}
			},
			warn: "/root not restored"},
		{name: "setuid binaries in a home",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Entries = append(m.Entries,
					object(t, store, "home/bob/rootshell", "#!ELF root\n", 0, 0, 0o4755),
					object(t, store, "home/bob/own", "#!ELF bob\n", 1002, 1002, 0o6755),
					Entry{Path: "home/bob/link-to-rootshell", Type: TypeFile, Link: "home/bob/rootshell"})
				e := object(t, store, "home/bob/cap", "#!ELF cap\n", 1002, 1002, 0o755)
				e.Xattrs = map[string][]byte{"security.capability": {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
				m.Entries = append(m.Entries, e)
			},
			check: func(t *testing.T, dst string, rep *Report) {
				for _, p := range []string{"home/bob/rootshell", "home/bob/link-to-rootshell"} {
					if _, err := os.Lstat(filepath.Join(dst, p)); !os.IsNotExist(err) {
						t.Errorf("%s restored: %v", p, err)
					}
				}
				fi, err := os.Stat(filepath.Join(dst, "home/bob/own"))
				if err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
					t.Errorf("home/bob/own: %v %v, want 0755 without setuid/setgid", fi.Mode(), err)
				}
				if _, err := unix.Lgetxattr(filepath.Join(dst, "home/bob/cap"), "security.capability", make([]byte, 64)); err != unix.ENODATA {
					t.Errorf("home/bob/cap kept its file capability: %v", err)
				}
			},
			warn: "owned by uid 0"},
		{name: "home that is a symlink",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Accounts.Passwd = append(m.Accounts.Passwd, "eve:x:1005:1005::/home/eve:/bin/sh")
				m.Entries = append(m.Entries, Entry{Path: "home/eve", Type: TypeSymlink, UID: 1005, GID: 1005, Mode: 0o777, Target: "/etc"})
			},
			check: func(t *testing.T, dst string, rep *Report) {
				if _, err := os.Lstat(filepath.Join(dst, "home/eve")); !os.IsNotExist(err) {
					t.Errorf("home/eve restored: %v", err)
				}
			},
			warn: "a home that is a symlink"},
		{name: "links from a restored path into a home",
			paths: []string{"/etc/ssh"},
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Entries = append(m.Entries, object(t, store, "home/bob/cfg", "PermitRootLogin yes\n", 1002, 1002, 0o644),
					dir("etc", 0, 0, 0o755), dir("etc/ssh", 0, 0, 0o755),
					Entry{Path: "etc/ssh/sshd_config", Type: TypeFile, Link: "home/bob/cfg"},
					Entry{Path: "etc/ssh/moduli", Type: TypeSymlink, Target: "../../home/bob/cfg"},
					Entry{Path: "etc/ssh/ssh_config", Type: TypeSymlink, Target: "/tmp/x"},
					Entry{Path: "etc/ssh/ok", Type: TypeSymlink, Target: "sshd_config.d/../ssh_config"})
			},
			check: func(t *testing.T, dst string, rep *Report) {
				for _, p := range []string{"etc/ssh/sshd_config", "etc/ssh/moduli", "etc/ssh/ssh_config"} {
					if _, err := os.Lstat(filepath.Join(dst, p)); !os.IsNotExist(err) {
						t.Errorf("%s restored as a link out of /etc/ssh: %v", p, err)
					}
				}
				if _, err := os.Lstat(filepath.Join(dst, "etc/ssh/ok")); err != nil {
					t.Errorf("a symlink within /etc/ssh not restored: %v", err)
				}
				if _, err := os.Lstat(filepath.Join(dst, "home/bob/cfg")); err != nil {
					t.Errorf("bob's own file not restored: %v", err)
				}
			},
			warn: "in another restored subtree"},
		{name: "world-writable block device",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Entries = append(m.Entries,
					Entry{Path: "home/bob/disk", Type: TypeBlock, UID: 1002, GID: 1002, Mode: 0o666, Rdev: unix.Mkdev(8, 0)},
					Entry{Path: "home/bob/mem", Type: TypeChar, UID: 1002, GID: 1002, Mode: 0o666, Rdev: unix.Mkdev(1, 1)})
			},
			check: func(t *testing.T, dst string, rep *Report) {
				for _, p := range []string{"home/bob/disk", "home/bob/mem"} {
					if _, err := os.Lstat(filepath.Join(dst, p)); !os.IsNotExist(err) {
						t.Errorf("%s restored: %v", p, err)
					}
				}
			},
			warn: "device node"},
		{name: "files of another user in a home",
			craft: func(t *testing.T, store string, m *Manifest) {
				m.Entries = append(m.Entries, object(t, store, "home/bob/.profile", "alias ls='evil'\n", 1001, 1001, 0o644),
					// bob's, group root (what "chown bob" by root leaves): kept.
					object(t, store, "home/bob/big.bin", "data\n", 1002, 0, 0o644))
				// A captured account whose home is alice's.
				m.Accounts.Passwd = append(m.Accounts.Passwd, "mallory:x:1009:1009::/home/alice:/bin/sh")
			},
			check: func(t *testing.T, dst string, rep *Report) {
				if _, err := os.Lstat(filepath.Join(dst, "home/bob/.profile")); !os.IsNotExist(err) {
					t.Errorf("alice's file in bob's home restored: %v", err)
				}
				if _, err := os.Lstat(filepath.Join(dst, "home/bob/big.bin")); err != nil {
					t.Errorf("bob's file with group root not restored: %v", err)
				}
			},
			warn: "shared with"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			src := t.TempDir()
			makeRoot(t, src, true)
			os.RemoveAll(filepath.Join(src, "home/alice"))
			os.MkdirAll(filepath.Join(src, "home/alice"), 0o700)
			os.Chown(filepath.Join(src, "home/alice"), 1001, 1001)
			store := filepath.Join(t.TempDir(), "store")
			if _, err := Capture(ctx, src, store, Spec{Key: testKey, Copy: true}); err != nil {
				t.Fatal(err)
			}
			craft(t, store, func(m *Manifest) { c.craft(t, store, m) })
			dst := t.TempDir()
			freshRoot(t, dst)
			for p, data := range c.image {
				os.WriteFile(filepath.Join(dst, p), []byte(data), 0o644)
			}
			rep, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys, Paths: c.paths})
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, dst, rep)
			if !strings.Contains(strings.Join(rep.Warnings, "\n"), c.warn) {
				t.Errorf("no warning with %q: %q", c.warn, rep.Warnings)
			}
			// What the attack rode on is still restored.
			if b, err := os.ReadFile(filepath.Join(dst, "home/bob/notes.txt")); err != nil || string(b) != "bob's notes\n" {
				t.Errorf("bob's notes: %q %v", b, err)
			}
		})
	}
}

func read(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStoreBounds: a store's index and signature are read within their
// bound before anything can check them, so a store on a disk someone else
// wrote cannot make a reader load gigabytes. (The manifest's bound, 512
// MiB, takes the same path; reading that much here would only be slow.)
func TestStoreBounds(t *testing.T) {
	for _, c := range []struct {
		name string
		size int64
		read func(store string) error
	}{
		{IndexName, MaxIndex + 1, func(s string) error { _, err := ReadManifest(s); return err }},
		{SignatureName, MaxIndex + 1, func(s string) error {
			_, _, err := ReadSigned(s, []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)})
			return err
		}},
	} {
		store := t.TempDir()
		for _, n := range []string{IndexName, SignatureName, ManifestName} {
			os.WriteFile(filepath.Join(store, n), []byte("x\n"), 0o600)
		}
		if err := os.Truncate(filepath.Join(store, c.name), c.size); err != nil {
			t.Fatal(err)
		}
		if err := c.read(store); !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s of %d bytes: %v", c.name, c.size, err)
		}
	}
}
