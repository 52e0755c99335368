// Package codectest provides test data for the WIM codec packages: a
// realistic corpus (a Go binary plus Go sources) and the chunks of a WIM
// captured by wimlib-imagex, the reference implementation, so the codecs can
// be checked against real wimlib output. It is imported only by tests.
package codectest

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// Sources of the corpus: a compiled program and a tree of Go sources, both
// shipped with the Go toolchain running the tests.
func corpusFiles() ([]string, error) {
	root := os.Getenv("GOROOT")
	if root == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return nil, fmt.Errorf("go env GOROOT: %w", err)
		}
		root = string(out[:len(out)-1])
	}
	files := []string{filepath.Join(root, "bin", "gofmt")}
	var srcs []string
	err := filepath.WalkDir(filepath.Join(root, "src", "net"), func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			srcs = append(srcs, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(srcs)
	return append(files, srcs...), nil
}

var (
	corpusOnce sync.Once
	corpus     []byte
	corpusErr  error
)

// Corpus returns the concatenation of the corpus files (several MB).
func Corpus(tb testing.TB) []byte {
	corpusOnce.Do(func() {
		var files []string
		files, corpusErr = corpusFiles()
		for _, f := range files {
			var b []byte
			b, corpusErr = os.ReadFile(f)
			if corpusErr != nil {
				return
			}
			corpus = append(corpus, b...)
		}
	})
	if corpusErr != nil {
		tb.Fatalf("reading corpus: %v", corpusErr)
	}
	return corpus
}

// Chunks splits data into chunkSize pieces, the way a WIM resource is chunked.
func Chunks(data []byte, chunkSize int) [][]byte {
	var cs [][]byte
	for len(data) > 0 {
		n := min(chunkSize, len(data))
		cs = append(cs, data[:n])
		data = data[n:]
	}
	return cs
}

// Chunk is one chunk of a WIM resource as stored by wimlib.
type Chunk struct {
	Stored []byte // bytes in the WIM; equal to the data when Raw
	Size   int    // uncompressed size
	Raw    bool   // stored uncompressed because compression did not help
}

// Blob is one resource of a WIM with its expected SHA-1.
type Blob struct {
	SHA1       [20]byte
	Size       int64
	StoredSize int64
	Chunks     []Chunk
}

// WIM is the parsed subset of a wimlib-captured WIM.
type WIM struct {
	ChunkSize int
	Blobs     []Blob
}

// WimlibCapture captures the corpus files with wimlib-imagex using the given
// --compress value and chunk size, and returns the parsed blobs. It skips the
// test when wimlib-imagex is not installed.
func WimlibCapture(tb testing.TB, compress string, chunkSize int) *WIM {
	tb.Helper()
	if _, err := exec.LookPath("wimlib-imagex"); err != nil {
		tb.Skip("wimlib-imagex not installed; it is the reference for interop tests")
	}
	// Captures are slow (LZX especially); tests in one binary share them.
	key := fmt.Sprintf("%s/%d", compress, chunkSize)
	if w, ok := captures.Load(key); ok {
		return w.(*WIM)
	}
	w := wimlibCapture(tb, compress, chunkSize)
	captures.Store(key, w)
	return w
}

var captures sync.Map

func wimlibCapture(tb testing.TB, compress string, chunkSize int) *WIM {
	files, err := corpusFiles()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	tree := filepath.Join(dir, "tree")
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(tree, fmt.Sprintf("d%d", i/64), fmt.Sprintf("f%d_%s", i, filepath.Base(f)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	wimPath := filepath.Join(dir, "x.wim")
	cmd := exec.Command("wimlib-imagex", "capture", tree, wimPath, "--compress="+compress,
		fmt.Sprintf("--chunk-size=%d", chunkSize), "--threads=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	raw, err := os.ReadFile(wimPath)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := parseWIM(raw)
	if err != nil {
		tb.Fatalf("parsing wimlib's WIM: %v", err)
	}
	return w
}

type reshdr struct {
	stored int64
	flags  byte
	offset int64
	size   int64
}

func parseReshdr(b []byte) reshdr {
	return reshdr{
		stored: int64(binary.LittleEndian.Uint64(b[0:8]) & (1<<56 - 1)),
		flags:  b[7],
		offset: int64(binary.LittleEndian.Uint64(b[8:16])),
		size:   int64(binary.LittleEndian.Uint64(b[16:24])),
	}
}

const (
	flagCompressed = 0x04
	flagSolid      = 0x10
)

func parseWIM(raw []byte) (*WIM, error) {
	if len(raw) < 208 || string(raw[:8]) != "MSWIM\x00\x00\x00" {
		return nil, fmt.Errorf("not a WIM")
	}
	w := &WIM{ChunkSize: int(binary.LittleEndian.Uint32(raw[20:24]))}
	bt := parseReshdr(raw[48:72])
	if bt.offset+bt.stored > int64(len(raw)) || bt.flags&flagCompressed != 0 {
		return nil, fmt.Errorf("blob table out of range or compressed")
	}
	table := raw[bt.offset : bt.offset+bt.stored]
	for len(table) >= 50 {
		e := table[:50]
		table = table[50:]
		rh := parseReshdr(e[:24])
		if rh.flags&flagSolid != 0 {
			return nil, fmt.Errorf("solid resources not supported here")
		}
		b := Blob{Size: rh.size, StoredSize: rh.stored}
		copy(b.SHA1[:], e[30:50])
		if rh.offset+rh.stored > int64(len(raw)) {
			return nil, fmt.Errorf("resource out of range")
		}
		res := raw[rh.offset : rh.offset+rh.stored]
		if rh.flags&flagCompressed == 0 {
			b.Chunks = []Chunk{{Stored: res, Size: len(res), Raw: true}}
			w.Blobs = append(w.Blobs, b)
			continue
		}
		n := int((rh.size + int64(w.ChunkSize) - 1) / int64(w.ChunkSize))
		entry := 4
		if rh.size > 1<<32-1 {
			entry = 8
		}
		tsize := (n - 1) * entry
		if tsize > len(res) {
			return nil, fmt.Errorf("chunk table out of range")
		}
		starts := make([]int, n+1)
		for i := 1; i < n; i++ {
			if entry == 4 {
				starts[i] = int(binary.LittleEndian.Uint32(res[(i-1)*4:]))
			} else {
				starts[i] = int(binary.LittleEndian.Uint64(res[(i-1)*8:]))
			}
		}
		data := res[tsize:]
		starts[n] = len(data)
		for i := 0; i < n; i++ {
			if starts[i] > starts[i+1] || starts[i+1] > len(data) {
				return nil, fmt.Errorf("bad chunk table")
			}
			usize := w.ChunkSize
			if i == n-1 {
				usize = int(rh.size - int64(i)*int64(w.ChunkSize))
			}
			c := data[starts[i]:starts[i+1]]
			b.Chunks = append(b.Chunks, Chunk{Stored: c, Size: usize, Raw: len(c) == usize})
		}
		w.Blobs = append(w.Blobs, b)
	}
	return w, nil
}

// Codec is the pair of functions under test.
type Codec struct {
	Compress   func(dst, src []byte) int
	Decompress func(dst, src []byte) error
}

// CompareWithWimlib recompresses every blob of w with c, checks that each
// chunk round-trips, and returns the total chunk bytes stored by wimlib and
// by c (a chunk that does not shrink counts at its raw size, as in a WIM).
func CompareWithWimlib(tb testing.TB, w *WIM, c Codec) (wimlibBytes, ourBytes int64) {
	tb.Helper()
	raw := make([]byte, w.ChunkSize)
	comp := make([]byte, w.ChunkSize)
	back := make([]byte, w.ChunkSize)
	for _, b := range w.Blobs {
		h := sha1.New()
		for _, ch := range b.Chunks {
			wimlibBytes += int64(len(ch.Stored))
			data := raw[:ch.Size]
			if ch.Raw {
				copy(data, ch.Stored)
			} else if err := c.Decompress(data, ch.Stored); err != nil {
				tb.Fatalf("decompressing wimlib chunk: %v", err)
			}
			h.Write(data)
			n := c.Compress(comp[:len(data)], data)
			if n == 0 {
				ourBytes += int64(len(data))
				continue
			}
			if n >= len(data) {
				tb.Fatalf("Compress returned %d for a %d-byte chunk", n, len(data))
			}
			ourBytes += int64(n)
			out := back[:len(data)]
			if err := c.Decompress(out, comp[:n]); err != nil {
				tb.Fatalf("decompressing our chunk: %v", err)
			}
			if string(out) != string(data) {
				tb.Fatalf("chunk does not round-trip")
			}
		}
		var sum [20]byte
		h.Sum(sum[:0])
		if sum != b.SHA1 {
			tb.Fatalf("blob %x: SHA-1 mismatch", b.SHA1)
		}
	}
	return wimlibBytes, ourBytes
}

// InPlace checks that compress gives the same result when dst is src, and
// leaves src as it was when the chunk does not compress (the WIM writer
// compresses chunks in place and then stores those raw).
func InPlace(tb testing.TB, chunkSize int, compress func(dst, src []byte) int) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	random := make([]byte, chunkSize)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	chunks := append(Chunks(Corpus(tb), chunkSize), random, random[:100], make([]byte, chunkSize))
	for i, data := range chunks {
		want := make([]byte, len(data))
		n := compress(want, data)
		buf := append([]byte(nil), data...)
		if m := compress(buf, buf); m != n {
			tb.Fatalf("chunk %d: %d bytes in place, %d not", i, m, n)
		}
		switch {
		case n == 0 && !bytes.Equal(buf, data):
			tb.Fatalf("chunk %d: not compressed, but changed in place", i)
		case n > 0 && !bytes.Equal(buf[:n], want[:n]):
			tb.Fatalf("chunk %d: compressed in place differs", i)
		}
	}
}
