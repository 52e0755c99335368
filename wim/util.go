package wim

import "crypto/sha1"

func sha1Sum(b []byte) [20]byte { return sha1.Sum(b) }
