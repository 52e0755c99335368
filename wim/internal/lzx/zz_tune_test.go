package lzx

import (
	"fmt"
	"os"
	"testing"
)

func init() {
	if v := os.Getenv("TUNE"); v != "" {
		fmt.Sscanf(v, "%d,%d,%d", &searchDepth, &niceLen, &numPasses)
	}
}

var _ = testing.Short
