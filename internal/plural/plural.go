// Package plural writes counts of things in English: "1 file", "2 files",
// "3 entries", so that no message says "1 files".
package plural

import (
	"strconv"
	"strings"
)

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// Count returns n followed by noun, in the plural unless n is 1:
// Count(1, "file") is "1 file", Count(3, "entry") is "3 entries".
func Count[N integer](n N, noun string) string {
	return strconv.FormatInt(int64(n), 10) + " " + Noun(n, noun)
}

// Noun returns noun (a singular English noun), in the plural unless n is 1.
func Noun[N integer](n N, noun string) string {
	if n == 1 || noun == "" {
		return noun
	}
	last := noun[len(noun)-1]
	switch {
	case last == 'y' && len(noun) > 1 && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	case last == 's' || last == 'x' || last == 'z' || strings.HasSuffix(noun, "ch") || strings.HasSuffix(noun, "sh"):
		return noun + "es"
	}
	return noun + "s"
}
