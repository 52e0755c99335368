package answer

import (
	"encoding/binary"
	"fmt"
)

// FSUUID returns the UUID of an ext2/3/4 file system, or the volume serial
// of a FAT one, from the first 2048 bytes of a device; "" if neither.
func FSUUID(b []byte) string {
	if len(b) >= 2048 && binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xEF53 {
		u := b[1024+0x68 : 1024+0x78]
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA {
		off := -1
		switch {
		case string(b[0x52:0x57]) == "FAT32":
			off = 0x43
		case string(b[0x36:0x39]) == "FAT":
			off = 0x27
		}
		if off > 0 {
			s := binary.LittleEndian.Uint32(b[off:])
			return fmt.Sprintf("%04X-%04X", s>>16, s&0xffff)
		}
	}
	return ""
}
