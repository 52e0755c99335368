package wim

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
)

// Checksums is a table of fast checksums (XXH64) of a WIM's file data, one
// per blob, that lets an apply check what it decompressed without
// computing each blob's SHA-1 (ApplyOptions.Checksums). Reader.Checksums
// makes it.
//
// Why: on a CPU without SHA instructions, such as QEMU's emulated one or
// the many field machines older than about 2019, the SHA-1 of the data is
// a quarter of an apply's CPU; XXH64 costs a twentieth of that.
//
// What it keeps of the SHA-1 check, and what it needs. A SHA-1 mismatch at
// apply time means one of two things: the WIM's bytes were damaged or
// changed, or the decoder produced wrong data (a bug, bad memory).
// XXH64 is no defence against someone who chooses the data, so a table
// may stand in for the SHA-1s only where the first cannot happen: when
// the WIM's bytes are authenticated, before use, by the same means that
// carried the table (a signed package manifest holding both the table and
// the WIM's SHA-256 sums, as minint's packages do). The second still
// shows: Reader.Checksums decodes every blob and checks its SHA-1 before
// it records the blob's XXH64, so the table holds the checksums of the
// right data, and any decoder fault in the apply is a mismatch.
//
// The encoding is 8 bytes (little-endian XXH64) for each data blob of the
// blob table, in the ascending order of the blobs' SHA-1s; its length
// therefore also says which WIM it was made for, give or take a WIM with
// as many blobs.
type Checksums []byte

// Checksums verifies the WIM as Verify does and returns its Checksums.
func (r *Reader) Checksums(ctx context.Context, opts VerifyOptions) (Checksums, error) {
	sums := make(map[*blob]uint64, len(r.blobs))
	if err := r.verify(ctx, opts, sums); err != nil {
		return nil, err
	}
	out := make(Checksums, 0, 8*len(sums))
	for _, b := range r.sortedBlobs() {
		out = binary.LittleEndian.AppendUint64(out, sums[b])
	}
	return out, nil
}

// sortedBlobs returns the data blobs in Checksums order.
func (r *Reader) sortedBlobs() []*blob {
	bs := make([]*blob, 0, len(r.blobs))
	for _, b := range r.blobs {
		bs = append(bs, b)
	}
	slices.SortFunc(bs, func(x, y *blob) int { return bytes.Compare(x.hash[:], y.hash[:]) })
	return bs
}

// checksumTable decodes c for r: ErrChecksum if it has the wrong length,
// before anything is applied.
func (r *Reader) checksumTable(c Checksums) (map[*blob]uint64, error) {
	if len(c) != 8*len(r.blobs) {
		return nil, fmt.Errorf("%w: the checksum table has %d bytes, this WIM's %d blobs need %d (a table made for another WIM?)", ErrChecksum, len(c), len(r.blobs), 8*len(r.blobs))
	}
	m := make(map[*blob]uint64, len(r.blobs))
	for i, b := range r.sortedBlobs() {
		m[b] = binary.LittleEndian.Uint64(c[8*i:])
	}
	return m, nil
}
