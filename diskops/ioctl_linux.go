package diskops

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ioctlPtr[T any](f *os.File, req uint, p *T) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(unsafe.Pointer(p)))
	if e != 0 {
		return e
	}
	return nil
}
