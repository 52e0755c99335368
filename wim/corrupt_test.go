package wim_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/minint/minint/internal/treetest"
	"github.com/minint/minint/wim"
)

// The tests in this file feed the reader damaged and hostile WIMs. Each
// must give an error wrapping one of the package's sentinels, never a
// panic, and never a write outside the target directory. The WIMs start as
// good ones written by wimlib-imagex (the oracle) and are then edited at the
// byte level, with the SHA-1s fixed up where a test wants the damage to get
// past the checksums into the parsers.

// Header layout (wimlib's struct wim_header_disk).
const (
	hdrImageCount = 0x2C
	hdrBlobTable  = 0x30
	hdrXML        = 0x48
	reshdrLen     = 24
	blobEntryLen  = 50
	resCompressed = 0x04
	resMetadata   = 0x02
)

type rawReshdr struct {
	sizeInWIM int64
	flags     byte
	offset    int64
	size      int64
}

func getRawReshdr(b []byte) rawReshdr {
	v := binary.LittleEndian.Uint64(b)
	return rawReshdr{int64(v & (1<<56 - 1)), byte(v >> 56),
		int64(binary.LittleEndian.Uint64(b[8:])), int64(binary.LittleEndian.Uint64(b[16:]))}
}

type rawBlob struct {
	entry int // offset of the blob table entry in the file
	res   rawReshdr
	hash  [20]byte
}

