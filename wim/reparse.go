package wim

import (
	"encoding/binary"
	"strings"
)

const (
	maxReparseSize    = 16384
	symlinkRelative   = 1
	rpFlagNotFixed    = 0x0001
	reparseHeaderSize = 8
)

// parseLinkReparse turns the reparse data of a symlink or junction (the blob
// stored in the WIM: the reparse buffer without its 8-byte header) into a
// Unix link target, as wimlib's wim_inode_readlink does without fixups.
func parseLinkReparse(tag uint32, data []byte) (string, error) {
	le := binary.LittleEndian
	if len(data) < 8 {
		return "", formatErr("reparse data of %d bytes is too short", len(data))
	}
	subOff := int(le.Uint16(data[0:]))
	subLen := int(le.Uint16(data[2:]))
	var flags uint32
	base := 8
	if tag == ReparseTagSymlink {
		if len(data) < 12 {
			return "", formatErr("symlink reparse data of %d bytes is too short", len(data))
		}
		flags = le.Uint32(data[8:])
		base = 12
	}
	if subOff&1 != 0 || subLen&1 != 0 || base+subOff+subLen > len(data) {
		return "", formatErr("symlink reparse data has a bad substitute name (%d+%d of %d)", subOff, subLen, len(data))
	}
	target := decodeUTF16(data[base+subOff : base+subOff+subLen])
	if !(tag == ReparseTagSymlink && flags&symlinkRelative != 0) {
		for _, prefix := range []string{`\??\`, `\DosDevices\`, `\Device\`} {
			if strings.HasPrefix(target, prefix) {
				t := strings.TrimLeft(target[len(prefix):], `\`)
				if i := strings.IndexByte(t, '\\'); i >= 0 {
					t = t[i:]
				} else {
					t = ""
				}
				target = t
				break
			}
		}
	}
	// wimlib swaps the separators both ways so that Unix targets holding a
	// backslash survive.
	target = strings.Map(func(r rune) rune {
		switch r {
		case '\\':
			return '/'
		case '/':
			return '\\'
		}
		return r
	}, target)
	if target == "" {
		target = "/"
	}
	return target, nil
}

// makeSymlinkReparse encodes a Unix symlink target the way wimlib does
// (wim_inode_set_symlink): absolute targets get a dummy "\??\C:" prefix
// and SYMBOLIC_LINK_RELATIVE cleared, relative ones keep the flag.
func makeSymlinkReparse(target string) []byte {
	swapped := strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '\\'
		case '\\':
			return '/'
		}
		return r
	}, target)
	t := encodeUTF16(swapped)
	var sub, print []byte
	var flags uint32
	if strings.HasPrefix(swapped, `\`) || swapped == "" {
		sub = append(encodeUTF16(`\??\C:`), t...)
		print = sub[8:] // without "\??\"
	} else {
		flags = symlinkRelative
		sub, print = t, t
	}
	le := binary.LittleEndian
	out := make([]byte, 12, 12+len(sub)+len(print)+4)
	le.PutUint16(out[0:], 0)
	le.PutUint16(out[2:], uint16(len(sub)))
	le.PutUint16(out[4:], uint16(len(sub)+2))
	le.PutUint16(out[6:], uint16(len(print)))
	le.PutUint32(out[8:], flags)
	out = append(out, sub...)
	out = append(out, 0, 0)
	out = append(out, print...)
	out = append(out, 0, 0)
	return out
}
