package manifest

import (
	"crypto/ed25519"
	"errors"
	"path"
	"strings"
	"testing"
)

// FuzzManifest signs arbitrary bytes (in the old format, which binds no
// context, so that every parse is reached) and verifies them: a manifest that
// verifies must be one the PE can use safely (clean relative paths, sizes
// and hashes well formed); anything else must be ErrFormat.
func FuzzManifest(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add([]byte(`{"version":1,"image":{"file":"a.wim","index":1},"files":[{"path":"a.wim","size":3,"sha256":"` + h + `"}]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"d/x","size":10,"sha256":"` + h + `","chunk_size":4,"chunks":["` + h + `","` + h + `","` + h + `"]}]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"../x","size":1,"sha256":"` + h + `"}]}`))
	f.Add([]byte(`{"version":1,"files":[{"path":"x","size":4,"sha256":"` + h + `","chunk_size":4,"chunks":["` + h + `"],"chunk_hash":"blake3"}]}`))
	f.Add([]byte(`{"version":1,"image":{"file":"a.wim","index":1},"files":[{"path":"a.wim","size":300,"sha256":"` + h + `","wim_xxh64":"AAAAAAAAAAABAgMEBQYHCA=="}]}`))
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Verify(b, legacySign(b, priv), pub, VerifyOptions{})
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		for _, e := range m.Files {
			if path.IsAbs(e.Path) || strings.HasPrefix(path.Clean(e.Path), "..") || e.Size < 0 {
				t.Fatalf("unsafe entry accepted: %+v", e)
			}
			if e.ChunkSize > 0 && int64(len(e.Chunks)) != (e.Size+e.ChunkSize-1)/e.ChunkSize {
				t.Fatalf("chunk count accepted: %+v", e)
			}
			if n := e.ChunkHashName(); n != ChunkSHA256 && n != ChunkBLAKE3 || e.ChunkHash != "" && e.ChunkSize <= 0 {
				t.Fatalf("chunk hash accepted: %+v", e)
			}
			if e.WIMChecksums != nil && (len(e.WIMChecksums)%8 != 0 || m.Image == nil || m.Image.File != e.Path) {
				t.Fatalf("WIM checksum table accepted: %+v", e)
			}
		}
	})
}
