//go:build !amd64

package blake3

func compress(cv *[8]uint32, block *[64]byte, counter uint64, blockLen, flags uint32) {
	compressGeneric(cv, block, counter, blockLen, flags)
}
