package wim

import (
	"encoding/binary"
	"fmt"
	"strings"
)

const (
	headerSize     = 208
	versionDefault = 0x10d00
	versionSolid   = 0xe00

	hdrFlagCompression    = 0x00000002
	hdrFlagReadOnly       = 0x00000004
	hdrFlagSpanned        = 0x00000008
	hdrFlagResourceOnly   = 0x00000010
	hdrFlagMetadataOnly   = 0x00000020
	hdrFlagWriteInProgres = 0x00000040
	hdrFlagRPFix          = 0x00000080
	hdrFlagXPRESS         = 0x00020000
	hdrFlagLZX            = 0x00040000
	hdrFlagLZMS           = 0x00080000
	hdrFlagXPRESS2        = 0x00200000

	reshdrFlagFree       = 0x01
	reshdrFlagMetadata   = 0x02
	reshdrFlagCompressed = 0x04
	reshdrFlagSpanned    = 0x08
	reshdrFlagSolid      = 0x10

	solidMagicSize = 0x100000000
)

var (
	wimMagic = [8]byte{'M', 'S', 'W', 'I', 'M', 0, 0, 0}
	pwmMagic = [8]byte{'W', 'L', 'P', 'W', 'M', 0, 0, 0}
)

// Compression identifies how a WIM's compressed resources are encoded.
type Compression int

// Compression formats. LZMS is recognised but not supported.
const (
	CompressionNone Compression = iota
	CompressionXPRESS
	CompressionLZX
	CompressionLZMS
)

// String returns the name wimlib-imagex uses for the format.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionXPRESS:
		return "xpress"
	case CompressionLZX:
		return "lzx"
	case CompressionLZMS:
		return "lzms"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

// ParseCompression accepts the names wimlib-imagex uses: none, xpress (fast),
// lzx (maximum), lzms (recovery; recognised, not supported for writing).
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return CompressionNone, nil
	case "xpress", "fast":
		return CompressionXPRESS, nil
	case "lzx", "maximum":
		return CompressionLZX, nil
	case "lzms", "recovery":
		return CompressionLZMS, nil
	}
	return 0, fmt.Errorf("wim: unknown compression %q (want none, xpress or lzx)", s)
}

// reshdr locates a resource in a WIM file.
type reshdr struct {
	sizeInWim  int64 // 56 bits on disk
	flags      uint8
	offset     int64
	uncompSize int64
}

func getReshdr(b []byte) reshdr {
	var s [8]byte
	copy(s[:7], b[:7])
	return reshdr{
		sizeInWim:  int64(binary.LittleEndian.Uint64(s[:])),
		flags:      b[7],
		offset:     int64(binary.LittleEndian.Uint64(b[8:])),
		uncompSize: int64(binary.LittleEndian.Uint64(b[16:])),
	}
}

func putReshdr(b []byte, r reshdr) {
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], uint64(r.sizeInWim))
	copy(b[:7], s[:7])
	b[7] = r.flags
	binary.LittleEndian.PutUint64(b[8:], uint64(r.offset))
	binary.LittleEndian.PutUint64(b[16:], uint64(r.uncompSize))
}

type header struct {
	magic      [8]byte
	version    uint32
	flags      uint32
	chunkSize  uint32
	guid       [16]byte
	partNumber uint16
	totalParts uint16
	imageCount uint32
	blobTable  reshdr
	xml        reshdr
	bootMeta   reshdr
	bootIndex  uint32
	integrity  reshdr
}