func rawBlobs(t testing.TB, w []byte) []rawBlob {
	t.Helper()
	bt := getRawReshdr(w[hdrBlobTable:])
	if bt.flags&resCompressed != 0 || bt.offset+bt.sizeInWIM > int64(len(w)) {
		t.Fatalf("unexpected blob table %+v", bt)
	}
	var out []rawBlob
	for off := bt.offset; off+blobEntryLen <= bt.offset+bt.sizeInWIM; off += blobEntryLen {
		b := rawBlob{entry: int(off), res: getRawReshdr(w[off:])}
		copy(b.hash[:], w[off+30:off+50])
		out = append(out, b)
	}
	return out
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// rehash recomputes the SHA-1 of every uncompressed blob (metadata
// included) and replaces the old hash wherever it occurs (blob table,
// dentries), repeating until everything agrees: the metadata resource holds
// the hashes of file blobs, so fixing one changes the other.
func rehash(t testing.TB, w []byte) {
	t.Helper()
	for round := 0; round < 8; round++ {
		changed := false
		for _, b := range rawBlobs(t, w) {
			if b.res.flags&resCompressed != 0 {
				continue
			}
			end := b.res.offset + b.res.sizeInWIM
			if b.res.offset < 0 || end > int64(len(w)) || end < b.res.offset {
				continue
			}
			sum := sha1.Sum(w[b.res.offset:end])
			if sum != b.hash {
				copy(w, bytes.ReplaceAll(w, b.hash[:], sum[:]))
				changed = true
			}
		}
		if !changed {
			return
		}
	}
	t.Fatal("rehash: hashes did not settle")
}

// patchName replaces a name (or any string stored as UTF-16LE, such as a
// symlink target) by another of the same length and fixes the SHA-1s.
func patchName(t testing.TB, w []byte, old, new string) {
	t.Helper()
	o, n := utf16le(old), utf16le(new)
	if len(o) != len(n) {
		t.Fatalf("patch %q → %q: lengths differ", old, new)
	}
	if c := bytes.Count(w, o); c != 1 {
		t.Fatalf("patch %q: found %d times, want once", old, c)
	}
	copy(w, bytes.ReplaceAll(w, o, n))
	rehash(t, w)
}

// placeholder returns a name of n UTF-16 units that nothing else in a test
// WIM contains, to be patched into something hostile later.
func placeholder(k, n int) string { return strings.Repeat(string(rune(0x2600+k)), n) }

// wimlibWIM captures the tree made by build with wimlib-imagex and returns
// the WIM's bytes.
func wimlibWIM(t testing.TB, compress string, build func(src string)) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	build(src)
	w := filepath.Join(dir, "x.wim")
	wimlib(t, "capture", src, w, "--unix-data", "--compress="+compress)
	b, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var sentinels = []error{wim.ErrFormat, wim.ErrChecksum, wim.ErrInsecurePath, wim.ErrUnsupported, wim.ErrNotFound}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// readEverything opens the WIM from memory, walks every image and reads
// every file's data, returning the first error.
func readEverything(w []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("PANIC: %v", p)
		}
	}()
	r, err := wim.NewReader(bytes.NewReader(w), int64(len(w)))
	if err != nil {
		return err
	}
	for _, img := range r.Images() {
		err := img.Walk(func(path string, f *wim.File) error {
			if f.IsDir() || f.IsSymlink() {
				return nil
			}
			rc, err := f.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// wantErr checks that err wraps want (or, with want nil, any sentinel).
func wantErr(t testing.TB, what string, err error, want ...error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: no error", what)
	case strings.HasPrefix(err.Error(), "PANIC"):
		t.Errorf("%s: %v", what, err)
	case len(want) == 0 && !isSentinel(err):
		t.Errorf("%s: error %q wraps none of the package's sentinel errors", what, err)
	case len(want) > 0:
		for _, w := range want {
			if errors.Is(err, w) {
				return
			}
		}
		t.Errorf("%s: error %q, want one wrapping %v", what, err, want)
	}
}

func sampleFiles() map[string]string {
	return map[string]string{
		"a.txt":       strings.Repeat("hello wim ", 5000),
		"dir/b.bin":   string(bytes.Repeat([]byte{0, 1, 2, 3, 250}, 20000)),
		"dir/sub/c":   "c",
		"random.data": string(randomBytes(100_000, 1)),
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCorruptTruncated(t *testing.T) {
	for _, comp := range []string{"none", "lzx"} {
		good := wimlibWIM(t, comp, func(src string) { writeFiles(t, src, sampleFiles()) })
		if err := readEverything(good); err != nil {
			t.Fatalf("%s: the intact WIM does not read: %v", comp, err)
		}
		bt := getRawReshdr(good[hdrBlobTable:])
		xml := getRawReshdr(good[hdrXML:])
		cuts := []int{0, 1, 100, 207, 208, 209, len(good) / 3, len(good) / 2,
			int(bt.offset), int(bt.offset) + 10, int(xml.offset), int(xml.offset) + 3, len(good) - 1}
		for _, b := range rawBlobs(t, good) {
			cuts = append(cuts, int(b.res.offset)+int(b.res.sizeInWIM)/2)
		}
		for _, n := range cuts {
			if n < 0 || n >= len(good) {
				continue
			}
			wantErr(t, fmt.Sprintf("%s: truncated to %d of %d bytes", comp, n, len(good)), readEverything(good[:n:n]), wim.ErrFormat)
		}
	}
}

func TestCorruptHeader(t *testing.T) {
	good := wimlibWIM(t, "xpress", func(src string) { writeFiles(t, src, sampleFiles()) })
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	put64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	cases := []struct {
		name   string
		change func([]byte)
		want   []error
	}{
		{"magic", func(b []byte) { b[0] ^= 0x20 }, []error{wim.ErrFormat}},
		{"header size", put32(0x08, 100), []error{wim.ErrFormat}},
		{"header size huge", put32(0x08, 1<<31), []error{wim.ErrFormat}},
		{"version", put32(0x0C, 0xDEAD), []error{wim.ErrFormat, wim.ErrUnsupported}},
		{"compression flags", put32(0x10, 0x00020000|0x00080000), []error{wim.ErrFormat, wim.ErrUnsupported}},
		{"chunk size 3", put32(0x14, 3), []error{wim.ErrFormat, wim.ErrUnsupported}},
		{"chunk size 2^31", put32(0x14, 1<<31), []error{wim.ErrFormat, wim.ErrUnsupported}},
		{"part number 0", func(b []byte) { binary.LittleEndian.PutUint16(b[0x28:], 0) }, []error{wim.ErrFormat}},
		{"part 3 of 2", func(b []byte) {
			binary.LittleEndian.PutUint16(b[0x28:], 3)
			binary.LittleEndian.PutUint16(b[0x2A:], 2)
		}, []error{wim.ErrFormat}},
		{"image count huge", put32(hdrImageCount, 0xFFFFFFFF), []error{wim.ErrFormat}},
		{"image count 2", put32(hdrImageCount, 2), []error{wim.ErrFormat}},
		{"blob table offset past end", put64(hdrBlobTable+8, 1<<40), []error{wim.ErrFormat}},
		{"blob table size past end", put64(hdrBlobTable, 1<<50), []error{wim.ErrFormat}},
		{"blob table size not a multiple of 50", func(b []byte) { b[hdrBlobTable] -= 7 }, []error{wim.ErrFormat}},
		{"xml offset past end", put64(hdrXML+8, uint64(len(good))), []error{wim.ErrFormat}},
		{"xml size odd", func(b []byte) { b[hdrXML] ^= 1 }, []error{wim.ErrFormat}},
	}
	for _, c := range cases {
		b := bytes.Clone(good)
		c.change(b)
		wantErr(t, "header: "+c.name, readEverything(b), c.want...)
	}
}

func TestCorruptBlobTable(t *testing.T) {
	good := wimlibWIM(t, "none", func(src string) { writeFiles(t, src, sampleFiles()) })
	var meta, file *rawBlob
	for _, b := range rawBlobs(t, good) {
		b := b
		if b.res.flags&resMetadata != 0 {
			meta = &b
		} else if file == nil || b.res.size > file.res.size {
			file = &b
		}
	}
	if meta == nil || file == nil {
		t.Fatal("no metadata or no file blob in the test WIM")
	}
	cases := []struct {
		name   string
		change func([]byte)
		want   []error
	}{
		{"metadata hash", func(b []byte) { b[meta.entry+40] ^= 1 }, []error{wim.ErrChecksum}},
		{"metadata offset past end", func(b []byte) { binary.LittleEndian.PutUint64(b[meta.entry+8:], 1<<40) }, []error{wim.ErrFormat}},
		{"metadata size huge", func(b []byte) {
			binary.LittleEndian.PutUint64(b[meta.entry+16:], 1<<40)
		}, []error{wim.ErrFormat}},
		{"metadata flag cleared", func(b []byte) { b[meta.entry+7] &^= resMetadata }, []error{wim.ErrFormat}},
		{"file hash (dentry points at nothing)", func(b []byte) { b[file.entry+30] ^= 0x80 }, []error{wim.ErrFormat, wim.ErrNotFound}},
		{"file data offset", func(b []byte) {
			binary.LittleEndian.PutUint64(b[file.entry+8:], uint64(file.res.offset+1))
		}, []error{wim.ErrChecksum, wim.ErrFormat}},
		{"file offset past end", func(b []byte) { binary.LittleEndian.PutUint64(b[file.entry+8:], 1<<45) }, []error{wim.ErrFormat}},
		{"file size mismatch", func(b []byte) {
			binary.LittleEndian.PutUint64(b[file.entry+16:], uint64(file.res.size-1))
		}, []error{wim.ErrFormat, wim.ErrChecksum}},
		{"file marked compressed", func(b []byte) { b[file.entry+7] |= resCompressed }, []error{wim.ErrFormat, wim.ErrChecksum}},
	}
	for _, c := range cases {
		b := bytes.Clone(good)
		c.change(b)
		wantErr(t, "blob table: "+c.name, readEverything(b), c.want...)
	}
}

// TestCorruptMetadata flips bytes all over the metadata resource. Without
// fixing the SHA-1 every flip must be caught by the checksum; with the SHA-1
// fixed the damage reaches the dentry parser, which must refuse or accept
// it cleanly.
func TestCorruptMetadata(t *testing.T) {
	good := wimlibWIM(t, "none", func(src string) {
		writeFiles(t, src, sampleFiles())
		os.Symlink("a.txt", filepath.Join(src, "link"))
		os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "dir/hard"))
	})
	var meta rawBlob
	for _, b := range rawBlobs(t, good) {
		if b.res.flags&resMetadata != 0 {
			meta = b
		}
	}
	rnd := rand.New(rand.NewPCG(5, 5))
	for i := int64(0); i < meta.res.sizeInWIM; i++ {
		off := meta.res.offset + i
		b := bytes.Clone(good)
		b[off] ^= byte(1 + rnd.IntN(255))
		wantErr(t, fmt.Sprintf("metadata byte %d flipped", i), readEverything(b), wim.ErrChecksum)
		rehash(t, b)
		if err := readEverything(b); err != nil {
			wantErr(t, fmt.Sprintf("metadata byte %d flipped, SHA-1 fixed", i), err)
		}
	}
}

// TestCorruptChunks damages compressed data and chunk tables.
func TestCorruptChunks(t *testing.T) {
	for _, comp := range []string{"xpress", "lzx"} {
		good := wimlibWIM(t, comp, func(src string) { writeFiles(t, src, sampleFiles()) })
		var big *rawBlob
		for _, b := range rawBlobs(t, good) {
			b := b
			if b.res.flags&resCompressed != 0 && b.res.flags&resMetadata == 0 && (big == nil || b.res.sizeInWIM > big.res.sizeInWIM) {
				big = &b
			}
		}
		if big == nil {
			t.Fatalf("%s: no compressed file blob", comp)
		}
		nchunks := (big.res.size + 32767) / 32768
		tableLen := (nchunks - 1) * 4
		rnd := rand.New(rand.NewPCG(9, 9))
		for i := 0; i < 40; i++ {
			b := bytes.Clone(good)
			off := big.res.offset + tableLen + rnd.Int64N(big.res.sizeInWIM-tableLen)
			b[off] ^= byte(1 + rnd.IntN(255))
			wantErr(t, fmt.Sprintf("%s: chunk byte at %d flipped", comp, off), readEverything(b), wim.ErrChecksum, wim.ErrFormat)
		}
		for i := int64(0); i < tableLen; i++ {
			b := bytes.Clone(good)
			b[big.res.offset+i] ^= 0x41
			wantErr(t, fmt.Sprintf("%s: chunk table byte %d flipped", comp, i), readEverything(b), wim.ErrChecksum, wim.ErrFormat)
		}
	}
}

// applyHostile applies the WIM in w into base/target and checks that
// base/canary, a directory next to the target that the hostile entries aim
// at, is left exactly as it was, and that nothing appeared in base besides
// the target.
func applyHostile(t *testing.T, w []byte, opts wim.ApplyOptions, prepare func(target string)) (target string, err error) {
	t.Helper()
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	writeFiles(t, canary, map[string]string{"keep": "canary"})
	before := snapshot(t, canary)
	target = filepath.Join(base, "target")
	if prepare != nil {
		prepare(target)
	}
	r, err := wim.NewReader(bytes.NewReader(w), int64(len(w)))
	if err == nil {
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("PANIC: %v", p)
				}
			}()
			err = r.Apply(context.Background(), 1, target, opts)
		}()
	}
	if d := treetest.Diff(before, snapshot(t, canary), treetest.DiffOptions{}); len(d) > 0 {
		t.Errorf("the canary next to the target changed:\n%s", strings.Join(d, "\n"))
	}
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if e.Name() != "canary" && e.Name() != "target" {
			t.Errorf("apply created %s next to the target", filepath.Join(base, e.Name()))
		}
	}
	return target, err
}

