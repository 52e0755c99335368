// Package bounded reads what someone else could have made as large as
// they liked (a server's answer, a file on a disk or medium the PE does
// not control) with a bound, failing with ErrTooLarge past it instead of
// taking the memory. It imports nothing beyond the standard library's
// io, so that the first-boot program and the PE's file readers stay free
// of net/http.
package bounded

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge: an input is larger than its reader's bound.
var ErrTooLarge = errors.New("too large")

// LimitReader returns a reader of r that fails with ErrTooLarge once r
// has more than n bytes (io.LimitReader instead ends quietly at n, which
// makes an oversized input look complete).
func LimitReader(r io.Reader, n int64) io.Reader { return &limited{r: r, left: n, max: n} }

type limited struct {
	r         io.Reader
	left, max int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.err()
	}
	// One byte past the bound tells "exactly n" from "more than n".
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n = int(l.left)
		l.left = -1
		return n, l.err()
	}
	l.left -= int64(n)
	return n, err
}

func (l *limited) err() error { return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.max) }

// ReadAll reads r to its end, at most limit bytes: more is ErrTooLarge.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	return io.ReadAll(LimitReader(r, limit))
}

// ReadFile reads the file name as ReadAll reads a body: a local copy of
// something a server could serve (a manifest, a signature, a boot menu)
// gets the same bound. Errors name the file.
func ReadFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := ReadAll(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}
