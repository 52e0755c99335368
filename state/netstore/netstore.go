// Package netstore moves user-state stores (package state) to and from a
// network location (HTTP PUT/GET/DELETE, as nginx's WebDAV module serves
// them with "dav_methods PUT DELETE MKCOL; create_full_put_path on;") or a
// plain directory, for the replace flow: capture on one machine, restore on
// another.
//
// It is separate from package state so that minint-setup, which only
// restores from a local directory, does not carry an HTTP client.
package netstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minint/minint/state"
	"github.com/minint/minint/state/internal/fsx"
)

// Options tune Push and Pull.
type Options struct {
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
	// Progress, when set, is called with the bytes of each object moved.
	Progress func(n int64)
}

// IsRemote says whether a store location is an HTTP(S) URL rather than a
// directory path.
func IsRemote(loc string) bool {
	return strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
}

// backend is a store location: a directory or an HTTP server that takes
// PUT and DELETE (nginx with dav_methods PUT DELETE and create_full_put_path).
type backend interface {
	get(ctx context.Context, rel string) (io.ReadCloser, error)
	// has reports whether rel exists with the given size.
	has(ctx context.Context, rel string, size int64) (bool, error)
	put(ctx context.Context, rel string, r io.Reader, size int64) error
	del(ctx context.Context, rel string) error
	String() string
}

func openBackend(loc string, opts Options) (backend, error) {
	if IsRemote(loc) {
		u, err := url.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("state store %q: %w", loc, err)
		}
		c := opts.Client
		if c == nil {
			c = http.DefaultClient
		}
		return &httpBackend{base: u, c: c}, nil
	}
	if strings.Contains(loc, "://") {
		return nil, fmt.Errorf("state store %q: only http, https and directory paths are supported", loc)
	}
	return dirBackend(loc), nil
}

// Push copies the store in storeDir to dest (URL or directory). The
// old index at dest is deleted first and the new manifest and index are
// written only after every object, so an interrupted push leaves a
// destination that Pull refuses. Objects already present with the
// right size are not sent again; every object sent is hashed on the way
// and the push fails if it does not match its name.
func Push(ctx context.Context, storeDir, dest string, opts Options) error {
	m, err := state.ReadManifest(storeDir)
	if err != nil {
		return err
	}
	b, err := openBackend(dest, opts)
	if err != nil {
		return err
	}
	if err := b.del(ctx, state.IndexName); err != nil {
		return fmt.Errorf("%s: removing old index: %w", b, err)
	}
	objs := m.Objects()
	for _, sum := range sortedObjects(objs) {
		size := objs[sum]
		rel := state.ObjectPath(sum)
		ok, err := b.has(ctx, rel, size)
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		if !ok {
			if err := pushFile(ctx, b, filepath.Join(storeDir, rel), rel, sum, size); err != nil {
				return err
			}
		}
		if opts.Progress != nil {
			opts.Progress(size)
		}
	}
	for _, name := range []string{state.ManifestName, state.IndexName} {
		data, err := os.ReadFile(filepath.Join(storeDir, name))
		if err != nil {
			return err
		}
		if err := b.put(ctx, name, strings.NewReader(string(data)), int64(len(data))); err != nil {
			return fmt.Errorf("%s: %s: %w", b, name, err)
		}
	}
	return nil
}

func sortedObjects(objs map[string]int64) []string {
	var s []string
	for sum := range objs {
		s = append(s, sum)
	}
	sort.Strings(s)
	return s
}