// TestHostileNames crafts names that would escape or confuse the target
// directory into otherwise valid WIMs (SHA-1s fixed up).
func TestHostileNames(t *testing.T) {
	base := "/tmp/minint-hostile-does-not-exist"
	cases := []struct {
		name  string
		build func(src string) // makes the tree, with placeholder(k, n) names
		from  string           // placeholder to patch…
		to    string           // …into this
	}{
		{"dot-dot", func(s string) { writeFiles(t, s, map[string]string{placeholder(1, 2): "x"}) }, placeholder(1, 2), ".."},
		{"dot", func(s string) { writeFiles(t, s, map[string]string{placeholder(2, 1) + "/f": "x"}) }, placeholder(2, 1), "."},
		{"slash escape", func(s string) { writeFiles(t, s, map[string]string{placeholder(3, 15): "x"}) }, placeholder(3, 15), "../canary/pwned"},
		{"slash inside", func(s string) { writeFiles(t, s, map[string]string{placeholder(4, 3): "x"}) }, placeholder(4, 3), "a/b"},
		{"absolute", func(s string) { writeFiles(t, s, map[string]string{placeholder(5, len(base)): "x"}) }, placeholder(5, len(base)), base},
		{"NUL", func(s string) { writeFiles(t, s, map[string]string{placeholder(6, 3): "x"}) }, placeholder(6, 3), "a\x00b"},
		{"duplicate file", func(s string) {
			writeFiles(t, s, map[string]string{"dupe": "1", placeholder(7, 4): "2"})
		}, placeholder(7, 4), "dupe"},
		{"duplicate symlink then directory", func(s string) {
			os.Symlink("../canary", filepath.Join(s, "esc"))
			writeFiles(t, s, map[string]string{placeholder(8, 3) + "/pwned": "x", placeholder(8, 3) + "/keep": "overwritten"})
		}, placeholder(8, 3), "esc"},
		{"duplicate directory then symlink", func(s string) {
			os.Symlink("../canary", filepath.Join(s, placeholder(9, 3)))
			writeFiles(t, s, map[string]string{"aaa/pwned": "x", "aaa/keep": "overwritten"})
		}, placeholder(9, 3), "aaa"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := wimlibWIM(t, "none", c.build)
			patchName(t, w, c.from, c.to)
			_, err := applyHostile(t, w, wim.ApplyOptions{}, nil)
			wantErr(t, "apply", err, wim.ErrInsecurePath)
			if _, err := os.Lstat(base); err == nil {
				os.RemoveAll(base)
				t.Errorf("apply created %s", base)
			}
		})
	}
}