func parseHeader(b []byte) (*header, error) {
	if len(b) < headerSize {
		return nil, formatErr("file too short for a WIM header (%d bytes)", len(b))
	}
	h := &header{}
	copy(h.magic[:], b[0:8])
	if h.magic == pwmMagic {
		return nil, unsupportedErr("pipable WIM (wimlib --pipable)")
	}
	if h.magic != wimMagic {
		return nil, formatErr("bad magic %q, not a WIM file", b[0:8])
	}
	if hs := binary.LittleEndian.Uint32(b[8:]); hs != headerSize {
		return nil, formatErr("header size %d, want %d", hs, headerSize)
	}
	le := binary.LittleEndian
	h.version = le.Uint32(b[0x0c:])
	h.flags = le.Uint32(b[0x10:])
	h.chunkSize = le.Uint32(b[0x14:])
	copy(h.guid[:], b[0x18:0x28])
	h.partNumber = le.Uint16(b[0x28:])
	h.totalParts = le.Uint16(b[0x2a:])
	h.imageCount = le.Uint32(b[0x2c:])
	h.blobTable = getReshdr(b[0x30:])
	h.xml = getReshdr(b[0x48:])
	h.bootMeta = getReshdr(b[0x60:])
	h.bootIndex = le.Uint32(b[0x78:])
	h.integrity = getReshdr(b[0x7c:])

	if h.version == versionSolid {
		return nil, unsupportedErr("solid WIM version 0x%x (LZMS/solid resources)", h.version)
	}
	if h.version != versionDefault {
		return nil, unsupportedErr("WIM version 0x%x", h.version)
	}
	if h.totalParts == 0 || h.partNumber == 0 || h.partNumber > h.totalParts {
		return nil, formatErr("part %d of %d", h.partNumber, h.totalParts)
	}
	if h.imageCount > 65535 {
		return nil, formatErr("image count %d", h.imageCount)
	}
	if h.flags&hdrFlagCompression != 0 && h.flags&hdrFlagLZMS != 0 && h.flags&(hdrFlagLZX|hdrFlagXPRESS|hdrFlagXPRESS2) == 0 {
		return nil, unsupportedErr("LZMS compression")
	}
	if h.flags&hdrFlagCompression != 0 {
		if h.chunkSize < 4096 || h.chunkSize > 1<<21 || h.chunkSize&(h.chunkSize-1) != 0 {
			return nil, formatErr("chunk size %d is not a power of two in [4K, 2M] (the XPRESS and LZX limits)", h.chunkSize)
		}
	}
	return h, nil
}

func (h *header) compression() (Compression, error) {
	if h.flags&hdrFlagCompression == 0 {
		return CompressionNone, nil
	}
	switch {
	case h.flags&hdrFlagLZX != 0:
		return CompressionLZX, nil
	case h.flags&(hdrFlagXPRESS|hdrFlagXPRESS2) != 0:
		return CompressionXPRESS, nil
	case h.flags&hdrFlagLZMS != 0:
		return CompressionLZMS, nil
	}
	return 0, formatErr("compressed WIM names no compression format (flags 0x%x)", h.flags)
}

func (h *header) bytes() []byte {
	b := make([]byte, headerSize)
	le := binary.LittleEndian
	copy(b, wimMagic[:])
	le.PutUint32(b[8:], headerSize)
	le.PutUint32(b[0x0c:], h.version)
	le.PutUint32(b[0x10:], h.flags)
	le.PutUint32(b[0x14:], h.chunkSize)
	copy(b[0x18:], h.guid[:])
	le.PutUint16(b[0x28:], h.partNumber)
	le.PutUint16(b[0x2a:], h.totalParts)
	le.PutUint32(b[0x2c:], h.imageCount)
	putReshdr(b[0x30:], h.blobTable)
	putReshdr(b[0x48:], h.xml)
	putReshdr(b[0x60:], h.bootMeta)
	le.PutUint32(b[0x78:], h.bootIndex)
	putReshdr(b[0x7c:], h.integrity)
	return b
}

func compressionFlags(c Compression) uint32 {
	switch c {
	case CompressionXPRESS:
		return hdrFlagCompression | hdrFlagXPRESS
	case CompressionLZX:
		return hdrFlagCompression | hdrFlagLZX
	case CompressionLZMS:
		return hdrFlagCompression | hdrFlagLZMS
	}
	return 0
}
