package fetch

import (
	"bytes"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/minint/minint/internal/directio"
)

// TestDirectFile: bytes written through a mix of O_DIRECT (aligned) and
// buffered (unaligned) writes read back identical through either path,
// including where one path overwrote what the other had cached, and reads
// past the end say io.EOF as os.File's do.
func TestDirectFile(t *testing.T) {
	d, err := openDirect(filepath.Join(t.TempDir(), "f.part"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const size = 3<<20 + 1234
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	write := func(p []byte, off int64) {
		t.Helper()
		if n, err := d.WriteAt(p, off); n != len(p) || err != nil {
			t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
		}
		copy(want[off:], p)
	}
	aligned := func(off, n int) []byte {
		b := directio.Buf(n)
		copy(b, want[off:off+n])
		return b
	}
	// Aligned 1 MiB pieces (the download's chunks), the unaligned tail.
	for off := 0; off+1<<20 <= size; off += 1 << 20 {
		write(aligned(off, 1<<20), int64(off))
	}
	write(want[3<<20:], 3<<20)
	// Buffered over O_DIRECT-written bytes, then read back aligned: the
	// O_DIRECT read must see the dirty page cache.
	patch := bytes.Repeat([]byte{0xa5}, 5000)
	write(patch, 4096+17)
	// Unaligned memory at an aligned offset goes buffered too.
	odd := directio.Buf(8192 + 1)[1:]
	copy(odd, bytes.Repeat([]byte{0x5a}, len(odd)))
	write(odd, 1<<20)
	// Read a range buffered (now cached), overwrite it with O_DIRECT, read
	// it buffered again: the O_DIRECT write must drop the cached pages.
	cached := make([]byte, 8192)
	if _, err := d.File.ReadAt(cached, 2<<20); err != nil {
		t.Fatal(err)
	}
	fresh := directio.Buf(8192)
	for i := range fresh {
		fresh[i] = byte(i*31 + 7)
	}
	write(fresh, 2<<20)

	check := func(p []byte, off int64, what string) {
		t.Helper()
		n, err := d.ReadAt(p, off)
		end := min(off+int64(len(p)), size)
		if wantN := int(end - off); n != wantN || (err == io.EOF) != (off+int64(len(p)) > size) || err != nil && err != io.EOF {
			t.Fatalf("%s: ReadAt(%d bytes at %d) = %d, %v; want %d bytes", what, len(p), off, n, err, wantN)
		}
		if !bytes.Equal(p[:n], want[off:end]) {
			t.Fatalf("%s: bytes at %d differ from what was written", what, off)
		}
	}
	for off := int64(0); off < size; off += 1 << 20 {
		check(directio.Buf(1<<20), off, "aligned read")
	}
	check(make([]byte, 12345), 4000, "unaligned read")
	check(directio.Buf(2*4096), 2<<20, "aligned read of the O_DIRECT overwrite")
	b := make([]byte, 8192)
	if _, err := d.File.ReadAt(b, 2<<20); err != nil || !bytes.Equal(b, fresh) {
		t.Fatalf("buffered read after an O_DIRECT overwrite: %v, stale bytes %v", err, !bytes.Equal(b, fresh))
	}

	if d.direct == nil {
		t.Skip("the file system of the test's temporary directory refuses O_DIRECT: only the buffered path was tested")
	}
	if d.directWritten.Load() < 3<<20 || d.directRead.Load() < 3<<20 {
		t.Errorf("O_DIRECT carried %d bytes written, %d read; want the aligned ones (at least 3 MiB each)", d.directWritten.Load(), d.directRead.Load())
	}
}
