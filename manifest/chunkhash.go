package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/minint/minint/internal/blake3"
)

// The hashes an entry's chunks can be made with (Entry.ChunkHash).
//
// Every byte a PE applies passes through its chunk hash, so on a real
// machine that hash is most of what verification costs. There BLAKE3 with
// AVX2 ran 3.5 times as fast as SHA-256 with SHA instructions and 8 times
// as fast as SHA-256 without them (which most Intel CPUs made before
// 2020-2021 lack), and on such a CPU a verified apply to tmpfs cost 1.13
// times an unverified one instead of 1.34 (docs/benchmarks.md). Under
// QEMU's TCG, which offers neither AVX2 nor SHA instructions, SHA-256
// runs generic Go code, and BLAKE3 the scalar assembly of
// internal/blake3, which hashed 3 times as fast there as the generic Go of
// lukechampine.com/blake3 and 4 times as fast as SHA-256. Both give
// 256-bit hashes, and a chunk list of either, under the signature,
// authenticates the file the same way (see ChunkReader). BLAKE3 on a CPU
// with AVX2 is lukechampine.com/blake3, with its AVX2 and AVX-512 code
// (github.com/zeebo/blake3's ran half as fast with AVX-512); on one
// without AVX2 (TCG, and the Atom, Celeron and Pentium lines until 2021)
// it is internal/blake3's own. SHA-256 stays for sites that
// accept only FIPS 180 hashes, for PEs older than chunk_hash, and for the
// manifests made before it.
const (
	// ChunkSHA256 is the chunk hash of an entry that names none: JSON
	// leaves it out, so that PEs from before chunk_hash read it too.
	ChunkSHA256 = "sha256"
	// ChunkBLAKE3 is BLAKE3 with a 256-bit output, Build's default.
	ChunkBLAKE3 = "blake3"
)

// KnownChunkHash reports whether name is a chunk hash this package makes
// and checks, spelled as a manifest or BuildOptions.ChunkHash spells it.
func KnownChunkHash(name string) bool {
	return name == ChunkSHA256 || name == ChunkBLAKE3
}

// ChunkHashName is the name of the hash of e's chunks, ChunkSHA256 when
// the entry names none.
func (e *Entry) ChunkHashName() string {
	if e.ChunkHash == "" {
		return ChunkSHA256
	}
	return e.ChunkHash
}

// NewChunkHash returns a new hash.Hash of the kind e's chunks are made
// with, for a chunk that arrives in pieces.
func (e *Entry) NewChunkHash() hash.Hash {
	if e.ChunkHash == ChunkBLAKE3 {
		return blake3.New()
	}
	return sha256.New()
}

// SumChunk is the hash of one whole chunk b of e, to compare with
// ChunkSums.
func (e *Entry) SumChunk(b []byte) [32]byte {
	if e.ChunkHash == ChunkBLAKE3 {
		return blake3.Sum256(b)
	}
	return sha256.Sum256(b)
}

// ChunkSums decodes e's chunk hashes, which a parsed manifest has
// validated (64 lower-case hex digits each).
func (e *Entry) ChunkSums() [][32]byte {
	sums := make([][32]byte, len(e.Chunks))
	for i, h := range e.Chunks {
		b, _ := hex.DecodeString(h)
		copy(sums[i][:], b)
	}
	return sums
}
