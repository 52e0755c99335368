package wim

import (
	"io/fs"
	"syscall"
	"testing"
)

// A directory fsync refused because the file system has none (EINVAL,
// ENOTSUP) does not fail a finished write; an I/O error does. fs.ErrInvalid,
// which syncDir tested for before, never matches EINVAL.
func TestCannotSyncDir(t *testing.T) {
	for _, c := range []struct {
		errno syscall.Errno
		want  bool
	}{{syscall.EINVAL, true}, {syscall.ENOTSUP, true}, {syscall.EIO, false}, {syscall.EROFS, false}} {
		err := &fs.PathError{Op: "sync", Path: "/media/stick", Err: c.errno}
		if got := cannotSyncDir(err); got != c.want {
			t.Errorf("cannotSyncDir(%v) = %v, want %v", err, got, c.want)
		}
	}
}
