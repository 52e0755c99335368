package wim

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"unicode/utf16"
)

// TestDecodeXMLData: the streaming decoder gives what utf16.Decode gives,
// BOM and trailing NULs dropped, for text with surrogate pairs, lone
// surrogates and odd lengths.
func TestDecodeXMLData(t *testing.T) {
	ref := func(b []byte) string {
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		if len(u) > 0 && u[0] == 0xfeff {
			u = u[1:]
		}
		for len(u) > 0 && u[len(u)-1] == 0 {
			u = u[:len(u)-1]
		}
		return string(utf16.Decode(u))
	}
	units := []uint16{'<', 'a', '>', 0, 0xfeff, 0xd83d, 0xde00, 0xdc00, 0xd800, 0xe9, 0x4e2d}
	r := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		b := make([]byte, 2*r.IntN(12)+r.IntN(2))
		for i := 0; i+1 < len(b); i += 2 {
			binary.LittleEndian.PutUint16(b[i:], units[r.IntN(len(units))])
		}
		got, err := decodeXMLData(b)
		if err != nil || got != ref(b) {
			t.Fatalf("% x: %q (%v), want %q", b, got, err, ref(b))
		}
	}
}
