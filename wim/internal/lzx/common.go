// Package lzx implements the LZX compression format as used in WIM files.
//
// It differs from the Cabinet variant: every chunk is compressed on its own
// with a window the size of the chunk (rounded up to a power of two, at least
// 32 KiB), the recent-offsets queue starts at {1,1,1} for every chunk, the
// x86 CALL (E8) translation is always applied with a fixed "file size" of
// 12000000, and a block header says "default size 32768" with a single bit.
package lzx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
)

// ErrCorrupt is returned (possibly wrapped with detail) for any malformed input.
var ErrCorrupt = errors.New("lzx: corrupt compressed data")

const (
	numChars          = 256
	minMatchLen       = 2
	maxMatchLen       = 257
	numLens           = maxMatchLen - minMatchLen + 1
	numPrimaryLens    = 7
	numLenHeaders     = numPrimaryLens + 1
	minSecondaryLen   = minMatchLen + numPrimaryLens
	blockVerbatim     = 1
	blockAligned      = 2
	blockUncompressed = 3
	minWindowOrder    = 15
	maxWindowOrder    = 21
	maxOffsetSlots    = 50
	maxMainSyms       = numChars + maxOffsetSlots*numLenHeaders
	lenSyms           = numLens - numPrimaryLens
	preSyms           = 20
	alignedSyms       = 8
	numAlignedBits    = 3
	minAlignedSlot    = 8
	maxMainCodeLen    = 16
	maxLenCodeLen     = 16
	maxPreCodeLen     = 15
	maxAlignedCodeLen = 7
	e8FileSize        = 12000000
	defaultBlockSize  = 32768
	numRecentOffsets  = 3
	offsetAdjust      = numRecentOffsets - 1
)

// offsetSlotBase[s] is the first formatted offset (offset + 2) of slot s;
// slots 0-2 are the recent offsets.
var offsetSlotBase = [maxOffsetSlots + 1]int32{
	-2, -1, 0, 1, 2, 4, 6, 10, 14, 22, 30, 46, 62, 94, 126, 190, 254, 382, 510, 766,
	1022, 1534, 2046, 3070, 4094, 6142, 8190, 12286, 16382, 24574, 32766, 49150, 65534,
	98302, 131070, 196606, 262142, 393214, 524286, 655358, 786430, 917502, 1048574,
	1179646, 1310718, 1441790, 1572862, 1703934, 1835006, 1966078, 2097150,
}

var extraOffsetBits = [maxOffsetSlots]uint8{
	0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11,
	11, 12, 12, 13, 13, 14, 14, 15, 15, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 17,
	17, 17, 17, 17, 17,
}

// windowOrder returns log2 of the LZX window for chunks of up to size bytes,
// or 0 if size is 0 or larger than the largest window.
func windowOrder(size int) uint {
	if size <= 0 || size > 1<<maxWindowOrder {
		return 0
	}
	o := uint(bits.Len(uint(size - 1)))
	return max(o, minWindowOrder)
}

// numMainSyms is the main code size for a window: enough offset slots for
// the largest offset the window allows (window - 3: a match cannot start at
// the first byte and reach the last two).
func numMainSyms(order uint) int {
	maxOff := int32(1)<<order - minMatchLen - 1
	slots := 30
	for maxOff >= offsetSlotBase[slots] {
		slots++
	}
	return numChars + slots*numLenHeaders
}

// e8Filter applies (undo=false, before compression) or reverts (undo=true,
// after decompression) the translation of x86 CALL targets from relative to
// absolute. No translation starts in the last 10 bytes, and bytes that were
// part of a translated target are not scanned again.
func e8Filter(data []byte, undo bool) {
	if len(data) <= 10 {
		return
	}
	limit := len(data) - 10
	for i := 0; i < limit; {
		j := bytes.IndexByte(data[i:limit], 0xE8)
		if j < 0 {
			return
		}
		i += j
		t := data[i+1 : i+5]
		pos := int32(i)
		v := int32(binary.LittleEndian.Uint32(t))
		if undo {
			if v >= 0 {
				if v < e8FileSize {
					binary.LittleEndian.PutUint32(t, uint32(v-pos))
				}
			} else if v >= -pos {
				binary.LittleEndian.PutUint32(t, uint32(v+e8FileSize))
			}
		} else if v >= -pos && v < e8FileSize {
			if v < e8FileSize-pos {
				binary.LittleEndian.PutUint32(t, uint32(v+pos))
			} else {
				binary.LittleEndian.PutUint32(t, uint32(v-e8FileSize))
			}
		}
		i += 5
	}
}
