package codectest

import (
	"fmt"
	"testing"
)

// BenchDecompress measures decompressing every compressed chunk of w with
// decompress, reporting throughput in uncompressed bytes.
func BenchDecompress(b *testing.B, w *WIM, decompress func(dst, src []byte) error) {
	var chunks []Chunk
	var total int64
	for _, bl := range w.Blobs {
		for _, c := range bl.Chunks {
			if !c.Raw {
				chunks = append(chunks, c)
				total += int64(c.Size)
			}
		}
	}
	buf := make([]byte, w.ChunkSize)
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		for _, c := range chunks {
			if err := decompress(buf[:c.Size], c.Stored); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchCompress measures compressing the corpus in chunkSize chunks with
// compress, reporting throughput and the compressed/uncompressed ratio
// (chunks that do not shrink count at their raw size, as in a WIM).
func BenchCompress(b *testing.B, chunkSize int, compress func(dst, src []byte) int) {
	chunks := Chunks(Corpus(b), chunkSize)
	dst := make([]byte, chunkSize)
	var total, out int64
	for _, c := range chunks {
		total += int64(len(c))
	}
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		out = 0
		for _, c := range chunks {
			n := compress(dst[:len(c)], c)
			if n == 0 {
				n = len(c)
			}
			out += int64(n)
		}
	}
	b.ReportMetric(float64(out)/float64(total), "ratio")
}

// BenchSmallChunks measures decompressing single chunks of 1, 4 and 32 KiB
// (the tails of the corpus, compressed with c), where the per-chunk work of
// reading and tabulating the Huffman codes dominates.
func BenchSmallChunks(b *testing.B, c Codec) {
	corpus := Corpus(b)
	for _, n := range []int{1024, 4096, 32768} {
		src := corpus[len(corpus)-n:]
		comp := make([]byte, n)
		m := c.Compress(comp, src)
		if m == 0 {
			b.Fatalf("%d bytes of Go source did not compress", n)
		}
		out := make([]byte, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for range b.N {
				if err := c.Decompress(out, comp[:m]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
