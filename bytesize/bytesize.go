// Package bytesize reads and writes byte counts the way people write them
// in minint's task sequences, partition layouts, answer files and command
// lines, with one rule everywhere:
//
//   - A size is a number with an optional unit: 512, 64M, 1.5GiB, 500 GB.
//   - B or no unit: bytes.
//   - K, M, G, T, P, E and KiB, MiB, GiB, TiB, PiB, EiB: powers of 1024,
//     as truncate(1), sgdisk and QEMU read them (8G = 8 GiB = 8589934592).
//   - KB, MB, GB, TB, PB, EB: powers of 1000, as disk vendors print them
//     (500GB = 500000000000, so {min-size: 500GB} matches a "500 GB" disk).
//   - Units are case-insensitive (8g = 8G, 4gib = 4GiB, 500gb = 500GB);
//     spaces around the number and unit are ignored.
//   - A fraction needs a unit (1.5G) and is rounded down to whole bytes.
//   - No sign, exponent or percentage: a key that takes "50%" (a partition
//     size) says so and reads the percentage itself.
//
// Size.String writes the exact value back in a form Parse reads (the
// largest binary unit that divides it, else the largest decimal one, else
// bytes), so sizes round-trip through journals, plans and YAML; Human is
// the rounded form for people ("238.5 GiB"). Size implements YAML
// (goccy/go-yaml, errors at the value's line and column), JSON and text
// marshaling, and pflag.Value for command-line flags.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Size is a number of bytes. Valid sizes are not negative.
type Size int64

// Binary and decimal units.
const (
	B   Size = 1
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
	PiB Size = 1 << 50
	EiB Size = 1 << 60

	KB Size = 1e3
	MB Size = 1e6
	GB Size = 1e9
	TB Size = 1e12
	PB Size = 1e15
	EB Size = 1e18
)

// Max is the largest size (8 EiB less one byte).
const Max Size = math.MaxInt64

// ErrInvalid is wrapped by every error of Parse.
var ErrInvalid = errors.New("invalid size")

// units maps a lower-case unit to its multiplier.
var units = map[string]Size{
	"": B, "b": B,
	"k": KiB, "kib": KiB, "kb": KB,
	"m": MiB, "mib": MiB, "mb": MB,
	"g": GiB, "gib": GiB, "gb": GB,
	"t": TiB, "tib": TiB, "tb": TB,
	"p": PiB, "pib": PiB, "pb": PB,
	"e": EiB, "eib": EiB, "eb": EB,
}

// The units String writes, largest first.
type unit struct {
	name string
	n    Size
}

var (
	binaryUnits  = []unit{{"EiB", EiB}, {"PiB", PiB}, {"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}}
	decimalUnits = []unit{{"EB", EB}, {"PB", PB}, {"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}}
)

// unitHelp is the rule in one line, for errors.
const unitHelp = "want a number with an optional unit: K/KiB, M/MiB, G/GiB, T/TiB (×1024) or KB, MB, GB, TB (×1000), e.g. 512MiB, 8G, 500GB"

// maxInput bounds the text Parse looks at: no size needs more, and a
// hostile file should not make it multiply huge numbers.
const maxInput = 64

func invalid(s, format string, a ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalid, s, fmt.Sprintf(format, a...))
}

// Parse reads a size written by the package rule.
func Parse(s string) (Size, error) {
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return 0, fmt.Errorf("%w: empty (%s)", ErrInvalid, unitHelp)
	case len(t) > maxInput:
		return 0, fmt.Errorf("%w %.20q…: longer than %d characters", ErrInvalid, t, maxInput)
	case t[0] == '-':
		return 0, invalid(s, "sizes are not negative")
	case strings.HasSuffix(t, "%"):
		return 0, invalid(s, "a percentage is not a size here (%s)", unitHelp)
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, invalid(s, "no number (%s)", unitHelp)
	}
	mult, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, invalid(s, "unknown unit %q (%s)", unit, unitHelp)
	}
	whole, frac, dot := strings.Cut(num, ".")
	if strings.Contains(frac, ".") || (whole == "" && frac == "") {
		return 0, invalid(s, "%q is not a number", num)
	}
	if dot && mult == B {
		return 0, invalid(s, "a fraction needs a unit (e.g. 1.5G): there are no fractions of a byte")
	}
	// value = (whole.frac) × mult, exactly, rounded down.
	v, _ := new(big.Int).SetString(whole+frac, 10)
	if whole+frac == "" || v == nil {
		return 0, invalid(s, "%q is not a number", num)
	}
	v.Mul(v, big.NewInt(int64(mult)))
	v.Quo(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if !v.IsInt64() {
		return 0, invalid(s, "too large (the largest size is 8 EiB less one byte)")
	}
	return Size(v.Int64()), nil
}

// MustParse is Parse for constants in code and tests; it panics on error.
func MustParse(s string) Size {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String writes s exactly, in a form Parse reads back: "4GiB", "8GB",
// "1500001": the exact form with the fewest digits, binary units winning
// a tie (disks, partitions and memory are sized in them; a vendor's
// 500GB stays 500GB).
func (s Size) String() string {
	out := strconv.FormatInt(int64(s), 10)
	if s <= 0 {
		return out
	}
	digits := len(out)
	for _, us := range [][]unit{binaryUnits, decimalUnits} {
		for _, u := range us {
			if s%u.n == 0 {
				if n := strconv.FormatInt(int64(s/u.n), 10); len(n) < digits {
					out, digits = n+u.name, len(n)
				}
				break // the largest exact unit of a kind has the fewest digits
			}
		}
	}
	return out
}

// Human writes s rounded for people, in binary units: "238.5 GiB",
// "512 B". It does not round-trip; use String for that.
func (s Size) Human() string {
	if s < KiB {
		return strconv.FormatInt(int64(s), 10) + " B"
	}
	f := float64(s)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"} {
		f /= 1024
		if f < 1024 || u == "EiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// Explain writes s as read and as bytes, for messages that must show how
// a size was understood: "1MiB (1048576 bytes)", "8GB (8000000000 bytes)",
// "1500001 bytes".
func (s Size) Explain() string {
	str := s.String()
	if n := strconv.FormatInt(int64(s), 10); str != n {
		return str + " (" + n + " bytes)"
	}
	if s == 1 {
		return "1 byte"
	}
	return str + " bytes"
}

// MarshalText writes String: journals, plans and YAML keep exact,
// readable sizes.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes, and anything Parse reads.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalJSON reads a string ("4GiB") or a number of bytes (4294967296);
// null leaves s as it is.
func (s *Size) UnmarshalJSON(b []byte) error {
	t := strings.TrimSpace(string(b))
	if t == "null" {
		return nil
	}
	if strings.HasPrefix(t, `"`) {
		u, err := strconv.Unquote(t)
		if err != nil {
			return fmt.Errorf("%w: %s is not a JSON string", ErrInvalid, t)
		}
		t = u
	}
	return s.UnmarshalText([]byte(t))
}

// Set parses a command-line flag's value (pflag.Value).
func (s *Size) Set(v string) error { return s.UnmarshalText([]byte(v)) }

// Type names the flag's value in help (pflag.Value).
func (s *Size) Type() string { return "size" }
