package wim

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Fuzz targets for the parsers that see untrusted bytes. Seeds live in
// testdata/fuzz/<target>/ (made from small real WIMs); run with e.g.
// go test ./wim -run '^$' -fuzz FuzzMetadata -fuzztime 60s -fuzzminimizetime 5s
// (FuzzReader inputs are whole WIMs: without a short -fuzzminimizetime the
// engine spends minutes minimising each new input and shows 0 execs/s.)

func FuzzHeader(f *testing.F) {
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		h.compression()
		if h2, err := parseHeader(h.bytes()); err != nil || h2.blobTable != h.blobTable || h2.xml != h.xml {
			t.Fatalf("header does not round-trip: %v", err)
		}
	})
}

func FuzzBlobTable(f *testing.F) {
	f.Add(make([]byte, blobEntrySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &part{r: bytes.NewReader(nil), size: 1 << 40, hdr: &header{version: versionDefault, partNumber: 1, totalParts: 1}}
		blobs, metas, err := parseBlobTable(b, p)
		if err != nil {
			return
		}
		for _, x := range append(metas, mapValues(blobs)...) {
			if x.size <= 0 || x.hash == zeroHash {
				t.Fatalf("kept blob %+v", x)
			}
		}
	})
}

func mapValues(m map[[20]byte]*blob) []*blob {
	var out []*blob
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func FuzzMetadata(f *testing.F) {
	root := &File{Attributes: AttrDirectory, SecurityID: -1}
	root.Children = []*File{{Name: "a", Attributes: AttrNormal, SecurityID: -1, Parent: root}}
	f.Add(serializeMetadata(root, [][]byte{{1, 2, 3}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, err := parseMetadata(b, &Image{})
		if err != nil {
			return
		}
		// What parsed must serialise and parse again to the same tree.
		again := serializeMetadata(pm.root, pm.security)
		pm2, err := parseMetadata(again, &Image{})
		if err != nil {
			t.Fatalf("re-parse of serialised metadata: %v", err)
		}
		if a, b := treeString(pm.root), treeString(pm2.root); a != b {
			t.Fatalf("metadata does not round-trip:\n%s\n---\n%s", a, b)
		}
	})
}

func treeString(f *File) string {
	var b bytes.Buffer
	var walk func(f *File, depth int)
	walk = func(f *File, depth int) {
		b.WriteString(bytesRepeat(" ", depth))
		b.WriteString(f.Name)
		b.WriteString(" ")
		b.WriteString(f.FileMode().String())
		if f.Attributes&AttrDirectory == 0 {
			b.Write(f.Hash[:])
		}
		b.WriteByte('\n')
		for _, c := range f.Children {
			walk(c, depth+1)
		}
	}
	walk(f, 0)
	return b.String()
}

func bytesRepeat(s string, n int) string { return string(bytes.Repeat([]byte(s), n)) }

// FuzzReader opens a whole WIM image from bytes, walks every image and
// reads every file: any input must give an error, never a panic or hang.
var errStop = errors.New("stop")

func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		r.Info()
		// Many entries may share one large blob: bound the work per input
		// (the parsers, not the data volume, are under test).
		budget := int64(8 << 20)
		for _, img := range r.Images() {
			img.Walk(func(path string, f *File) error {
				if budget <= 0 {
					return errStop
				}
				if rc, err := f.Open(); err == nil {
					n, _ := io.Copy(io.Discard, io.LimitReader(rc, min(budget, 1<<20)))
					budget -= n + 4096
					rc.Close()
				}
				return nil
			})
		}
	})
}
