package wim

import (
	"encoding/binary"
)

const blobEntrySize = 50

// blob is one entry of the blob table: a piece of data identified by SHA-1.
type blob struct {
	hash     [20]byte
	size     int64
	res      resource
	refcnt   uint32
	partNum  uint16
	solid    bool
	metadata bool
}

// parseBlobTable returns the data blobs (keyed by hash) and the metadata
// resources in image order, following wimlib's read_blob_table.
func parseBlobTable(buf []byte, p *part) (map[[20]byte]*blob, []*blob, error) {
	if len(buf)%blobEntrySize != 0 {
		return nil, nil, formatErr("blob table size %d is not a multiple of %d", len(buf), blobEntrySize)
	}
	blobs := make(map[[20]byte]*blob, len(buf)/blobEntrySize)
	var metas []*blob
	for i := 0; i < len(buf); i += blobEntrySize {
		e := buf[i : i+blobEntrySize]
		rh := getReshdr(e)
		b := &blob{
			partNum: binary.LittleEndian.Uint16(e[24:]),
			refcnt:  binary.LittleEndian.Uint32(e[26:]),
		}
		copy(b.hash[:], e[30:50])
		if p.hdr.version == versionDefault {
			rh.flags &^= reshdrFlagSolid
		}
		if rh.flags&reshdrFlagSolid != 0 {
			if rh.uncompSize == solidMagicSize {
				continue // a solid resource's own entry
			}
			// A blob inside a solid resource: offset/size are within the
			// uncompressed solid stream. Listed so that images can be
			// walked; reading it reports ErrUnsupported.
			b.solid = true
			b.size = rh.uncompSize
		} else {
			if err := p.checkResource("blob table entry", rh); err != nil {
				return nil, nil, err
			}
			b.res = resource{p: p, rh: rh}
			b.size = rh.uncompSize
		}
		if b.hash == zeroHash || b.size == 0 {
			continue
		}
		if b.partNum != p.hdr.partNumber {
			continue
		}
		if rh.flags&reshdrFlagMetadata != 0 {
			if b.refcnt == 0 {
				continue
			}
			if b.solid {
				return nil, nil, unsupportedErr("image metadata in a solid resource")
			}
			if p.hdr.partNumber != 1 {
				continue
			}
			b.metadata = true
			metas = append(metas, b)
			continue
		}
		if _, dup := blobs[b.hash]; dup {
			continue
		}
		blobs[b.hash] = b
	}
	return blobs, metas, nil
}

func appendBlobEntry(out []byte, b *blob, rh reshdr) []byte {
	var e [blobEntrySize]byte
	putReshdr(e[:], rh)
	binary.LittleEndian.PutUint16(e[24:], b.partNum)
	binary.LittleEndian.PutUint32(e[26:], b.refcnt)
	copy(e[30:], b.hash[:])
	return append(out, e[:]...)
}
