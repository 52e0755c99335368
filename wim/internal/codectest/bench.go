package codectest

import "testing"

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
