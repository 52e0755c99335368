//go:build !linux

package wim

// Apply extracts the image into dir. Only Linux is supported.
func (img *Image) Apply(dir string, opts ApplyOptions) error {
	return unsupportedErr("applying images is only implemented on Linux")
}
