package wim

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// checksumTree writes a tree whose blobs cover the cases of a table: one
// shared by two files, one of many chunks, an empty file (no blob).
func checksumTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i*31 + i>>11)
	}
	files := map[string][]byte{
		"a":         []byte("alpha"),
		"b":         []byte("alpha"), // same blob as a
		"c":         bytes.Repeat([]byte("minint checks every blob "), 1000),
		"sub/big":   big,
		"sub/empty": nil,
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// checksummed captures checksumTree into tmp/x.wim and returns tmp, the
// tree's files, the open WIM and its Checksums.
func checksummed(t *testing.T, comp Compression) (string, map[string][]byte, *ReadCloser, Checksums) {
	t.Helper()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	files := checksumTree(t, src)
	w := filepath.Join(tmp, "x.wim")
	capture(t, src, w, WriterOptions{Compression: comp}, ImageOptions{})
	r, err := OpenReader(w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	sums, err := r.Checksums(context.Background(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tmp, files, r, sums
}

func TestChecksums(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionXPRESS, CompressionLZX} {
		t.Run(comp.String(), func(t *testing.T) {
			tmp, files, r, sums := checksummed(t, comp)

			// The table, computed here from the files themselves: one
			// XXH64 per distinct non-empty content, in SHA-1 order.
			type blobSum struct {
				sha [20]byte
				x   uint64
			}
			var want []blobSum
			seen := map[[20]byte]bool{}
			for _, data := range files {
				s := sha1.Sum(data)
				if len(data) == 0 || seen[s] {
					continue
				}
				seen[s] = true
				want = append(want, blobSum{s, xxhash.Sum64(data)})
			}
			slices.SortFunc(want, func(x, y blobSum) int { return bytes.Compare(x.sha[:], y.sha[:]) })
			var wantTable Checksums
			for _, b := range want {
				wantTable = binary.LittleEndian.AppendUint64(wantTable, b.x)
			}
			if !bytes.Equal(sums, wantTable) {
				t.Fatalf("table %x, want %x", sums, wantTable)
			}

			dst := filepath.Join(tmp, "dst")
			if err := r.Apply(context.Background(), 1, dst, ApplyOptions{Checksums: sums}); err != nil {
				t.Fatalf("apply with the table: %v", err)
			}
			for name, data := range files {
				if got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name))); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: %d bytes (%v), want %d", name, len(got), err, len(data))
				}
			}
		})
	}
}

// TestChecksumsRefuse: a table entry that differs from the data fails the
// file like a SHA-1 mismatch does, a table of another length fails before
// anything is created, and no table is made of a damaged WIM.
func TestChecksumsRefuse(t *testing.T) {
	tmp, files, r, sums := checksummed(t, CompressionNone)
	w := filepath.Join(tmp, "x.wim")
	ctx := context.Background()

	// Find c's entry: the table is in SHA-1 order of the distinct blobs.
	var shas [][20]byte
	for _, data := range []string{"alpha", string(files["c"]), string(files["sub/big"])} {
		shas = append(shas, sha1.Sum([]byte(data)))
	}
	slices.SortFunc(shas, func(x, y [20]byte) int { return bytes.Compare(x[:], y[:]) })
	ci := slices.Index(shas, sha1.Sum(files["c"]))
	bad := slices.Clone(sums)
	bad[8*ci] ^= 1
	dst := filepath.Join(tmp, "bad-entry")
	if err := r.Apply(ctx, 1, dst, ApplyOptions{Checksums: bad}); !errors.Is(err, ErrChecksum) {
		t.Errorf("apply with a wrong table entry: %v, want ErrChecksum", err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "c")); !os.IsNotExist(err) {
		t.Errorf("the file whose checksum did not match was left behind: %v", err)
	}

	for _, n := range []int{0, len(sums) - 8, len(sums) + 8} {
		dst := filepath.Join(tmp, "short")
		table := make(Checksums, n)
		copy(table, sums)
		if n == 0 {
			table = Checksums{}
		}
		if err := r.Apply(ctx, 1, dst, ApplyOptions{Checksums: table}); !errors.Is(err, ErrChecksum) {
			t.Errorf("apply with a %d-byte table: %v, want ErrChecksum", n, err)
		}
		if _, err := os.Lstat(dst); !os.IsNotExist(err) {
			t.Errorf("a %d-byte table: the apply created %s", n, dst)
		}
	}

	// The table stands in for the SHA-1s only because the data it was
	// made of passed them: a damaged WIM gets no table, and the damage
	// fails an apply that trusts the intact WIM's table.
	b, err := os.ReadFile(w)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, files["c"])
	if i < 0 {
		t.Fatal("c's data is not stored uncompressed in the test WIM")
	}
	b[i+100] ^= 1
	damaged := filepath.Join(tmp, "damaged.wim")
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rd, err := OpenReader(damaged)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if got, err := rd.Checksums(ctx, VerifyOptions{}); !errors.Is(err, ErrChecksum) {
		t.Errorf("Checksums of a damaged WIM: %x, %v; want ErrChecksum", got, err)
	}
	dst = filepath.Join(tmp, "damaged")
	if err := rd.Apply(ctx, 1, dst, ApplyOptions{Checksums: sums}); !errors.Is(err, ErrChecksum) {
		t.Errorf("apply of damaged data with the intact table: %v, want ErrChecksum", err)
	}
}
