package state

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/sign"
)

// makeRoot builds a fake system root with two users and state to capture.
func makeRoot(t *testing.T, dir string, small bool) {
	t.Helper()
	write := func(rel, data string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001:Alice:/home/alice:/bin/bash\nbob:x:1002:1002::/home/bob:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n", 0o644)
	write("etc/shadow", "root:*:19000:0:99999:7:::\nalice:$y$alicehash:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n", 0o640)
	write("etc/group", "root:x:0:\nsudo:x:27:alice\nalice:x:1001:\nbob:x:1002:\n", 0o644)
	write("etc/ssh/ssh_host_ed25519_key", "PRIVATE KEY\n", 0o600)
	write("etc/hostname", "old\n", 0o644)
	treetest.Generate(t, filepath.Join(dir, "home/alice"), treetest.Options{Seed: 1, Small: small, Owner: &treetest.Owner{UID: 1001, GID: 1001}})
	write("home/bob/notes.txt", "bob's notes\n", 0o640)
	write("home/bob/.cache/big", "cache\n", 0o644)
	for _, p := range []string{"home/bob", "home/bob/notes.txt", "home/bob/.cache", "home/bob/.cache/big"} {
		if err := os.Chown(filepath.Join(dir, p), 1002, 1002); err != nil {
			t.Fatal(err)
		}
	}
}

func freshRoot(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/shadow"), []byte("root:*:20000:0:99999:7:::\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nsudo:x:27:\n"), 0o644)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: captures files of several owners and restores them")
	}
}

var spec = Spec{Key: testKey, Paths: []string{"/etc/ssh"}, Exclude: []string{"/home/*/.cache"}}

func compare(t *testing.T, a, b string) {
	t.Helper()
	ta, err := treetest.Snapshot(a)
	if err != nil {
		t.Fatal(err)
	}
	compareTo(t, ta, b)
}

func compareTo(t *testing.T, ta treetest.Tree, b string) {
	t.Helper()
	a := ta.Root
	tb, err := treetest.Snapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	// .cache directories are excluded from the capture.
	opts := treetest.DiffOptions{IgnoreRoot: true, Ignore: func(p string) bool { return strings.Contains(p, ".cache") }}
	if d := treetest.Diff(ta, tb, opts); len(d) > 0 {
		t.Fatalf("%s and %s differ:\n%s", a, b, strings.Join(d, "\n"))
	}
}