// TestHostileSymlinks: symlinks pointing anywhere are legitimate in a Linux
// image (/etc/localtime → /usr/share/zoneinfo/…) and are created as they
// are, but nothing is ever written through them, whether they come from the
// image or were already in the target directory.
func TestHostileSymlinks(t *testing.T) {
	t.Run("in the image", func(t *testing.T) {
		w := wimlibWIM(t, "none", func(s string) {
			os.Symlink("../canary", filepath.Join(s, "up"))
			os.Symlink("../canary/keep", filepath.Join(s, "up-file"))
			os.Symlink("/etc/passwd", filepath.Join(s, "abs"))
			writeFiles(t, s, map[string]string{"z/file": "x"})
		})
		target, err := applyHostile(t, w, wim.ApplyOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"up": "../canary", "up-file": "../canary/keep", "abs": "/etc/passwd"} {
			if got, err := os.Readlink(filepath.Join(target, name)); err != nil || got != want {
				t.Errorf("%s → %q, %v; want → %q", name, got, err, want)
			}
		}
	})
	t.Run("already in the target", func(t *testing.T) {
		w := wimlibWIM(t, "none", func(s string) {
			writeFiles(t, s, map[string]string{"sub/pwned": "x", "sub/keep": "overwritten", "keep": "overwritten"})
		})
		target, err := applyHostile(t, w, wim.ApplyOptions{}, func(target string) {
			os.MkdirAll(target, 0o755)
			os.Symlink("../canary", filepath.Join(target, "sub"))
			os.Symlink("../canary/keep", filepath.Join(target, "keep"))
		})
		if err != nil {
			// Refusing is fine too, as long as the canary is intact.
			t.Logf("apply over a symlinked directory: %v", err)
			return
		}
		if fi, err := os.Lstat(filepath.Join(target, "sub")); err != nil || !fi.IsDir() {
			t.Errorf("target/sub is not a directory after apply: %v", err)
		}
	})
	t.Run("hard link already in the target", func(t *testing.T) {
		// Truncating and rewriting an existing file in place would change
		// the canary, which shares its inode; it has to be replaced.
		w := wimlibWIM(t, "none", func(s string) {
			writeFiles(t, s, map[string]string{"keep": "overwritten", "d/keep": "overwritten too"})
		})
		target, err := applyHostile(t, w, wim.ApplyOptions{}, func(target string) {
			canary := filepath.Join(filepath.Dir(target), "canary", "keep")
			os.MkdirAll(filepath.Join(target, "d"), 0o755)
			if err := os.Link(canary, filepath.Join(target, "keep")); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(canary, filepath.Join(target, "d", "keep")); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Logf("apply over hard links: %v", err)
			return
		}
		if b, err := os.ReadFile(filepath.Join(target, "keep")); err != nil || string(b) != "overwritten" {
			t.Errorf("target/keep = %q, %v after apply", b, err)
		}
	})
}

// TestHostileExtractPaths: the paths to extract come from the command line
// and must not reach outside the target either.
func TestHostileExtractPaths(t *testing.T) {
	w := wimlibWIM(t, "none", func(s string) {
		writeFiles(t, s, map[string]string{"z/file": "x", "keep": "overwritten"})
	})
	for _, p := range []string{"/../canary", "../canary/keep", "/z/../../canary/keep", "/z/../keep", "z/./file"} {
		_, err := applyHostile(t, w, wim.ApplyOptions{Paths: []string{p}}, nil)
		t.Logf("extract %q: %v", p, err)
		if err != nil && !isSentinel(err) {
			t.Errorf("extract %q: error %q wraps no sentinel", p, err)
		}
	}
}

// FuzzReadApply runs arbitrary bytes through the whole read path: open,
// walk, read every file, apply. The seeds are small WIMs written by
// wimlib-imagex, one per compression; `go test -fuzz FuzzReadApply ./wim`
// mutates them. Whatever the input, the result is nil or an error wrapping a
// sentinel, without a panic and without writing next to the target.
func FuzzReadApply(f *testing.F) {
	for _, comp := range compressions {
		f.Add(wimlibWIM(f, comp, func(src string) {
			writeFiles(f, src, map[string]string{"a": strings.Repeat("abc", 20000), "d/b": "b"})
			os.Symlink("a", filepath.Join(src, "l"))
		}))
	}
	f.Fuzz(func(t *testing.T, w []byte) {
		if err := readEverything(w); err != nil {
			wantErr(t, "read", err)
			return
		}
		if _, err := applyHostile(t, w, wim.ApplyOptions{}, nil); err != nil {
			wantErr(t, "apply", err)
		}
	})
}

// TestCorruptDentryTree points a directory's child list (subdir_offset, at
// byte 16 of wimlib's struct wim_dentry_on_disk) at places that make the tree
// cyclic or nonsensical, with the SHA-1 fixed so the parser sees it. A cycle
// followed naively recurses until the stack overflows, which Go cannot
// recover from.
func TestCorruptDentryTree(t *testing.T) {
	dirName := placeholder(10, 2)
	good := wimlibWIM(t, "none", func(s string) {
		writeFiles(t, s, map[string]string{dirName + "/f": "x", "g": "y"})
	})
	var meta rawBlob
	for _, b := range rawBlobs(t, good) {
		if b.res.flags&resMetadata != 0 {
			meta = b
		}
	}
	m := good[meta.res.offset : meta.res.offset+meta.res.sizeInWIM]
	root := int(binary.LittleEndian.Uint32(m)+7) &^ 7 // after the security data
	rootChildren := binary.LittleEndian.Uint64(m[root+16:])
	dir := bytes.Index(m, utf16le(dirName)) - 102 // the name follows the 102-byte fixed part
	if dir < root {
		t.Fatalf("directory dentry not found")
	}
	for _, c := range []struct {
		name string
		off  uint64
	}{
		{"child list is the root's (cycle)", rootChildren},
		{"child list starts at the directory itself", uint64(dir)},
		{"child list past the end", uint64(len(m) + 8)},
		{"child list at a huge offset", 1 << 62},
		{"child list inside the security data", 4},
		{"child list misaligned inside a dentry", uint64(dir + 3)},
	} {
		b := bytes.Clone(good)
		mm := b[meta.res.offset : meta.res.offset+meta.res.sizeInWIM]
		binary.LittleEndian.PutUint64(mm[dir+16:], c.off)
		rehash(t, b)
		wantErr(t, c.name, readEverything(b), wim.ErrFormat)
		if _, err := applyHostile(t, b, wim.ApplyOptions{}, nil); !errors.Is(err, wim.ErrFormat) {
			t.Errorf("%s: apply: %v, want ErrFormat", c.name, err)
		}
	}
}

// TestCorruptHardLinkGroups puts entries that cannot be one inode (different
// contents; a file and a directory) into one hard-link group (the group ID is
// at byte 92 of a non-reparse dentry). Refusing is fine; applying must not
// give one file the other's contents or link a directory.
func TestCorruptHardLinkGroups(t *testing.T) {
	n1, n2, n3 := placeholder(11, 2), placeholder(12, 2), placeholder(13, 2)
	good := wimlibWIM(t, "none", func(s string) {
		writeFiles(t, s, map[string]string{n1: "one", n2: "two", n3 + "/f": "x"})
	})
	var meta rawBlob
	for _, b := range rawBlobs(t, good) {
		if b.res.flags&resMetadata != 0 {
			meta = b
		}
	}
	for _, group := range [][]string{{n1, n2}, {n1, n3}, {n1, n2, n3}} {
		b := bytes.Clone(good)
		m := b[meta.res.offset : meta.res.offset+meta.res.sizeInWIM]
		for _, n := range group {
			d := bytes.Index(m, utf16le(n)) - 102
			binary.LittleEndian.PutUint64(m[d+92:], 0x4242)
		}
		rehash(t, b)
		what := fmt.Sprintf("group %q", group)
		target, err := applyHostile(t, b, wim.ApplyOptions{}, nil)
		if err != nil {
			wantErr(t, what, err, wim.ErrFormat)
			continue
		}
		for n, want := range map[string]string{n1: "one", n2: "two", n3 + "/f": "x"} {
			if got, err := os.ReadFile(filepath.Join(target, n)); err != nil || string(got) != want {
				t.Errorf("%s: %s = %q, %v; want %q", what, n, got, err, want)
			}
		}
		if fi, err := os.Lstat(filepath.Join(target, n3)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %s is no longer a directory: %v", what, n3, err)
		}
	}
}

// TestCorruptReparseData damages every byte of a symlink's reparse data
// (stored as a blob of its own) with the SHA-1s fixed: lengths and offsets
// inside it that point anywhere must give an error or a symlink, never a
// panic or a write outside the target.
func TestCorruptReparseData(t *testing.T) {
	target := placeholder(14, 12)
	good := wimlibWIM(t, "none", func(s string) {
		os.Symlink(target, filepath.Join(s, "link"))
		os.Symlink("/abs/"+target, filepath.Join(s, "abs"))
	})
	var reparse []rawBlob
	for _, b := range rawBlobs(t, good) {
		data := good[b.res.offset : b.res.offset+b.res.sizeInWIM]
		if b.res.flags&resMetadata == 0 && bytes.Contains(data, utf16le(target)) {
			reparse = append(reparse, b)
		}
	}
	if len(reparse) != 2 {
		t.Fatalf("found %d reparse blobs, want 2", len(reparse))
	}
	for _, rb := range reparse {
		for i := int64(0); i < rb.res.sizeInWIM; i++ {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				b := bytes.Clone(good)
				b[rb.res.offset+i] ^= x
				rehash(t, b)
				if err := readEverything(b); err != nil {
					wantErr(t, fmt.Sprintf("reparse byte %d ^ %#x: read", i, x), err)
					continue
				}
				if _, err := applyHostile(t, b, wim.ApplyOptions{}, nil); err != nil {
					wantErr(t, fmt.Sprintf("reparse byte %d ^ %#x: apply", i, x), err)
				}
			}
		}
	}
}

