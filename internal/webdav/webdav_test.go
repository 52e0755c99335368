package webdav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/testnginx"
	"github.com/minint/minint/internal/webdav/davtest"
)

func quick() *httpx.Client {
	return &httpx.Client{Idle: 2 * time.Second, Tries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func data(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// Each lie is caught by the write that met it, not reported as success.
func TestLyingServers(t *testing.T) {
	ctx := context.Background()
	b := data(100000, 1)
	obj := Sum(b)
	for _, tc := range []struct {
		lie      davtest.Lie
		op, want string
	}{
		{davtest.PutNothing, "put", "has no such file"},
		{davtest.PutTruncated, "put", "holds 50000 bytes, 100000 were written"},
		{davtest.Garbage, "put", "the server holds sha256"},
		{davtest.MoveNothing, "move", "has no"},
		{davtest.MoveCopy, "move", "still has"},
		{davtest.DeleteNothing, "delete", "still has"},
		{davtest.BadDigest, "put", "the server holds sha256"},
	} {
		t.Run(string(tc.lie), func(t *testing.T) {
			s := davtest.New(t, davtest.Config{Lie: tc.lie, Digest: tc.lie == davtest.BadDigest})
			c, err := New(s.URL+"/store", quick())
			if err != nil {
				t.Fatal(err)
			}
			switch tc.op {
			case "put":
				err = c.Put(ctx, "a/obj", bytes.NewReader(b), obj, nil)
			case "move":
				s.Store("/store/a.partial", b)
				err = c.Move(ctx, "a.partial", "a", obj, false)
			case "delete":
				s.Store("/store/index", b)
				err = c.Delete(ctx, "index")
			}
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrVerify saying %q", err, tc.want)
			}
		})
	}
}

// Check never takes a length for the content: a store that answers HEAD
// with the right length for garbage does not hold the object.
func TestCheckNeedsTheHash(t *testing.T) {
	ctx := context.Background()
	b := data(5000, 2)
	s := davtest.New(t, davtest.Config{Lie: davtest.Garbage})
	s.Store("/o", b)
	c, _ := New(s.URL, quick())
	if m, err := c.Check(ctx, "o", Sum(b), nil); err != nil || m != Differs {
		t.Fatalf("Check = %v, %v; want Differs", m, err)
	}
	s.Set(davtest.Config{})
	if m, err := c.Check(ctx, "o", Sum(b), nil); err != nil || m != Same {
		t.Fatalf("Check = %v, %v; want Same", m, err)
	}
	if m, err := c.Check(ctx, "none", Sum(b), nil); err != nil || m != Absent {
		t.Fatalf("Check = %v, %v; want Absent", m, err)
	}
	if m, err := c.Check(ctx, "o", Sum(b[1:]), nil); err != nil || m != Differs {
		t.Fatalf("Check of another size = %v, %v; want Differs", m, err)
	}
}

// A server that states the digest is believed without reading back.
func TestDigestSparesTheReadBack(t *testing.T) {
	ctx := context.Background()
	b := data(5000, 3)
	s := davtest.New(t, davtest.Config{Digest: true})
	c, _ := New(s.URL, quick())
	var last int64
	if err := c.Put(ctx, "o", bytes.NewReader(b), Sum(b), func(n int64) { last = n }); err != nil {
		t.Fatal(err)
	}
	read := false
	if m, err := c.Check(ctx, "o", Sum(b), func(int64) { read = true }); err != nil || m != Same {
		t.Fatalf("Check = %v, %v", m, err)
	}
	if last != int64(len(b)) || read {
		t.Errorf("progress %d after the PUT, read back %v: the digest proves the content, nothing is read back", last, read)
	}
}

func TestChangedWhileSent(t *testing.T) {
	s := davtest.New(t, davtest.Config{})
	c, _ := New(s.URL, quick())
	b := data(1000, 4)
	want := Sum(b)
	b[10] ^= 1 // the file changed after it was hashed
	err := c.Put(context.Background(), "o", bytes.NewReader(b), want, nil)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
}

// Credentials go as basic authentication, never in a Destination or an
// error.
func TestCredentials(t *testing.T) {
	ctx := context.Background()
	s := davtest.New(t, davtest.Config{Lie: davtest.MoveNothing})
	base := strings.Replace(s.URL, "http://", "http://minint:s3cret@", 1) + "/st"
	c, err := New(base, quick())
	if err != nil {
		t.Fatal(err)
	}
	b := data(100, 5)
	if err := c.Put(ctx, "x.partial", bytes.NewReader(b), Sum(b), nil); err != nil {
		t.Fatal(err)
	}
	err = c.Move(ctx, "x.partial", "x", Sum(b), false)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
	moved := false
	for _, r := range s.Requests() {
		if r.Authorization != "Basic "+base64.StdEncoding.EncodeToString([]byte("minint:s3cret")) {
			t.Errorf("%s: Authorization %q", r.Method, r.Authorization)
		}
		if r.Method == "MOVE" {
			moved = true
			if r.Destination != s.URL+"/st/x" {
				t.Errorf("Destination %q, want the URL without credentials", r.Destination)
			}
		}
	}
	if !moved {
		t.Error("no MOVE")
	}
	if strings.Contains(c.String(), "s3cret") {
		t.Errorf("String() = %s", c.String())
	}
	if _, err := New("ftp://u:s3cret@h/x", nil); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("New(ftp) = %v", err)
	}
}

// Against nginx's WebDAV, as deployed: Put, Check, Move (the ETag proves
// the rename: no read-back), Delete.
func TestNginx(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	n := testnginx.Start(t, root, testnginx.Options{WebDAV: true})
	c, err := New(n.URL+"/images", quick())
	if err != nil {
		t.Fatal(err)
	}
	b := data(3<<20+5, 6)
	obj := Sum(b)
	var last int64
	if err := c.Put(ctx, "2026/ref.wim.partial", bytes.NewReader(b), obj, func(d int64) { last = d }); err != nil {
		t.Fatal(err)
	}
	if last != 2*obj.Size {
		t.Errorf("progress ended at %d, want %d (sent and read back)", last, 2*obj.Size)
	}
	if m, err := c.Check(ctx, "2026/ref.wim.partial", obj, nil); err != nil || m != Same {
		t.Fatalf("Check = %v, %v", m, err)
	}
	before := len(n.AccessLog())
	if err := c.Move(ctx, "2026/ref.wim.partial", "2026/ref.wim", obj, false); err != nil {
		t.Fatal(err)
	}
	for _, l := range n.AccessLog()[before:] {
		if strings.Contains(l, `"GET `) {
			t.Errorf("MOVE verified by reading back: %s", l)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "images/2026/ref.wim")); !bytes.Equal(got, b) {
		t.Error("nginx does not hold the file")
	}
	// Overwrite refused: 412, with the hint.
	if err := c.Put(ctx, "2026/ref.wim.partial", bytes.NewReader(b), obj, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Move(ctx, "2026/ref.wim.partial", "2026/ref.wim", obj, false)
	var se *httpx.StatusError
	if !errors.As(err, &se) || se.Code != 412 || !strings.Contains(err.Error(), "overwriting was not allowed") {
		t.Fatalf("MOVE over an existing file = %v, want 412", err)
	}
	if err := c.Delete(ctx, "2026/ref.wim.partial"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "2026/never-there"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAll(ctx, "2026/ref.wim", 1<<20); !errors.Is(err, httpx.ErrTooLarge) {
		t.Errorf("ReadAll over its bound = %v", err)
	}
}

func TestDigestHeader(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	want := fmt.Sprintf("%x", sum)
	for hdr, exp := range map[[2]string]string{
		{"Repr-Digest", "sha-256=:" + b64 + ":"}:                 want,
		{"Repr-Digest", "sha-512=:AAAA:, sha-256=:" + b64 + ":"}: want,
		{"Digest", "SHA-256=" + b64}:                             want,
		{"Digest", "MD5=" + b64}:                                 "",
		{"Repr-Digest", "sha-256=:bm90IGEgc2hhMjU2:"}:            "",
		{"X-Other", "sha-256=:" + b64 + ":"}:                     "",
	} {
		h := http.Header{}
		h.Set(hdr[0], hdr[1])
		if got := digest(h); got != exp {
			t.Errorf("%s: %s gives %q, want %q", hdr[0], hdr[1], got, exp)
		}
	}
}
