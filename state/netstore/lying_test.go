package netstore

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/webdav/davtest"
	"github.com/minint/minint/sign"
	"github.com/minint/minint/state"
)

// captured returns a small captured store.
func captured(t *testing.T) (string, *state.Manifest) {
	t.Helper()
	src := t.TempDir()
	makeRoot(t, src, true)
	store := filepath.Join(src, "minint/state")
	m, err := state.Capture(context.Background(), src, store, spec)
	if err != nil {
		t.Fatal(err)
	}
	return store, m
}

// A store whose objects are already there with the right length but the
// wrong bytes (a HEAD that tells the length of garbage) gets them
// replaced: a push never skips an object on its length alone.
func TestPushReplacesGarbageOfTheRightLength(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	store, m := captured(t)
	www := t.TempDir()
	url := startNginx(t, www) + "stores/pc-9"
	for sum, size := range m.Objects() {
		p := filepath.Join(www, "stores/pc-9", state.ObjectPath(sum))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat("?", int(size))), 0o644)
	}
	if err := Push(ctx, store, url, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, url, t.TempDir(), Options{Keys: testKeys}); err != nil {
		t.Fatalf("pull after the push: %v", err)
	}
}

// A server that answers 201 and stores nothing, or stores a truncated
// file, makes the push fail: it is not "done" with the data lost.
func TestPushToLyingServer(t *testing.T) {
	needRoot(t)
	store, _ := captured(t)
	for _, lie := range []davtest.Lie{davtest.PutNothing, davtest.PutTruncated} {
		t.Run(string(lie), func(t *testing.T) {
			d := davtest.New(t, davtest.Config{Lie: lie})
			err := Push(context.Background(), store, d.URL+"/s/pc1", Options{})
			if err == nil || !strings.Contains(err.Error(), "does not hold what was written") {
				t.Fatalf("Push = %v, want a verification failure", err)
			}
			if d.Count("PUT") != 1 {
				t.Errorf("%d PUTs: the push went on after a failed object", d.Count("PUT"))
			}
		})
	}
}

// Pull reads an index and a manifest in bounded memory and time: an
// endless index is refused, a server that stops sending is cut.
func TestPullHostileServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/endless/"):
			buf := []byte(strings.Repeat("minint-state 1\n", 4096))
			for {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		case strings.HasPrefix(r.URL.Path, "/stuck/"):
			w.Write([]byte("minint-state 1\n"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	opts := Options{Client: quickClient(), Keys: testKeys}
	_, err := Pull(context.Background(), srv.URL+"/endless/pc1", t.TempDir(), opts)
	if !strings.Contains(fmt.Sprint(err), "too large") {
		t.Errorf("endless index: %v", err)
	}
	_, err = Pull(context.Background(), srv.URL+"/stuck/pc1", t.TempDir(), opts)
	if !strings.Contains(fmt.Sprint(err), "no data for") {
		t.Errorf("stuck server: %v", err)
	}
}

func quickClient() *httpx.Client {
	return &httpx.Client{Idle: 300 * time.Millisecond, Tries: 2, Backoff: time.Millisecond}
}

// TestPullRefusesUnsignedStore: a store location anyone can write (issue
// 13.1) is only believed with a signature by a trusted state key; an
// unsigned store, a foreign signature and an index rewritten after
// signing are refused before the manifest is read, and nothing is pulled.
// Push refuses to upload a store nobody could pull.
func TestPullRefusesUnsignedStore(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	store, _ := captured(t)
	_, foreign, _ := ed25519.GenerateKey(nil)
	cases := []struct {
		name  string
		spoil func(share string)
		keys  []ed25519.PublicKey
	}{
		{"unsigned", func(share string) { os.Remove(filepath.Join(share, state.SignatureName)) }, testKeys},
		{"foreign key", func(share string) {
			idx, _ := os.ReadFile(filepath.Join(share, state.IndexName))
			os.WriteFile(filepath.Join(share, state.SignatureName), signState(idx, foreign), 0o644)
		}, testKeys},
		{"tampered index", func(share string) {
			man, _ := os.ReadFile(filepath.Join(share, state.ManifestName))
			man = []byte(strings.Replace(string(man), `"passwd": [`, `"passwd": [ "eve:x:0:0::/root:/bin/sh",`, 1))
			os.WriteFile(filepath.Join(share, state.ManifestName), man, 0o644)
			sum := sha256.Sum256(man)
			os.WriteFile(filepath.Join(share, state.IndexName), fmt.Appendf(nil, "minint-state 1\nmanifest sha256:%x %d\n", sum, len(man)), 0o644)
		}, testKeys},
		{"no trusted key", func(string) {}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			share := filepath.Join(t.TempDir(), "share")
			if err := Push(ctx, store, share, Options{}); err != nil {
				t.Fatal(err)
			}
			c.spoil(share)
			dir := filepath.Join(t.TempDir(), "pulled")
			_, err := Pull(ctx, share, dir, Options{Keys: c.keys})
			if !errors.Is(err, state.ErrUnsigned) {
				t.Fatalf("Pull = %v, want ErrUnsigned", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused pull created %s", dir)
			}
		})
	}
	os.Remove(filepath.Join(store, state.SignatureName))
	if err := Push(ctx, store, filepath.Join(t.TempDir(), "share"), Options{}); !errors.Is(err, state.ErrUnsigned) {
		t.Errorf("Push of an unsigned store = %v, want ErrUnsigned", err)
	}
}

func signState(idx []byte, key ed25519.PrivateKey) []byte {
	sig, err := sign.Sign(idx, key, sign.Context{Purpose: sign.PurposeState})
	if err != nil {
		panic(err)
	}
	return sig
}