func pushFile(ctx context.Context, b backend, name, rel, sum string, size int64) error {
	f, err := fsx.OpenRegular(name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: object %s is missing", state.ErrIncomplete, sum)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if err := b.put(ctx, rel, io.TeeReader(io.LimitReader(f, size), h), size); err != nil {
		return fmt.Errorf("%s: %s: %w", b, rel, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%w: object %s read back as %s while pushing (changed since capture?)", state.ErrChecksum, sum, got)
	}
	return nil
}

// Pull copies the store at src (URL or directory) into dir and
// returns its manifest. The index and manifest must match, and every object
// is hashed as it arrives and kept only if it matches its name; objects
// already in dir that verify are not fetched again. The local index is
// written last.
func Pull(ctx context.Context, src, dir string, opts Options) (*state.Manifest, error) {
	b, err := openBackend(src, opts)
	if err != nil {
		return nil, err
	}
	idx, err := readAll(ctx, b, state.IndexName)
	if err != nil {
		return nil, err
	}
	man, err := readAll(ctx, b, state.ManifestName)
	if err != nil {
		return nil, err
	}
	m, err := state.DecodeManifest(idx, man)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, state.ObjectsDir), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(dir, state.IndexName)); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	objs := m.Objects()
	for _, sum := range sortedObjects(objs) {
		size := objs[sum]
		local := filepath.Join(dir, state.ObjectPath(sum))
		if got, n, err := fsx.HashFile(local); err == nil && got == sum && n == size {
			continue
		}
		if err := pullObject(ctx, b, sum, size, local); err != nil {
			return nil, err
		}
		if opts.Progress != nil {
			opts.Progress(size)
		}
	}
	if err := fsx.WriteFileSync(filepath.Join(dir, state.ManifestName), man); err != nil {
		return nil, err
	}
	if err := fsx.WriteFileSync(filepath.Join(dir, state.IndexName), idx); err != nil {
		return nil, err
	}
	return m, nil
}

func readAll(ctx context.Context, b backend, rel string) ([]byte, error) {
	r, err := b.get(ctx, rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s (capture or upload did not finish)", state.ErrIncomplete, b, rel)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", b, rel, err)
	}
	defer r.Close()
	// The manifest of a large home is megabytes, not gigabytes.
	data, err := io.ReadAll(io.LimitReader(r, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", b, rel, err)
	}
	return data, nil
}

func pullObject(ctx context.Context, b backend, sum string, size int64, local string) error {
	r, err := b.get(ctx, state.ObjectPath(sum))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s: object %s is missing", state.ErrIncomplete, b, sum)
	}
	if err != nil {
		return fmt.Errorf("%s: object %s: %w", b, sum, err)
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return err
	}
	tmp := local + ".part"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	// One byte more than expected shows an object that is too long.
	n, err := fsx.SparseCopy(out, io.TeeReader(io.LimitReader(r, size+1), h))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != sum || n != size {
			err = fmt.Errorf("%w: %s: object %s arrived as %d bytes with sha256 %s", state.ErrChecksum, b, sum, n, got)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, local)
}

type dirBackend string

func (d dirBackend) String() string { return string(d) }

func (d dirBackend) get(ctx context.Context, rel string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), rel))
}

func (d dirBackend) has(ctx context.Context, rel string, size int64) (bool, error) {
	fi, err := os.Stat(filepath.Join(string(d), rel))
	if os.IsNotExist(err) {
		return false, nil
	}
	return err == nil && fi.Size() == size, err
}

func (d dirBackend) put(ctx context.Context, rel string, r io.Reader, size int64) error {
	name := filepath.Join(string(d), rel)
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	tmp := name + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	n, err := fsx.SparseCopy(f, ctxReader{ctx, r})
	if err == nil && n != size {
		err = fmt.Errorf("wrote %d bytes, want %d", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	return fsx.SyncDir(filepath.Dir(name))
}

func (d dirBackend) del(ctx context.Context, rel string) error {
	err := os.Remove(filepath.Join(string(d), rel))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type httpBackend struct {
	base *url.URL
	c    *http.Client
}

func (h *httpBackend) String() string { return h.base.Redacted() }

func (h *httpBackend) url(rel string) string { return h.base.JoinPath(rel).String() }

func (h *httpBackend) do(ctx context.Context, method, rel string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.url(rel), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	return h.c.Do(req)
}

func statusErr(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: %s %s", resp.Request.Method, resp.Request.URL.Redacted(), resp.Status, strings.TrimSpace(string(msg)))
}

func (h *httpBackend) get(ctx context.Context, rel string) (io.ReadCloser, error) {
	resp, err := h.do(ctx, http.MethodGet, rel, nil, 0)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, os.ErrNotExist
	}
	defer resp.Body.Close()
	return nil, statusErr(resp)
}

func (h *httpBackend) has(ctx context.Context, rel string, size int64) (bool, error) {
	resp, err := h.do(ctx, http.MethodHead, rel, nil, 0)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.ContentLength == size, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, statusErr(resp)
}

func (h *httpBackend) put(ctx context.Context, rel string, r io.Reader, size int64) error {
	resp, err := h.do(ctx, http.MethodPut, rel, r, size)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusErr(resp)
	}
	return nil
}

func (h *httpBackend) del(ctx context.Context, rel string) error {
	resp, err := h.do(ctx, http.MethodDelete, rel, nil, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return statusErr(resp)
}