// TestCorruptIntegrityTable damages the integrity table of a WIM written
// with --check (wimlib's struct integrity_table_header: size, number of
// entries, chunk size, then one SHA-1 per chunk).
func TestCorruptIntegrityTable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFiles(t, src, sampleFiles())
	w := filepath.Join(dir, "x.wim")
	wimlib(t, "capture", src, w, "--unix-data", "--compress=lzx", "--check")
	good, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	it := getRawReshdr(good[0x7C:])
	if it.offset == 0 || it.sizeInWIM < 12+20 {
		t.Fatalf("no integrity table: %+v", it)
	}
	verify := func(b []byte) error {
		r, err := wim.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return err
		}
		return r.Verify(context.Background(), wim.VerifyOptions{})
	}
	if err := verify(good); err != nil {
		t.Fatalf("intact WIM: %v", err)
	}
	cases := []struct {
		name string
		off  int64 // within the table
		val  uint32
		want []error
	}{
		{"table size", 0, 7, []error{wim.ErrFormat}},
		{"entry count too big", 4, 1 << 30, []error{wim.ErrFormat}},
		{"entry count zero", 4, 0, []error{wim.ErrFormat, wim.ErrChecksum}},
		{"chunk size zero", 8, 0, []error{wim.ErrFormat}},
		{"chunk size changed", 8, 4096, []error{wim.ErrFormat, wim.ErrChecksum}},
		{"first hash", 12, 0xdeadbeef, []error{wim.ErrChecksum}},
		{"last hash", it.sizeInWIM - 4, 0xdeadbeef, []error{wim.ErrChecksum}},
	}
	for _, c := range cases {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[it.offset+c.off:], c.val)
		wantErr(t, "integrity table: "+c.name, verify(b), c.want...)
	}
}

