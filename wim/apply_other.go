//go:build !linux

package wim

import "context"

// Apply extracts the image into dir. Only Linux is supported.
func (img *Image) Apply(ctx context.Context, dir string, opts ApplyOptions) error {
	return unsupportedErr("applying images is only implemented on Linux")
}
