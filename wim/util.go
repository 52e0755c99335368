package wim

import (
	"bytes"
	"crypto/sha1"
)

func sha1Sum(b []byte) [20]byte { return sha1.Sum(b) }

type bytesBuffer struct{ bytes.Buffer }