// TestHostileSymlinkWithChildren crafts symlinks that have children: a
// symlink to ../canary whose child list is a real directory's, and a
// directory turned into a symlink (UNIX mode 0120777, reparse attributes)
// that keeps its children. Writing the children would go through the link.
func TestHostileSymlinkWithChildren(t *testing.T) {
	dn := placeholder(15, 2)
	good := wimlibWIM(t, "none", func(s string) {
		writeFiles(t, s, map[string]string{dn + "/pwned": "x", dn + "/keep": "overwritten"})
		os.Symlink("../canary", filepath.Join(s, "lnk"))
	})
	var meta rawBlob
	for _, b := range rawBlobs(t, good) {
		if b.res.flags&resMetadata != 0 {
			meta = b
		}
	}
	dentries := func(b []byte) (m []byte, dir, lnk int) {
		m = b[meta.res.offset : meta.res.offset+meta.res.sizeInWIM]
		return m, bytes.Index(m, utf16le(dn)) - 102, bytes.Index(m, utf16le("lnk")) - 102
	}
	cases := map[string]func(b []byte){
		"symlink given the directory's children": func(b []byte) {
			m, dir, lnk := dentries(b)
			copy(m[lnk+16:lnk+24], m[dir+16:dir+24])
		},
		"symlink given the directory's children, directory emptied": func(b []byte) {
			m, dir, lnk := dentries(b)
			copy(m[lnk+16:lnk+24], m[dir+16:dir+24])
			binary.LittleEndian.PutUint64(m[dir+16:], 0)
		},
		"directory turned into a symlink": func(b []byte) {
			m, dir, lnk := dentries(b)
			copy(m[dir+64:dir+96], m[lnk+64:lnk+96]) // hash, reparse tag
			binary.LittleEndian.PutUint32(m[dir+8:], binary.LittleEndian.Uint32(m[lnk+8:]))
			var tag [4]byte
			binary.LittleEndian.PutUint32(tag[:], 0x337DD873) // wimlib's UNIX data tagged item
			n := int(binary.LittleEndian.Uint64(m[dir:]))
			i := bytes.Index(m[dir:dir+n], tag[:])
			if i < 0 {
				t.Fatal("no UNIX data in the directory's dentry")
			}
			binary.LittleEndian.PutUint32(m[dir+i+16:], 0o120777) // tag, length, uid, gid, mode
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(good)
			change(b)
			rehash(t, b)
			target, err := applyHostile(t, b, wim.ApplyOptions{}, nil)
			t.Logf("apply: %v", err)
			if err != nil {
				wantErr(t, "apply", err)
				return
			}
			if fi, err := os.Lstat(filepath.Join(target, "lnk")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("lnk is not a symlink after apply: %v", err)
			}
		})
	}
}

