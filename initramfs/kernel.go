package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minint/minint/bootloader"
)

// ErrNoKernel is returned (wrapped) when no kernel can be found or read.
var ErrNoKernel = errors.New("no kernel")

// findKernel returns the kernel to use: path itself, or the newest
// root/boot/vmlinuz-* when path is "".
func findKernel(root, path string) (string, error) {
	if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("%w: kernel %s: %v (pass an existing vmlinuz with --kernel)", ErrNoKernel, path, errors.Unwrap(err))
		}
		if !st.Mode().IsRegular() {
			return "", fmt.Errorf("%w: kernel %s is not a regular file", ErrNoKernel, path)
		}
		return path, nil
	}
	k, err := bootloader.FindKernel(root)
	if err != nil {
		return "", fmt.Errorf("%w: %v: install the distribution kernel (apt-get install linux-image-amd64) or pass --kernel", ErrNoKernel, err)
	}
	return k.Path, nil
}

// kernelVersion reads the version string that an x86 bzImage carries in
// its setup header (boot protocol ≥ 2.00: "HdrS" at 0x202, and at 0x20e
// the offset of the version string minus 0x200), e.g.
// "6.1.0-56-amd64 (debian-kernel@…) #1 SMP …"; it returns the first word.
func kernelVersion(image []byte) (string, error) {
	if len(image) < 0x210 || string(image[0x202:0x206]) != "HdrS" {
		return "", errors.New("not an x86 bzImage (no HdrS setup header)")
	}
	off := int(binary.LittleEndian.Uint16(image[0x20e:])) + 0x200
	if off >= len(image) {
		return "", errors.New("bzImage version offset out of range")
	}
	s := image[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	v, _, _ := strings.Cut(string(s), " ")
	if v == "" {
		return "", errors.New("bzImage has an empty version string")
	}
	return v, nil
}

// kernelVersionOf returns the version of the kernel at path, from its
// header or, failing that, from a vmlinuz-VERSION file name.
func kernelVersionOf(path string, image []byte) (string, error) {
	v, err := kernelVersion(image)
	if err == nil {
		return v, nil
	}
	if b := filepath.Base(path); strings.HasPrefix(b, "vmlinuz-") {
		return strings.TrimPrefix(b, "vmlinuz-"), nil
	}
	return "", fmt.Errorf("%w: kernel %s: cannot tell its version (%v); set ModulesDir / --modules-dir", ErrNoKernel, path, err)
}
