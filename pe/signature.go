package pe

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/minint/minint/internal/bounded"
	"github.com/minint/minint/internal/httpx"
	"github.com/minint/minint/sign"
)

// readSignature reads the detached signature of src, a URL or (client
// nil) a file on the boot medium: sign.SignatureFor(src), else
// sign.ShortSignatureFor(src): over HTTP for one release and with a
// warning (it is minint's old name), on the medium silently (it is the
// only name an ISO 9660 medium can hold beside src). Only a missing file
// falls back; any other failure is the error. A missing signature wraps
// sign.ErrSignature as well as the reason.
func readSignature(ctx context.Context, c *httpx.Client, src string, warn func(format string, a ...any)) ([]byte, error) {
	get := func(name string) ([]byte, error) {
		return readSource(ctx, c, name, sign.MaxSize)
	}
	missing := func(err error) bool { return errors.Is(err, os.ErrNotExist) || errors.Is(err, httpx.ErrNotFound) }
	name := sign.SignatureFor(src)
	b, err := get(name)
	if old := sign.ShortSignatureFor(src); missing(err) && old != name {
		if ob, oerr := get(old); oerr == nil {
			if c == nil {
				return ob, nil
			}
			warn("warning: %s: signature found only under its old name %s; name it %s (the old name is read until the next release)", src, old, name)
			return ob, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", sign.ErrSignature, err)
	}
	return b, nil
}

// readSource reads src whole, at most limit bytes (httpx.ErrTooLarge
// beyond): a URL through c or, with c nil, a file on the boot medium,
// which is read before anything has checked it, like a server's answer.
func readSource(ctx context.Context, c *httpx.Client, src string, limit int64) ([]byte, error) {
	if c != nil {
		return c.Get(ctx, src, limit)
	}
	return bounded.ReadFile(src, limit)
}

// warnLegacy says that a signature in minint's old format was accepted.
func warnLegacy(s *sign.Signed, src string, warn func(format string, a ...any)) {
	if s.Legacy {
		warn("warning: %s: signature in minint's old format, which binds no purpose, version or expiry; sign it again with this minint (the old format is read until the next release)", src)
	}
}
