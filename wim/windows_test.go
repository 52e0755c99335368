package wim

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeWindowsStyleWIM builds an image the way Windows tools would: security
// descriptors, a named data stream, a DOS short name and no UNIX data.
func writeWindowsStyleWIM(t *testing.T, path string, c Compression) {
	t.Helper()
	w, err := Create(path, WriterOptions{Compression: c})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("main data ", 100))
	ads := []byte("zone identifier stream")
	var dataHash, adsHash [20]byte
	err = w.writeBlobs(context.Background(), []*blobSource{
		memSource(data, false, func(b *outBlob) { dataHash = b.hash }),
		memSource(ads, false, func(b *outBlob) { adsHash = b.hash }),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sd0 := []byte{1, 0, 4, 0x80, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	sd1 := append(bytes.Clone(sd0), 0xAA, 0xBB, 0xCC, 0xDD)
	root := &File{Attributes: AttrDirectory, SecurityID: 0, ModTime: 133000000000000000}
	f := &File{
		Name: "Long File Name.txt", ShortName: "LONGFI~1.TXT",
		Attributes: AttrArchive, SecurityID: 1, Parent: root,
		Hash: dataHash, Size: int64(len(data)),
		Streams:      []Stream{{Name: "Zone.Identifier", Hash: adsHash, Size: int64(len(ads))}},
		CreationTime: 132000000000000001, ModTime: 133000000000000007, AccessTime: 133000000000000009,
	}
	root.Children = []*File{f}
	if err := w.addImage(context.Background(), root, memSource(serializeMetadata(root, [][]byte{sd0, sd1}), true, nil), imageXML(root, "win", "")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkWindowsStyle(t *testing.T, path string) {
	t.Helper()
	rc, err := OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Verify(context.Background(), VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	img, _ := rc.Image(1)
	f, err := img.Lookup("/Long File Name.txt")
	if err != nil {
		t.Fatal(err)
	}
	if f.ShortName != "LONGFI~1.TXT" || f.HasUnixData || f.CreationTime != 132000000000000001 || f.ModTime != 133000000000000007 {
		t.Errorf("metadata lost: %+v", f)
	}
	if sd := f.SecurityDescriptor(); len(sd) != 24 || sd[20] != 0xAA {
		t.Errorf("security descriptor lost: %x", sd)
	}
	if len(f.Streams) != 1 || f.Streams[0].Name != "Zone.Identifier" {
		t.Fatalf("named stream lost: %+v", f.Streams)
	}
	r, err := f.OpenStream("Zone.Identifier")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "zone identifier stream" {
		t.Errorf("stream data %q %v", b, err)
	}
	r, _ = f.Open()
	if b, err := io.ReadAll(r); err != nil || !strings.HasPrefix(string(b), "main data") {
		t.Errorf("data %q %v", b, err)
	}
}

// Security descriptors and named streams survive export (same and
// different compression), and wimlib sees them.
func TestWindowsMetadataSurvivesExport(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "win.wim")
	writeWindowsStyleWIM(t, src, CompressionLZX)
	checkWindowsStyle(t, src)
	for _, c := range []Compression{CompressionLZX, CompressionNone} {
		dst := filepath.Join(tmp, "exp-"+c.String()+".wim")
		rc, err := OpenReader(src)
		if err != nil {
			t.Fatal(err)
		}
		w, err := Create(dst, WriterOptions{Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		img, _ := rc.Image(1)
		if err := w.ExportImage(context.Background(), img, ImageOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		checkWindowsStyle(t, dst)
		if _, err := os.Stat(dst); err != nil {
			t.Fatal(err)
		}
		if hasWimlib() {
			wimlibVerify(t, dst)
			out := wimlib(t, "dir", dst, "1", "--detailed")
			for _, want := range []string{"Zone.Identifier", "LONGFI~1.TXT", "Security Descriptor"} {
				if !strings.Contains(out, want) {
					t.Errorf("wimlib dir --detailed lacks %q:\n%s", want, out)
				}
			}
		}
	}
}
