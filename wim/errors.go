package wim

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them (use
// errors.Is) together with what was being read and why it failed.
var (
	// ErrFormat means the input is not a well-formed WIM: bad magic,
	// impossible sizes or offsets, malformed metadata or XML.
	ErrFormat = errors.New("wim: invalid format")
	// ErrChecksum means data did not match its SHA-1 (a blob, a metadata
	// resource or an integrity-table chunk).
	ErrChecksum = errors.New("wim: checksum mismatch")
	// ErrInsecurePath means an image contains a name that could escape the
	// extraction directory (empty, ".", "..", containing '/' or NUL) or a
	// duplicate name in one directory.
	ErrInsecurePath = errors.New("wim: insecure file name")
	// ErrUnsupported means a valid WIM uses a feature this package does not
	// implement (LZMS compression, solid resources, pipable WIMs, ...).
	ErrUnsupported = errors.New("wim: unsupported feature")
	// ErrNotFound means a path or image index does not exist.
	ErrNotFound = errors.New("wim: not found")
	// ErrIncomplete means the WIM is not whole: its header says it is
	// still being written (the write-in-progress flag of a writer that
	// was interrupted), it has neither blob table nor XML data, or its
	// tables lie beyond the end of the file (truncated). It is a kind of
	// ErrFormat: errors.Is(err, ErrFormat) holds too.
	ErrIncomplete error = formatKind("wim: incomplete WIM")
	// ErrDuplicateName means an image name is already used by another
	// image of the WIM (adding or exporting an image), or names several
	// images (FindImage), as wimlib refuses such names.
	ErrDuplicateName = errors.New("wim: duplicate image name")
)

// formatKind is a sentinel that is also an ErrFormat.
type formatKind string

func (e formatKind) Error() string        { return string(e) }
func (e formatKind) Is(target error) bool { return target == ErrFormat }

func incompleteErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIncomplete, fmt.Sprintf(format, args...))
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

func unsupportedErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}