// TestHostileOverlappingChildLists: directories whose child lists overlap
// (directory i's list starts at the i-th file of the root's list, so that
// it holds every file from there on) make the parsed tree quadratic in the
// size of the metadata, with every list starting at a different offset: a
// 40 KB WIM of this kind once made `wim dir` use 15.7 GB. Every entry may be
// read once; the WIM is refused, within memory proportional to its
// metadata.
func TestHostileOverlappingChildLists(t *testing.T) {
	build := func(n int) func(string) {
		return func(s string) {
			for i := range n {
				if err := os.Mkdir(filepath.Join(s, fmt.Sprintf("a%04d", i)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(s, fmt.Sprintf("b%04d", i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	b := overlapChildLists(t, wimlibWIM(t, "none", build(2000)))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := readEverything(b)
	runtime.ReadMemStats(&after)
	wantErr(t, "overlapping child lists", err, wim.ErrFormat)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("reading a WIM of %d bytes allocated %d MB", len(b), alloc>>20)
	}
	if _, err := applyHostile(t, b, wim.ApplyOptions{}, nil); !errors.Is(err, wim.ErrFormat) {
		t.Errorf("apply: %v, want ErrFormat", err)
	}
	if os.Getenv("MININT_WRITE_FUZZ_SEEDS") != "" {
		small := overlapChildLists(t, wimlibWIM(t, "none", build(20)))
		wim.WriteFuzzSeed(t, "FuzzReader", "overlapping-child-lists", small)
		for _, rb := range rawBlobs(t, small) {
			if rb.res.flags&resMetadata != 0 {
				wim.WriteFuzzSeed(t, "FuzzMetadata", "overlapping-child-lists", small[rb.res.offset:rb.res.offset+rb.res.sizeInWIM])
			}
		}
	}
}

// overlapChildLists points the child list of the k-th directory in the
// root's list at the k-th file there, and fixes the SHA-1s.
func overlapChildLists(t *testing.T, good []byte) []byte {
	b := bytes.Clone(good)
	var m []byte
	for _, rb := range rawBlobs(t, b) {
		if rb.res.flags&resMetadata != 0 {
			m = b[rb.res.offset : rb.res.offset+rb.res.sizeInWIM]
		}
	}
	le := binary.LittleEndian
	root := int(le.Uint32(m)+7) &^ 7
	var dirs, files []int
	for off := int(le.Uint64(m[root+16:])); ; {
		l := int(le.Uint64(m[off:])+7) &^ 7
		if l <= 8 {
			break
		}
		if le.Uint32(m[off+8:])&0x10 != 0 {
			dirs = append(dirs, off)
		} else {
			files = append(files, off)
		}
		off += l
	}
	if len(dirs) < 2 || len(dirs) != len(files) {
		t.Fatalf("root lists %d directories and %d files", len(dirs), len(files))
	}
	for i, d := range dirs {
		le.PutUint64(m[d+16:], uint64(files[i]))
	}
	rehash(t, b)
	return b
}
