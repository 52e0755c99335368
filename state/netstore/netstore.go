// Package netstore moves user-state stores (package state) to and from a
// network location (HTTP PUT/GET/DELETE, as nginx's WebDAV module serves
// them with "dav_methods PUT DELETE MKCOL; create_full_put_path on;", or
// `minint serve`) or a plain directory, for the replace flow: capture on
// one machine, restore on another.
//
// A push is the moment the user's data leaves the old machine for good, so
// nothing in it rests on the server's word (package webdav): an object
// already on the server is skipped only when its SHA-256 matches (a length
// proves nothing), every object sent is read back (or checked against the
// server's digest) before the next, and the index is written last. A
// pull reads the index and manifest within fixed bounds (state.MaxIndex,
// state.MaxManifest) and every object is hashed as it arrives.
//
// It is separate from package state so that minint-setup, which only
// restores from a local directory, does not carry an HTTP client.
package netstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/durable"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/internal/webdav"
	"github.com/minint/minint/state"
	"github.com/minint/minint/state/internal/fsx"
)

// Options tune Push and Pull.
type Options struct {
	// Client sends the HTTP requests (timeouts, retries); nil: a zero
	// httpx.Client.
	Client *httpx.Client
	// Progress, when set, is called with the bytes of each object moved.
	Progress func(n int64)
	// Keys are the state keys Pull accepts a store's signature from; a
	// store without a signature by one of them is refused before its
	// manifest is read.
	Keys []ed25519.PublicKey
}

// IsRemote says whether a store location is an HTTP(S) URL rather than a
// directory path.
func IsRemote(loc string) bool {
	return strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://")
}

// backend is a store location: a directory or a WebDAV server.
type backend interface {
	// get hands rel's content to consume (again from the start when a
	// transient failure made it retry); a missing rel is os.ErrNotExist.
	get(ctx context.Context, rel string, consume func(io.Reader) error) error
	readAll(ctx context.Context, rel string, limit int64) ([]byte, error)
	// has reports whether rel holds exactly obj (size and SHA-256).
	has(ctx context.Context, rel string, obj webdav.Object) (bool, error)
	// put stores obj.Size bytes of src as rel and returns once they are
	// known to be there; bytes that do not hash to obj.SHA256 are
	// webdav.ErrChanged.
	put(ctx context.Context, rel string, src io.ReaderAt, obj webdav.Object) error
	del(ctx context.Context, rel string) error
	String() string
}

func openBackend(loc string, opts Options) (backend, error) {
	if IsRemote(loc) {
		c, err := webdav.New(loc, opts.Client)
		if err != nil {
			return nil, fmt.Errorf("state store: %w", err)
		}
		return davBackend{c}, nil
	}
	if strings.Contains(loc, "://") {
		return nil, fmt.Errorf("state store %q: only http, https and directory paths are supported", loc)
	}
	return dirBackend(loc), nil
}

