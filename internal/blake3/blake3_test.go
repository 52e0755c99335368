package blake3

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	lc "lukechampine.com/blake3"
)

// own hashes b with this package's code whatever the CPU, in pieces of
// the sizes in splits (cycled), or at once when there are none.
func own(b []byte, splits ...int) [Size]byte {
	var d digest
	d.Reset()
	for i := 0; len(b) > 0; i++ {
		n := len(b)
		if len(splits) > 0 {
			n = min(n, splits[i%len(splits)])
		}
		d.Write(b[:n])
		b = b[n:]
	}
	return d.sum256()
}

func input(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestVectors checks the published BLAKE3 test vectors (testdata from the
// BLAKE3 repository, through lukechampine.com/blake3): input i%251 of
// each length, the first 32 bytes of the extended output.
func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Cases []struct {
			InputLen int    `json:"input_len"`
			Hash     string `json:"hash"`
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) < 20 {
		t.Fatalf("only %d cases in testdata/vectors.json", len(v.Cases))
	}
	for _, c := range v.Cases {
		in := input(c.InputLen)
		want := c.Hash[:2*Size]
		h := New()
		h.Write(in)
		for name, got := range map[string][Size]byte{
			"own":         own(in),
			"own by byte": own(in, 1),
			"own by 63":   own(in, 63, 64, 65),
			"Sum256":      Sum256(in),
			"New":         [Size]byte(h.Sum(nil)),
		} {
			if hex.EncodeToString(got[:]) != want {
				t.Errorf("%s of %d bytes: %x, want %s", name, c.InputLen, got, want)
			}
		}
	}
}

// TestGenerated checks that compress_amd64.s is what gen_amd64.go
// writes, so that the assembly tested is the one the generator makes.
func TestGenerated(t *testing.T) {
	out := filepath.Join(t.TempDir(), "compress_amd64.s")
	cmd := exec.Command("go", "run", "gen_amd64.go", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_amd64.go: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("compress_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("compress_amd64.s differs from what gen_amd64.go writes: run go generate ./internal/blake3")
	}
}

// TestCompress checks the assembly against the paper's compression on
// random chaining values, blocks, counters (high words too), lengths and
// flags.
func TestCompress(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var cv [8]uint32
		var b [blockSize]byte
		for j := range cv {
			cv[j] = r.Uint32()
		}
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		counter, n, flags := r.Uint64(), r.Uint32N(blockSize+1), r.Uint32N(16)
		want := cv
		compressGeneric(&want, &b, counter, n, flags)
		got := cv
		compress(&got, &b, counter, n, flags)
		if got != want {
			t.Fatalf("compress(%x, %x, %d, %d, %d) = %x, want %x", cv, b, counter, n, flags, got, want)
		}
	}
}

// TestTreeShapes compares this package's code with the library on every
// length around the chunk and block boundaries of trees up to 70 chunks
// deep, whole and written in pieces.
func TestTreeShapes(t *testing.T) {
	big := input(71 * chunkSize)
	var lengths []int
	for n := 0; n <= 2*chunkSize+blockSize; n++ {
		lengths = append(lengths, n)
	}
	for k := 3; k <= 70; k++ {
		for _, d := range []int{-blockSize - 1, -blockSize, -1, 0, 1, blockSize} {
			lengths = append(lengths, k*chunkSize+d)
		}
	}
	for _, n := range lengths {
		b := big[:n]
		want := lc.Sum256(b)
		if got := own(b); got != want {
			t.Fatalf("%d bytes: %x, want %x", n, got, want)
		}
		if n%97 == 0 || n > 2*chunkSize+blockSize {
			if got := own(b, 1000, 1, 64, 4096, 63); got != want {
				t.Fatalf("%d bytes in pieces: %x, want %x", n, got, want)
			}
		}
	}
}

// TestSumKeepsState checks that Sum leaves the hash as it was, as
// hash.Hash requires.
func TestSumKeepsState(t *testing.T) {
	b := input(5*chunkSize + 100)
	var d digest
	d.Reset()
	d.Write(b[:3000])
	s := lc.Sum256(b[:3000])
	if got, want := d.Sum([]byte("x")), append([]byte("x"), s[:]...); !bytes.Equal(got, want) {
		t.Fatalf("Sum(\"x\") after 3000 bytes: %x, want %x", got, want)
	}
	d.Write(b[3000:])
	if got, want := [Size]byte(d.Sum(nil)), lc.Sum256(b); got != want {
		t.Fatalf("Sum after Sum and more: %x, want %x", got, want)
	}
	d.Reset()
	if got, want := [Size]byte(d.Sum(nil)), lc.Sum256(nil); got != want {
		t.Fatalf("Sum after Reset: %x, want %x", got, want)
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte("abc"), uint16(1))
	f.Add(input(3*chunkSize+7), uint16(65))
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		want := lc.Sum256(b)
		if got := own(b); got != want {
			t.Fatalf("%d bytes: %x, want %x", len(b), got, want)
		}
		if got := own(b, int(split)+1); got != want {
			t.Fatalf("%d bytes in pieces of %d: %x, want %x", len(b), split+1, got, want)
		}
	})
}

// BenchmarkSum256 hashes 4 MiB with this package's own code and with
// lukechampine.com/blake3 in turn, and reports both speeds and their
// ratio. make bench-deploy runs it under qemu-x86_64 with a CPU without
// AVX2, where the library runs its generic Go, as in a PE under TCG.
func BenchmarkSum256(b *testing.B) {
	buf := input(4 << 20)
	var mine, library time.Duration
	for b.Loop() {
		t := time.Now()
		own(buf)
		mine += time.Since(t)
		t = time.Now()
		lc.Sum256(buf)
		library += time.Since(t)
	}
	mb := float64(b.N*len(buf)) / 1e6
	b.ReportMetric(mb/mine.Seconds(), "own-MB/s")
	b.ReportMetric(mb/library.Seconds(), "library-MB/s")
	b.ReportMetric(library.Seconds()/mine.Seconds(), "own/library")
}
