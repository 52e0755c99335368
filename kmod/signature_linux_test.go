package kmod

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSignatureHint(t *testing.T) {
	for _, e := range []error{unix.EPERM, unix.EKEYREJECTED, unix.ENOKEY, fmt.Errorf("wrapped: %w", unix.EBADMSG)} {
		if h := signatureHint(e); !strings.Contains(h, "signed with a key it trusts") {
			t.Errorf("%v: hint %q", e, h)
		}
	}
	for _, e := range []error{unix.ENOENT, unix.ENOEXEC, fmt.Errorf("other")} {
		if h := signatureHint(e); h != "" {
			t.Errorf("%v: unexpected hint %q", e, h)
		}
	}
}
