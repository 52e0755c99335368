// Package directio holds what reading and writing with O_DIRECT needs
// beyond the open flag: the alignment and buffers that meet it. The PE's
// download (pe/fetch) and the erase check (diskops) both bypass the page
// cache, the first to spare the guest's CPU, the second so that the cache
// cannot hide what the medium returns.
package directio

import "unsafe"

// Align is the alignment O_DIRECT needs of offset, length and memory.
// 4 KiB is the largest logical block size disks have, so it suits all.
const Align = 4096

// Buf returns n bytes starting at an Align boundary.
func Buf(n int) []byte {
	b := make([]byte, n+Align)
	skip := (Align - int(uintptr(unsafe.Pointer(&b[0]))%Align)) % Align
	return b[skip : skip+n : skip+n]
}

// Aligned reports whether p's memory starts at an Align boundary.
func Aligned(p []byte) bool {
	return len(p) > 0 && uintptr(unsafe.Pointer(&p[0]))%Align == 0
}
