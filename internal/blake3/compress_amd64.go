package blake3

// compressBlock is the BLAKE3 compression of one block in scalar code,
// written out by gen_amd64.go. Go's compiler keeps too few of the 32 words
// a compression works on in registers, and each word it moves to memory
// and back costs more than the arithmetic under QEMU's TCG (where a PE
// in CI runs), so hand-allocated registers hash three times as fast
// there as the generic Go code of lukechampine.com/blake3 (see the
// package doc).
//
//go:noescape
func compressBlock(cv *[8]uint32, block *[64]byte, ctrLo, ctrHi, blockLen, flags uint32)

//go:generate go run gen_amd64.go

func compress(cv *[8]uint32, block *[64]byte, counter uint64, blockLen, flags uint32) {
	compressBlock(cv, block, uint32(counter), uint32(counter>>32), blockLen, flags)
}