// Push copies the store in storeDir to dest (URL or directory). The
// old index at dest is deleted first and the new manifest and index are
// written only after every object, so an interrupted push leaves a
// destination that Pull refuses. An object already at dest is kept only
// if its SHA-256 matches; every object written is verified there (see
// the package doc), and the push fails if the local object no longer
// matches its name.
func Push(ctx context.Context, storeDir, dest string, opts Options) error {
	m, err := state.ReadManifest(storeDir)
	if err != nil {
		return err
	}
	// Nobody could pull an unsigned store: refuse before uploading.
	if _, err := os.Stat(filepath.Join(storeDir, state.SignatureName)); err != nil {
		return fmt.Errorf("%w: %s has no %s: capture it with a state key (minint keygen)", state.ErrUnsigned, storeDir, state.SignatureName)
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
		obj := webdav.Object{Size: objs[sum], SHA256: sum}
		rel := state.ObjectPath(sum)
		ok, err := b.has(ctx, rel, obj)
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		if !ok {
			if err := pushFile(ctx, b, filepath.Join(storeDir, rel), rel, obj); err != nil {
				return err
			}
		}
		if opts.Progress != nil {
			opts.Progress(obj.Size)
		}
	}
	for _, name := range []string{state.ManifestName, state.SignatureName, state.IndexName} {
		data, err := os.ReadFile(filepath.Join(storeDir, name))
		if err != nil {
			return err
		}
		if err := b.put(ctx, name, bytes.NewReader(data), webdav.Sum(data)); err != nil {
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

func pushFile(ctx context.Context, b backend, name, rel string, obj webdav.Object) error {
	f, err := fsx.OpenRegular(name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: object %s is missing", state.ErrIncomplete, obj.SHA256)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	err = b.put(ctx, rel, f, obj)
	if errors.Is(err, webdav.ErrChanged) {
		return fmt.Errorf("%w: object %s no longer matches its name while pushing (changed since capture?)", state.ErrChecksum, obj.SHA256)
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", b, rel, err)
	}
	return nil
}

// Pull copies the store at src (URL or directory) into dir and
// returns its manifest. The index must be signed by one of opts.Keys
// (checked before anything else is read), the index and manifest must
// match, and every object
// is hashed as it arrives and kept only if it matches its name; objects
// already in dir that verify are not fetched again. The local index is
// written last.
func Pull(ctx context.Context, src, dir string, opts Options) (*state.Manifest, error) {
	b, err := openBackend(src, opts)
	if err != nil {
		return nil, err
	}
	idx, err := readAll(ctx, b, state.IndexName, state.MaxIndex)
	if err != nil {
		return nil, err
	}
	sig, err := readAll(ctx, b, state.SignatureName, state.MaxIndex)
	if errors.Is(err, state.ErrIncomplete) {
		sig, err = nil, nil // CheckSignature says what is missing
	}
	if err != nil {
		return nil, err
	}
	if _, err := state.CheckSignature(idx, sig, opts.Keys); err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	man, err := readAll(ctx, b, state.ManifestName, state.MaxManifest)
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
	if err := durable.WriteFile(filepath.Join(dir, state.ManifestName), man, 0o600); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(dir, state.SignatureName), sig, 0o600); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(dir, state.IndexName), idx, 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

func readAll(ctx context.Context, b backend, rel string, limit int64) ([]byte, error) {
	data, err := b.readAll(ctx, rel, limit)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s (capture or upload did not finish)", state.ErrIncomplete, b, rel)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", b, rel, err)
	}
	return data, nil
}

func pullObject(ctx context.Context, b backend, sum string, size int64, local string) error {
	if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
		return err
	}
	err := b.get(ctx, state.ObjectPath(sum), func(r io.Reader) error {
		out, err := durable.Create(local, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		h := sha256.New()
		// One byte more than expected shows an object that is too long.
		n, err := fsx.SparseCopy(out.File, io.TeeReader(io.LimitReader(r, size+1), h))
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum || n != size {
			return fmt.Errorf("%w: %s: object %s arrived as %d bytes with sha256 %s", state.ErrChecksum, b, sum, n, got)
		}
		return out.Commit()
	})
	if errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("%w: %s: object %s is missing", state.ErrIncomplete, b, sum)
	} else if err != nil && !errors.Is(err, state.ErrChecksum) {
		err = fmt.Errorf("%s: object %s: %w", b, sum, err)
	}
	return err
}

type dirBackend string

func (d dirBackend) String() string { return string(d) }

func (d dirBackend) get(ctx context.Context, rel string, consume func(io.Reader) error) error {
	f, err := os.Open(filepath.Join(string(d), rel))
	if err != nil {
		return err
	}
	defer f.Close()
	return consume(ctxReader{ctx, f})
}

func (d dirBackend) readAll(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var b []byte
	err := d.get(ctx, rel, func(r io.Reader) (err error) {
		b, err = bounded.ReadAll(r, limit)
		return err
	})
	return b, err
}

func (d dirBackend) has(ctx context.Context, rel string, obj webdav.Object) (bool, error) {
	sum, n, err := fsx.HashFile(filepath.Join(string(d), rel))
	if os.IsNotExist(err) {
		return false, nil
	}
	return err == nil && n == obj.Size && sum == obj.SHA256, err
}

func (d dirBackend) put(ctx context.Context, rel string, src io.ReaderAt, obj webdav.Object) error {
	name := filepath.Join(string(d), rel)
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	f, err := durable.Create(name, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := fsx.SparseCopy(f.File, ctxReader{ctx, io.TeeReader(io.NewSectionReader(src, 0, obj.Size), h)})
	if err != nil {
		return err
	}
	if n != obj.Size {
		return fmt.Errorf("wrote %d bytes, want %d", n, obj.Size)
	}
	if hex.EncodeToString(h.Sum(nil)) != obj.SHA256 {
		return webdav.ErrChanged
	}
	return f.Commit()
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

// davBackend is a store on a WebDAV server.
type davBackend struct{ c *webdav.Client }

func (h davBackend) String() string { return h.c.String() }

func (h davBackend) get(ctx context.Context, rel string, consume func(io.Reader) error) error {
	return notExist(h.c.Get(ctx, rel, consume))
}

func (h davBackend) readAll(ctx context.Context, rel string, limit int64) ([]byte, error) {
	b, err := h.c.ReadAll(ctx, rel, limit)
	return b, notExist(err)
}

func (h davBackend) has(ctx context.Context, rel string, obj webdav.Object) (bool, error) {
	m, err := h.c.Check(ctx, rel, obj, nil)
	return m == webdav.Same, err
}

func (h davBackend) put(ctx context.Context, rel string, src io.ReaderAt, obj webdav.Object) error {
	return h.c.Put(ctx, rel, src, obj, nil)
}

func (h davBackend) del(ctx context.Context, rel string) error { return h.c.Delete(ctx, rel) }

// notExist makes a 404 os.ErrNotExist, as for a directory store.
func notExist(err error) error {
	if errors.Is(err, httpx.ErrNotFound) {
		return fmt.Errorf("%w (%w)", os.ErrNotExist, err)
	}
	return err
}