func TestCaptureRestoreRoundTrip(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	makeRoot(t, src, false)
	store := filepath.Join(src, "minint/state")
	m, st, err := CaptureStat(ctx, src, store, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Copied != 0 || st.Linked == 0 {
		t.Fatalf("same filesystem: want only hard links, got %+v", st)
	}
	// The store really is hard links: same inode as the user's file.
	var fileE *Entry
	for i := range m.Entries {
		if m.Entries[i].Path == "home/alice/"+treetest.BigFile {
			fileE = &m.Entries[i]
		}
	}
	if fileE == nil {
		t.Fatal("big file not in manifest")
	}
	var a, b syscall.Stat_t
	syscall.Lstat(filepath.Join(src, fileE.Path), &a)
	syscall.Lstat(filepath.Join(store, ObjectPath(fileE.SHA256)), &b)
	if a.Ino != b.Ino || a.Nlink < 2 {
		t.Fatalf("object is not a hard link of the user file: ino %d vs %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	for _, e := range m.Entries {
		if strings.Contains(e.Path, ".cache") || strings.HasPrefix(e.Path, "minint") || e.Path == "etc/hostname" {
			t.Errorf("captured %s, which is excluded or not selected", e.Path)
		}
	}
	if len(m.Accounts.Passwd) != 2 || len(m.Accounts.Shadow) != 2 || m.Accounts.Members["sudo"][0] != "alice" {
		t.Errorf("accounts: %+v", m.Accounts)
	}

	want, err := treetest.Snapshot(filepath.Join(src, "home"))
	if err != nil {
		t.Fatal(err)
	}
	wantSSH, err := treetest.Snapshot(filepath.Join(src, "etc/ssh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, copyMode := range []bool{true, false} {
		dst := filepath.Join(base, "dst-copy")
		if !copyMode {
			dst = filepath.Join(base, "dst-link")
			// As the PE does: the old files go, the store keeps the only
			// names of the objects, which restore then links.
			os.RemoveAll(filepath.Join(src, "home"))
			os.RemoveAll(filepath.Join(src, "etc/ssh"))
		}
		freshRoot(t, dst)
		rep, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys, Copy: copyMode, Paths: spec.Paths})
		if err != nil {
			t.Fatal(err)
		}
		if copyMode && rep.Linked != 0 || !copyMode && rep.Linked == 0 {
			t.Errorf("copy=%v: report %+v", copyMode, rep)
		}
		compareTo(t, want, filepath.Join(dst, "home"))
		compareTo(t, wantSSH, filepath.Join(dst, "etc/ssh"))
		pw, _ := os.ReadFile(filepath.Join(dst, "etc/passwd"))
		sh, _ := os.ReadFile(filepath.Join(dst, "etc/shadow"))
		gr, _ := os.ReadFile(filepath.Join(dst, "etc/group"))
		if !strings.Contains(string(pw), "alice:x:1001:1001:Alice:/home/alice:/bin/bash\n") ||
			!strings.Contains(string(sh), "alice:$y$alicehash:") || !strings.Contains(string(gr), "alice:x:1001:\n") ||
			strings.Contains(string(pw), "nobody") {
			t.Errorf("accounts not merged:\n%s\n%s\n%s", pw, sh, gr)
		}
		// sudo is a system group: the old membership is reported, not restored.
		if !strings.Contains(string(gr), "sudo:x:27:\n") || !strings.Contains(strings.Join(rep.Warnings, "\n"), "system group sudo") {
			t.Errorf("sudo membership: group %q, warnings %q", gr, rep.Warnings)
		}
		if fi, _ := os.Stat(filepath.Join(dst, "etc/shadow")); fi.Mode().Perm() != 0o640 {
			t.Errorf("shadow mode %v", fi.Mode())
		}
	}
}

func TestCopyFallbackAcrossFilesystems(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	src := t.TempDir()
	makeRoot(t, src, true)
	store, err := os.MkdirTemp("/dev/shm", "state-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(store)
	var a, b syscall.Stat_t
	syscall.Stat(src, &a)
	syscall.Stat(store, &b)
	if a.Dev == b.Dev {
		t.Skip("temp dir and /dev/shm are on the same filesystem")
	}
	_, st, err := CaptureStat(context.Background(), src, store, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Linked != 0 || st.Copied == 0 {
		t.Fatalf("across filesystems: want copies, got %+v", st)
	}
	dst := t.TempDir()
	freshRoot(t, dst)
	if _, err := Restore(context.Background(), store, dst, RestoreOptions{Keys: testKeys}); err != nil {
		t.Fatal(err)
	}
	compare(t, filepath.Join(src, "home"), filepath.Join(dst, "home"))
}

// TestBrokenStoreRefused: nothing may be written into the target when the
// store is missing an object, has a corrupt one, or a damaged manifest.
func TestBrokenStoreRefused(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		break_ func(t *testing.T, store string, m *Manifest)
		want   error
	}{
		{"missing object", func(t *testing.T, store string, m *Manifest) {
			for sum := range m.Objects() {
				os.Remove(filepath.Join(store, ObjectPath(sum)))
				return
			}
		}, ErrIncomplete},
		{"corrupt object", func(t *testing.T, store string, m *Manifest) {
			for sum, n := range m.Objects() {
				if n > 0 {
					f, _ := os.OpenFile(filepath.Join(store, ObjectPath(sum)), os.O_WRONLY, 0)
					f.WriteAt([]byte{'!'}, 0)
					f.Close()
					return
				}
			}
		}, ErrChecksum},
		{"truncated manifest", func(t *testing.T, store string, m *Manifest) {
			p := filepath.Join(store, ManifestName)
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}, ErrChecksum},
		{"no index", func(t *testing.T, store string, m *Manifest) {
			os.Remove(filepath.Join(store, IndexName))
		}, ErrIncomplete},
		{"unsigned", func(t *testing.T, store string, m *Manifest) {
			os.Remove(filepath.Join(store, SignatureName))
		}, ErrUnsigned},
		{"signed by a foreign key", func(t *testing.T, store string, m *Manifest) {
			_, other, _ := ed25519.GenerateKey(nil)
			idx, _ := os.ReadFile(filepath.Join(store, IndexName))
			os.WriteFile(filepath.Join(store, SignatureName), signState(idx, other), 0o600)
		}, ErrUnsigned},
		{"tampered index", func(t *testing.T, store string, m *Manifest) {
			// A consistent manifest and index by someone without the key;
			// the signature is the capture's.
			m.Accounts.Passwd = append(m.Accounts.Passwd, "eve:x:1005:1005::/home/eve:/bin/sh")
			sig, _ := os.ReadFile(filepath.Join(store, SignatureName))
			if err := writeManifest(store, m, nil); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(store, SignatureName), sig, 0o600)
		}, ErrUnsigned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			makeRoot(t, src, true)
			store := filepath.Join(t.TempDir(), "store")
			m, err := Capture(ctx, src, store, Spec{Key: testKey, Copy: true})
			if err != nil {
				t.Fatal(err)
			}
			c.break_(t, store, m)
			dst := t.TempDir()
			freshRoot(t, dst)
			before, _ := treetest.Snapshot(dst)
			_, err = Restore(ctx, store, dst, RestoreOptions{Keys: testKeys})
			if !errors.Is(err, c.want) {
				t.Fatalf("Restore = %v, want %v", err, c.want)
			}
			after, _ := treetest.Snapshot(dst)
			if d := treetest.Diff(before, after, treetest.DiffOptions{}); len(d) > 0 {
				t.Fatalf("refused restore still changed the target:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestRestoreNeedsKeys: without a key to check it with, even a store
// signed at capture is refused, before anything is written.
func TestRestoreNeedsKeys(t *testing.T) {
	needRoot(t)
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(t.TempDir(), "store")
	if _, err := Capture(context.Background(), src, store, spec); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	freshRoot(t, dst)
	if _, err := Restore(context.Background(), store, dst, RestoreOptions{}); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Restore without keys = %v, want ErrUnsigned", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "home")); !os.IsNotExist(err) {
		t.Fatal("files were restored from an unchecked store")
	}
	m, id, err := ReadSigned(store, testKeys)
	if err != nil || id != sign.KeyID(testKeys[0]) || len(m.Entries) == 0 {
		t.Fatalf("ReadSigned = %v, %q, %v", m, id, err)
	}
}

func TestAccountConflict(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(t.TempDir(), "store")
	if _, err := Capture(ctx, src, store, Spec{Key: testKey}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	freshRoot(t, dst)
	// The new image uses uid 1001 for someone else.
	os.WriteFile(filepath.Join(dst, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\ncarol:x:1001:1001::/home/carol:/bin/sh\n"), 0o644)
	_, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys})
	if !errors.Is(err, ErrAccountConflict) || !strings.Contains(err.Error(), "carol") {
		t.Fatalf("Restore = %v, want an account conflict naming carol", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "home")); !os.IsNotExist(err) {
		t.Fatal("files were restored despite the conflict")
	}
	// Same name and id in the image: the image's entry is kept.
	os.WriteFile(filepath.Join(dst, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001:Image Alice:/home/alice:/bin/zsh\n"), 0o644)
	rep, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := os.ReadFile(filepath.Join(dst, "etc/passwd"))
	if !strings.Contains(string(pw), "Image Alice") || strings.Count(string(pw), "\nalice:") != 1 || len(rep.UsersAdded) != 1 || rep.UsersAdded[0] != "bob" {
		t.Fatalf("merge: %+v\n%s", rep, pw)
	}
}

func TestSymlinkedParentRefused(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(t.TempDir(), "store")
	if _, err := Capture(ctx, src, store, Spec{Key: testKey, NoHomes: true, Paths: []string{"/etc/ssh"}}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	outside := t.TempDir()
	freshRoot(t, dst)
	if err := os.Symlink(outside, filepath.Join(dst, "etc/ssh")); err != nil {
		t.Fatal(err)
	}
	// etc/ssh is a symlink in the target: it is replaced by a directory; nothing lands outside.
	if _, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys, Paths: []string{"/etc/ssh"}}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("restore wrote through a symlink: %v", ents)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "etc/ssh/ssh_host_ed25519_key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key not restored: %v %v", fi, err)
	}
}

// TestRecapture: capturing again into the same store (as the PE does,
// once nothing else runs) takes the files as they are now, with the spec
// recorded by the first capture, and drops objects no longer used.
func TestRecapture(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(src, "minint/state")
	m1, err := Capture(ctx, src, store, spec)
	if err != nil {
		t.Fatal(err)
	}
	// A program rewrites a file in place after the capture: with hard
	// links the store object changes too, so the store no longer verifies.
	note := filepath.Join(src, "home/bob/notes.txt")
	if err := os.WriteFile(note, []byte("changed after the capture\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, store, m1); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Verify after an in-place change = %v, want ErrChecksum", err)
	}
	old, _ := ReadManifest(store)
	again := old.Spec.Spec()
	again.Key = testKey
	m2, err := Capture(ctx, src, store, again)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, store, m2); err != nil {
		t.Fatal(err)
	}
	if len(m2.Entries) != len(m1.Entries) {
		t.Errorf("recapture with the recorded spec: %d entries, first had %d", len(m2.Entries), len(m1.Entries))
	}
	n := 0
	filepath.WalkDir(filepath.Join(store, ObjectsDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if n != len(m2.Objects()) {
		t.Errorf("store holds %d objects, manifest uses %d", n, len(m2.Objects()))
	}
	dst := t.TempDir()
	freshRoot(t, dst)
	if _, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "home/bob/notes.txt")); string(b) != "changed after the capture\n" {
		t.Errorf("restored %q", b)
	}
}

// TestRestoreTwice: setup runs again on the next boot after a failure, so
// restoring into a root that already has the state gives the same result.
func TestRestoreTwice(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(src, "minint/state")
	if _, err := Capture(ctx, src, store, spec); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(src, "new") // same filesystem: files are linked
	freshRoot(t, dst)
	for i := 0; i < 2; i++ {
		rep, err := Restore(ctx, store, dst, RestoreOptions{Keys: testKeys})
		if err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
		if i == 1 && len(rep.UsersAdded) != 0 {
			t.Errorf("second restore added users again: %v", rep.UsersAdded)
		}
	}
	compare(t, filepath.Join(src, "home"), filepath.Join(dst, "home"))
	pw, _ := os.ReadFile(filepath.Join(dst, "etc/passwd"))
	sh, _ := os.ReadFile(filepath.Join(dst, "etc/shadow"))
	if strings.Count(string(pw), "\nalice:") != 1 || strings.Count(string(sh), "alice:") != 1 {
		t.Errorf("accounts duplicated:\n%s\n%s", pw, sh)
	}
}

// testKey signs the stores the tests capture; testKeys is what restores
// trust.
var (
	testKey  = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	testKeys = []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
)

// signState signs a store index as state capture does, with key.
func signState(idx []byte, key ed25519.PrivateKey) []byte {
	sig, err := sign.Sign(idx, key, sign.Context{Purpose: sign.PurposeState})
	if err != nil {
		panic(err)
	}
	return sig
}
