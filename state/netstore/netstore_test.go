package netstore

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/state"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the captured tree has several owners")
	}
}

var spec = state.Spec{Key: testKey, Paths: []string{"/etc/ssh"}}

// testKey signs the stores the tests capture; testKeys is what pulls and
// restores trust.
var (
	testKey  = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	testKeys = []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
)

// makeRoot is a system root with one user whose home is a treetest tree.
func makeRoot(t *testing.T, dir string, small bool) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/sh\nbob:x:1002:1002::/home/bob:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nalice:x:1001:\nbob:x:1002:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/ssh/ssh_host_ed25519_key"), []byte("KEY\n"), 0o600)
	treetest.Generate(t, filepath.Join(dir, "home/alice"), treetest.Options{Seed: 2, Small: small, Owner: &treetest.Owner{UID: 1001, GID: 1001}})
	os.MkdirAll(filepath.Join(dir, "home/bob"), 0o700)
	os.Chown(filepath.Join(dir, "home/bob"), 1002, 1002)
}

func freshRoot(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\n"), 0o644)
}

func compare(t *testing.T, a, b string) {
	t.Helper()
	ta, err := treetest.Snapshot(a)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := treetest.Snapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := treetest.Diff(ta, tb, treetest.DiffOptions{IgnoreRoot: true}); len(d) > 0 {
		t.Fatalf("%s and %s differ:\n%s", a, b, strings.Join(d, "\n"))
	}
}

// startNginx runs nginx with WebDAV on a random local port and returns
// the base URL of its document root, which is www. nginx runs as the
// test's user, so the store it writes belongs to that user.
func startNginx(t *testing.T, www string) string {
	t.Helper()
	return testnginx.Start(t, www, testnginx.Options{WebDAV: true}).URL + "/"
}

func TestNetworkStoreNginx(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	www := t.TempDir()
	base := startNginx(t, www)
	url := base + "stores/pc-17"

	src := t.TempDir()
	makeRoot(t, src, false)
	store := filepath.Join(src, "minint/state")
	m, err := state.Capture(ctx, src, store, spec)
	if err != nil {
		t.Fatal(err)
	}
	var pushed int64
	if err := Push(ctx, store, url, Options{Progress: func(n int64) { pushed += n }}); err != nil {
		t.Fatal(err)
	}
	if pushed != m.Bytes {
		t.Errorf("progress %d bytes, manifest %d", pushed, m.Bytes)
	}
	// Replace: pull on "another machine" and restore there.
	pulled := filepath.Join(t.TempDir(), "state")
	if _, err := Pull(ctx, url, pulled, Options{Keys: testKeys}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	freshRoot(t, dst)
	if _, err := state.Restore(ctx, pulled, dst, state.RestoreOptions{Keys: testKeys}); err != nil {
		t.Fatal(err)
	}
	compare(t, filepath.Join(src, "home"), filepath.Join(dst, "home"))

	// A corrupt object on the server is caught on download.
	var obj string
	for _, e := range m.Entries {
		if e.Type == state.TypeFile && e.Link == "" && e.Size > 10 {
			obj = filepath.Join(www, "stores/pc-17", state.ObjectPath(e.SHA256))
			break
		}
	}
	good, _ := os.ReadFile(obj)
	bad := append([]byte{}, good...)
	bad[3] ^= 0xff
	os.WriteFile(obj, bad, 0o600)
	if _, err := Pull(ctx, url, t.TempDir(), Options{Keys: testKeys}); !errors.Is(err, state.ErrChecksum) {
		t.Fatalf("pull of a corrupt store = %v, want state.ErrChecksum", err)
	}
	os.WriteFile(obj, good, 0o600)

	// An interrupted push over the complete store leaves it refused.
	os.WriteFile(filepath.Join(src, "home/bob/new.txt"), []byte("written after the first push\n"), 0o644)
	if _, err := state.Capture(ctx, src, store, spec); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	err = Push(cctx, store, url, Options{Progress: func(int64) {
		if n++; n == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted push = %v", err)
	}
	if _, err := Pull(ctx, url, t.TempDir(), Options{Keys: testKeys}); !errors.Is(err, state.ErrIncomplete) {
		t.Fatalf("pull after an interrupted push = %v, want state.ErrIncomplete", err)
	}
	// Finishing the push makes it whole again, sending only what is missing.
	if err := Push(ctx, store, url, Options{}); err != nil {
		t.Fatal(err)
	}
	m2, err := Pull(ctx, url, pulled, Options{Keys: testKeys})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Entries) != len(m.Entries)+1 {
		t.Errorf("pulled %d entries, want %d", len(m2.Entries), len(m.Entries)+1)
	}
}

func TestDirectoryStore(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(src, "minint/state")
	if _, err := state.Capture(ctx, src, store, spec); err != nil {
		t.Fatal(err)
	}
	share := filepath.Join(t.TempDir(), "share")
	if err := Push(ctx, store, share, Options{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(share, state.IndexName))
	if _, err := Pull(ctx, share, t.TempDir(), Options{Keys: testKeys}); !errors.Is(err, state.ErrIncomplete) {
		t.Fatalf("pull without index = %v, want state.ErrIncomplete", err)
	}
	if err := Push(ctx, store, share, Options{}); err != nil {
		t.Fatal(err)
	}
	pulled := t.TempDir()
	if _, err := Pull(ctx, share, pulled, Options{Keys: testKeys}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	freshRoot(t, dst)
	if _, err := state.Restore(ctx, pulled, dst, state.RestoreOptions{Keys: testKeys}); err != nil {
		t.Fatal(err)
	}
	compare(t, filepath.Join(src, "home"), filepath.Join(dst, "home"))
}

// TestPushRefusedByServer: a server that refuses PUT gives an error naming
// the URL and status, and no index is ever written.
func TestPushRefusedByServer(t *testing.T) {
	needRoot(t)
	var puts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			puts = append(puts, r.URL.Path)
			http.Error(w, "read-only share", http.StatusForbidden)
		case http.MethodDelete, http.MethodHead, http.MethodGet:
			http.NotFound(w, r)
		default:
			http.Error(w, "no", http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(src, "minint/state")
	if _, err := state.Capture(context.Background(), src, store, spec); err != nil {
		t.Fatal(err)
	}
	err := Push(context.Background(), store, srv.URL+"/s/pc1", Options{})
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "/s/pc1/objects/") {
		t.Fatalf("Push = %v", err)
	}
	if len(puts) != 1 {
		t.Errorf("kept going after a refused PUT: %v", puts)
	}
}
