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
