package directio

import (
	"testing"
	"unsafe"
)

func TestBuf(t *testing.T) {
	for _, n := range []int{1, 4095, 4096, 1 << 20, 3<<20 + 5} {
		b := Buf(n)
		if len(b) != n || cap(b) != n || uintptr(unsafe.Pointer(&b[0]))%Align != 0 || !Aligned(b) {
			t.Errorf("Buf(%d): len %d cap %d at %#x", n, len(b), cap(b), uintptr(unsafe.Pointer(&b[0])))
		}
		if n > 1 && Aligned(b[1:]) {
			t.Errorf("Buf(%d)[1:] reported aligned", n)
		}
	}
	if Aligned(nil) {
		t.Error("an empty slice reported aligned")
	}
}
