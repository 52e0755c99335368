package diskops

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/minint/minint/internal/directio"
)

// EraseOptions tunes Erase.
type EraseOptions struct {
	// Method is "zero" (the default: the device's write-zeroes command,
	// falling back to writing zeros) or "discard" (TRIM/UNMAP; verification
	// then fails on devices that do not read discarded blocks as zeros).
	Method string
	// Samples is how many random 4 KiB blocks are read back besides the
	// first and last MiB (default 256).
	Samples int
	// Progress is called with bytes erased so far.
	Progress func(done, total int64)
}

// EraseResult reports what Erase did and checked.
type EraseResult struct {
	Method   string `json:"method"`   // what was actually used
	Bytes    int64  `json:"bytes"`    // erased
	Verified int    `json:"verified"` // blocks read back as zeros
}

const eraseChunk = 256 << 20

// Erase makes the whole target read as zeros (for decommissioning or
// handing a disk to someone else), then verifies the first and last MiB and
// a random sample of blocks with reads that bypass the page cache. The
// target must come from OpenTarget, which refuses disks in use.
func Erase(ctx context.Context, t *Target, o EraseOptions) (*EraseResult, error) {
	method := o.Method
	if method == "" {
		method = "zero"
	}
	if method != "zero" && method != "discard" {
		return nil, fmt.Errorf("erase method %q: want zero or discard", method)
	}
	res := &EraseResult{Method: method}
	for off := int64(0); off < t.Size; {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := min(int64(eraseChunk), t.Size-off)
		var err error
		switch {
		case t.IsBlock() && method == "discard":
			err = ioctlRange(t.File, unix.BLKDISCARD, off, n)
		case t.IsBlock():
			if err = offloadZero(t.File, true, off, n); err != nil && res.Method == "zero" {
				res.Method = "zero (write)"
				err = zeroRange(t.File, off, n, t.Size)
			} else if err != nil {
				err = zeroRange(t.File, off, n, t.Size)
			}
		default:
			// An image file: punching holes reads back as zeros and frees
			// the space; filesystems without hole punching get zeros written.
			if err = offloadZero(t.File, false, off, n); err != nil {
				err = zeroRange(t.File, off, n, t.Size)
			}
		}
		if err != nil {
			return res, fmt.Errorf("%s: erasing at %d: %w", t.Path, off, err)
		}
		off += n
		res.Bytes = off
		if o.Progress != nil {
			o.Progress(off, t.Size)
		}
	}
	if err := t.File.Sync(); err != nil {
		return res, err
	}
	n, err := verifyZero(t, o.Samples)
	res.Verified = n
	if err != nil && method == "discard" {
		return res, fmt.Errorf("%w (this device does not return zeros for discarded blocks; use method zero)", err)
	}
	return res, err
}

// offloadZero makes n bytes at off read as zeros without writing them: the
// device's write-zeroes command on a block device, a punched hole in an
// image file. It fails where neither is supported; callers then write
// zeros.
func offloadZero(f *os.File, block bool, off, n int64) error {
	if block {
		return ioctlRange(f, unix.BLKZEROOUT, off, n)
	}
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

func ioctlRange(f *os.File, req uint, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return ioctlPtr(f, req, &r)
}

// verifyZero reads back the first and last MiB and samples random 4 KiB
// blocks through O_DIRECT (when the file system allows it), so that the
// page cache cannot hide what the medium returns.
func verifyZero(t *Target, samples int) (int, error) {
	if samples <= 0 {
		samples = 256
	}
	f, err := os.OpenFile(t.Path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		f, err = os.Open(t.Path)
		if err != nil {
			return 0, err
		}
	}
	defer f.Close()
	const blk = directio.Align
	buf := directio.Buf(blk)
	var offs []int64
	for off := int64(0); off < min(t.Size, 1<<20); off += blk {
		offs = append(offs, off)
	}
	for off := max(0, (t.Size-(1<<20))/blk*blk); off+blk <= t.Size; off += blk {
		offs = append(offs, off)
	}
	if blocks := t.Size / blk; blocks > 0 {
		rb := make([]byte, 8*samples)
		rand.Read(rb)
		for i := 0; i < samples; i++ {
			offs = append(offs, int64(binary.LittleEndian.Uint64(rb[8*i:])%uint64(blocks))*blk)
		}
	}
	checked := 0
	for _, off := range offs {
		n, err := f.ReadAt(buf[:blk], off)
		if n < blk && off+int64(n) < t.Size {
			return checked, fmt.Errorf("%s: reading back block at %d: %v", t.Path, off, err)
		}
		if !allZero(buf[:n]) {
			return checked, fmt.Errorf("%s: %w: block at byte %d is not zero after erasing", t.Path, ErrVerify, off)
		}
		checked++
	}
	return checked, nil
}
