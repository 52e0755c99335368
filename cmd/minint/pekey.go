package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/minint/minint/initramfs"
	"github.com/minint/minint/pe"
	"github.com/minint/minint/sign"
)

// peKeyFile checks the --key public key and returns it as an initramfs file
// at pe.DefaultPublicKey, where the PE's engine reads it. A private key or
// anything else is refused: the PE would otherwise boot and then reject
// every package.
func peKeyFile(path string) (initramfs.File, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return initramfs.File{}, "", fmt.Errorf("--key: %w", err)
	}
	pub, err := sign.ParsePublicKey(b)
	if err != nil {
		return initramfs.File{}, "", fmt.Errorf("--key %s: %w (give the .pub file from minint keygen, not the .key)", path, err)
	}
	return initramfs.File{Data: b, Dest: strings.TrimPrefix(pe.DefaultPublicKey, "/"), Mode: 0o644}, sign.KeyID(pub), nil
}
