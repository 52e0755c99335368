package diskops

import (
	"bytes"
	"testing"
)

// TestProbeSwap: a swap area is "swap" with its label and UUID, and one
// whose signature hibernation replaced is Hibernated, whichever tool
// hibernated the system.
func TestProbeSwap(t *testing.T) {
	for _, tc := range []struct{ sig, want string }{
		{"SWAPSPACE2", "swap"},
		{"S1SUSPEND\x00", Hibernated}, // the kernel's today
		{"S2SUSPEND\x00", Hibernated},
		{"LINHIB0001", Hibernated},
		{"ULSUSPEND\x00", Hibernated},                            // uswsusp
		{"\xed\xc3\x02\xe9\x98\x56\xe5\x0c\x00\x00", Hibernated}, // TuxOnIce
		{"S1SUSPENX\x00", ""},
		{"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", ""},
	} {
		page := make([]byte, 8192)
		copy(page[1024+28:], "SWAPLABEL")
		copy(page[4086:], tc.sig)
		fs := ProbeFilesystem(bytes.NewReader(page), 0, int64(len(page)))
		got := ""
		if fs != nil {
			got = fs.Type
		}
		if got != tc.want {
			t.Errorf("signature %q: type %q, want %q", tc.sig, got, tc.want)
		}
		if got == "swap" && fs.Label != "SWAPLABEL" {
			t.Errorf("swap label %q, want SWAPLABEL", fs.Label)
		}
	}
}
