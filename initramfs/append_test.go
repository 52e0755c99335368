package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/mkuimage/cpio"
)

// TestAppend adds a file to an initramfs of each compression and reads it
// back as the kernel would: the appended file replaces the PE's own, the
// rest is untouched.
func TestAppend(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip", "xz", "none"} {
		t.Run(comp, func(t *testing.T) {
			c, err := compressor(comp)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "initrd")
			var buf bytes.Buffer
			zw, _ := c.wrap(&buf)
			w := cpio.Newc.Writer(zw)
			for _, r := range []cpio.Record{
				cpio.Directory("etc", 0o755), cpio.Directory("etc/minint", 0o755),
				cpio.StaticFile("etc/minint/package.pub", "old key\n", 0o644),
				cpio.StaticFile("init", "#!/bin/sh\n", 0o755),
			} {
				if err := w.WriteRecord(r); err != nil {
					t.Fatal(err)
				}
			}
			cpio.WriteTrailer(w)
			zw.Close()
			buf.WriteString("\x00") // a misaligned end: padding must be handled
			if comp != "none" {
				buf.Truncate(buf.Len() - 1)
			}
			os.WriteFile(p, buf.Bytes(), 0o644)
			if err := Append(p, []File{{Dest: "/etc/minint/package.pub", Data: []byte("new key\n")},
				{Dest: "etc/minint/extra/x.conf", Data: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
			ents, err := ReadArchive(p)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range ents {
				got[e.Name] = string(e.Data)
			}
			if got["etc/minint/package.pub"] != "new key\n" || got["init"] != "#!/bin/sh\n" || got["etc/minint/extra/x.conf"] != "x" {
				t.Errorf("after Append: %q", got)
			}
			if head, _ := os.ReadFile(p); !bytes.HasPrefix(head, buf.Bytes()[:4]) {
				t.Error("the original archive changed")
			}
		})
	}
	if err := Append(filepath.Join(t.TempDir(), "none"), nil); err == nil {
		t.Error("a missing file was accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("MZ not an initramfs"), 0o644)
	if err := Append(bad, nil); err == nil {
		t.Error("a non-initramfs was accepted")
	}
	os.WriteFile(bad, []byte("070701"), 0o644)
	if err := Append(bad, []File{{Dest: "../etc/x"}}); err == nil {
		t.Error("a path outside was accepted")
	}
}
