package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Entry is one file, directory or link of an initramfs as ReadArchive
// returns it.
type Entry struct {
	Name string
	Mode uint32 // st_mode: type and permission bits
	Data []byte // file contents, or a symbolic link's target
}

// maxArchive bounds what ReadArchive unpacks.
const maxArchive = 1 << 30

// ReadArchive reads an initramfs as the kernel does: compressed (gzip, xz,
// zstd) or not, one or several cpio archives one after the other (Build
// writes one per part). A name that appears twice keeps its last entry.
func ReadArchive(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br) // reads concatenated members
		if err != nil {
			return nil, err
		}
		r = zr
	case bytes.HasPrefix(magic, []byte("\xfd7zXZ\x00")):
		zr, err := xz.NewReader(br) // reads concatenated streams
		if err != nil {
			return nil, err
		}
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxArchive+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(raw) > maxArchive {
		return nil, fmt.Errorf("%s: more than %d bytes unpacked", path, maxArchive)
	}
	return parseNewc(raw)
}

// parseNewc parses concatenated newc archives (zero padding between them).
func parseNewc(b []byte) ([]Entry, error) {
	var out []Entry
	index := map[string]int{}
	for off := 0; off < len(b); {
		if b[off] == 0 {
			off++
			continue
		}
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			return nil, fmt.Errorf("cpio: no newc header at offset %d", off)
		}
		field := func(i int) (int, error) {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			return int(v), err
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameLen, err3 := field(11)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("cpio: header at offset %d: %w", off, err)
		}
		nameEnd := off + 110 + nameLen
		dataStart := (nameEnd + 3) &^ 3
		if nameLen == 0 || nameEnd > len(b) || dataStart+size > len(b) {
			return nil, fmt.Errorf("cpio: record at offset %d runs past the end", off)
		}
		name := string(b[off+110 : nameEnd-1])
		off = (dataStart + size + 3) &^ 3
		if name == "TRAILER!!!" {
			continue
		}
		e := Entry{Name: name, Mode: uint32(mode), Data: b[dataStart : dataStart+size]}
		if i, ok := index[name]; ok {
			out[i] = e
			continue
		}
		index[name] = len(out)
		out = append(out, e)
	}
	return out, nil
}
