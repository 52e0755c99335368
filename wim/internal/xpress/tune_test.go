package xpress

import (
	"fmt"
	"os"
)

// MININT_CODEC_TUNE="depth,nice,skipstep,maxlazy[,skipdense]" overrides the parser
// parameters, for exploring the speed/size trade-off with BenchmarkVsWimlib.
func init() {
	if v := os.Getenv("MININT_CODEC_TUNE"); v != "" {
		fmt.Sscanf(v, "%d,%d,%d,%d,%d", &searchDepth, &niceLen, &skipStep, &maxLazy, &skipDense)
	}
}
