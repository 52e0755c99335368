package wim

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
)

const integrityChunk = 10 << 20

// integrityTable computes wimlib's integrity table over [headerSize, end):
// size, entry count, chunk size, then one SHA-1 per 10 MiB.
func integrityTable(r io.ReaderAt, end int64, progress func(int64)) ([]byte, error) {
	total := end - headerSize
	if total < 0 {
		return nil, formatErr("integrity range ends at %d, before the header", end)
	}
	n := (total + integrityChunk - 1) / integrityChunk
	out := make([]byte, 12, 12+20*n)
	binary.LittleEndian.PutUint32(out, uint32(12+20*n))
	binary.LittleEndian.PutUint32(out[4:], uint32(n))
	binary.LittleEndian.PutUint32(out[8:], integrityChunk)
	buf := make([]byte, 1<<20)
	for off := int64(headerSize); off < end; {
		h := sha1.New()
		cend := min(off+integrityChunk, end)
		for off < cend {
			k := min(int64(len(buf)), cend-off)
			if _, err := r.ReadAt(buf[:k], off); err != nil {
				return nil, fmt.Errorf("wim: integrity check reading at %d: %w", off, noEOF(err))
			}
			h.Write(buf[:k])
			off += k
			if progress != nil {
				progress(k)
			}
		}
		out = h.Sum(out)
	}
	return out, nil
}

// checkIntegrity verifies a part's integrity table, if it has one.
func checkIntegrity(p *part, progress func(int64)) error {
	rh := p.hdr.integrity
	if rh.offset == 0 || rh.sizeInWim == 0 {
		return nil
	}
	stored, err := resource{p: p, rh: rh}.readAll(64 << 20)
	if err != nil {
		return fmt.Errorf("wim: %s: integrity table: %w", p.name, err)
	}
	if len(stored) < 12 {
		return formatErr("%s: integrity table of %d bytes", p.name, len(stored))
	}
	size := binary.LittleEndian.Uint32(stored)
	n := int64(binary.LittleEndian.Uint32(stored[4:]))
	cs := int64(binary.LittleEndian.Uint32(stored[8:]))
	end := p.hdr.blobTable.offset + p.hdr.blobTable.sizeInWim
	if int64(size) != int64(len(stored)) || int64(len(stored)) != 12+20*n || cs == 0 {
		return formatErr("%s: integrity table header (size %d, %d entries, chunk %d) is inconsistent", p.name, size, n, cs)
	}
	if want := (end - headerSize + cs - 1) / cs; want != n {
		return formatErr("%s: integrity table has %d entries, the file needs %d", p.name, n, want)
	}
	buf := make([]byte, 1<<20)
	for i := int64(0); i < n; i++ {
		off := headerSize + i*cs
		cend := min(off+cs, end)
		h := sha1.New()
		for off < cend {
			k := min(int64(len(buf)), cend-off)
			if _, err := p.r.ReadAt(buf[:k], off); err != nil {
				return fmt.Errorf("wim: %s: integrity check reading at %d: %w", p.name, off, noEOF(err))
			}
			h.Write(buf[:k])
			off += k
			if progress != nil {
				progress(k)
			}
		}
		if !bytes.Equal(h.Sum(nil), stored[12+20*i:32+20*i]) {
			return fmt.Errorf("%w: %s: integrity table chunk %d (bytes %d-%d)", ErrChecksum, p.name, i, headerSize+i*cs, cend)
		}
	}
	return nil
}
