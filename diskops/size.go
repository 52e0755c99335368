package diskops

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a byte count written in YAML and on the command line as a number
// with an optional binary unit: 512, 64K, 256M, 20G, 1T (also KiB/MiB/GiB/
// TiB, KB/MB/GB/TB meaning the same binary units, as partitioning tools do).
type Size int64

const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// ParseSize parses a Size. Fractions are allowed with a unit ("1.5G").
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	up := strings.ToUpper(t)
	mult := Size(1)
	for _, u := range []struct {
		suf string
		m   Size
	}{{"TIB", TiB}, {"GIB", GiB}, {"MIB", MiB}, {"KIB", KiB}, {"TB", TiB}, {"GB", GiB}, {"MB", MiB}, {"KB", KiB}, {"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}, {"B", 1}} {
		if strings.HasSuffix(up, u.suf) {
			mult = u.m
			up = strings.TrimSpace(strings.TrimSuffix(up, u.suf))
			break
		}
	}
	if n, err := strconv.ParseInt(up, 10, 64); err == nil {
		if n < 0 || (mult > 1 && n > int64((1<<63-1)/mult)) {
			return 0, fmt.Errorf("size %q out of range", s)
		}
		return Size(n) * mult, nil
	}
	f, err := strconv.ParseFloat(up, 64)
	if err != nil || f < 0 || mult == 1 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit K, M, G or T", s)
	}
	return Size(f * float64(mult)), nil
}

// String formats s with the largest binary unit that divides it exactly.
func (s Size) String() string {
	for _, u := range []struct {
		suf string
		m   Size
	}{{"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}} {
		if s != 0 && s%u.m == 0 {
			return strconv.FormatInt(int64(s/u.m), 10) + u.suf
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Human formats s for people: "238.5 GiB".
func (s Size) Human() string {
	f := float64(s)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"} {
		if f < 1024 || u == "PiB" {
			if u == "B" {
				return fmt.Sprintf("%d B", int64(s))
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1024
	}
	return ""
}

// UnmarshalText lets YAML, JSON and flags hold sizes as strings or numbers.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText writes the exact form, so that a size round-trips.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
