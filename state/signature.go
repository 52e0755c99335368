package state

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/minint/minint/sign"
)

// SignatureName is the store's detached signature of its index, made
// with a state key (sign.SignatureFor(IndexName)). The index names the
// manifest's SHA-256 and the manifest every object's, so the signature
// covers the whole store.
var SignatureName = sign.SignatureFor(IndexName)

// ErrUnsigned: the store has no signature, or none by a trusted key.
// Anyone who can write the store's location could have made it.
var ErrUnsigned = errors.New("state store not signed by a trusted state key")

// CheckSignature checks index's detached signature against keys and
// returns the id of the key that signed it. It is the check every reader
// that restores or pulls a store makes before it parses the manifest.
func CheckSignature(index, sig []byte, keys []ed25519.PublicKey) (string, error) {
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: no state key to check it with (give the .pub of the key the capture was signed with)", ErrUnsigned)
	}
	if sig == nil {
		return "", fmt.Errorf("%w: it has no %s (captured without a state key?)", ErrUnsigned, SignatureName)
	}
	var first error
	for _, k := range keys {
		_, err := sign.Verify(index, sig, k, sign.Policy{Purpose: sign.PurposeState})
		if err == nil {
			return sign.KeyID(k), nil
		}
		if first == nil {
			first = err
		}
	}
	if len(keys) > 1 {
		return "", fmt.Errorf("%w: %v (and %d other keys)", ErrUnsigned, first, len(keys)-1)
	}
	return "", fmt.Errorf("%w: %v", ErrUnsigned, first)
}

// ReadSigned is ReadManifest for a store that must be signed by one of
// keys: the index's signature is checked before the manifest is read. It
// returns the manifest and the signing key's id.
func ReadSigned(storeDir string, keys []ed25519.PublicKey) (*Manifest, string, error) {
	return readStore(storeDir, keys, true)
}
