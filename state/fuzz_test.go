package state

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeManifest: any index and manifest bytes either fail with an
// error or give a manifest whose paths are all safe and whose links point
// at earlier entries (what Restore relies on).
func FuzzDecodeManifest(f *testing.F) {
	good, _ := json.Marshal(&Manifest{Version: 1, Entries: []Entry{
		{Path: "home", Type: TypeDir, Mode: 0o755},
		{Path: "home/a", Type: TypeFile, Mode: 0o644, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{Path: "home/b", Type: TypeFile, Link: "home/a"},
		{Path: "home/c", Type: TypeSymlink, Target: "../etc"},
	}})
	f.Add(encodeIndex(good), good)
	f.Add([]byte("minint-state 1\nmanifest sha256:00 1\n"), []byte("{}"))
	bad, _ := json.Marshal(&Manifest{Version: 1, Entries: []Entry{{Path: "../x", Type: TypeFile}}})
	f.Add(encodeIndex(bad), bad)
	f.Fuzz(func(t *testing.T, index, manifest []byte) {
		m, err := DecodeManifest(index, manifest)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range m.Entries {
			if checkRel(e.Path) != nil {
				t.Fatalf("unsafe path %q accepted", e.Path)
			}
			if e.Link != "" && !seen[e.Link] {
				t.Fatalf("link %q → %q to a later or missing entry accepted", e.Path, e.Link)
			}
			seen[e.Path] = true
		}
		// Whatever decodes also decodes when re-encoded.
		b, _ := json.Marshal(m)
		if _, err := DecodeManifest(encodeIndex(b), b); err != nil {
			t.Fatalf("re-encoded manifest rejected: %v", err)
		}
	})
}
