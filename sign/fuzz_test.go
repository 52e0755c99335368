package sign

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

// FuzzContext: a trusted comment either is refused or reads back as what
// Context.String writes for it, so two readers cannot understand one
// signed comment differently.
func FuzzContext(f *testing.F) {
	f.Add("minint purpose=package name=debian-12 version=12.4 created=2026-11-28T09:00:00Z expires=2027-05-28T09:00:00Z")
	f.Add("minint purpose=sequence created=2026-11-28T09:00:00+02:00")
	f.Add("timestamp:1555779966\tfile:test")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContext(s)
		if err != nil {
			return
		}
		again, err := ParseContext(c.String())
		if err != nil || !again.Created.Equal(c.Created) || !again.Expires.Equal(c.Expires) || again.Purpose != c.Purpose || again.Name != c.Name || again.Version != c.Version {
			t.Fatalf("%q read as %+v, which writes %q, read back as %+v, %v", s, c, c.String(), again, err)
		}
	})
}

// FuzzVerify: any signature file, good or mangled, gives a verdict
// without panicking; a refusal wraps ErrSignature, and an acceptance is
// for the purpose asked and within the policy.
func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	data := []byte("steps: []\n")
	good, _ := Sign(data, priv, Context{Purpose: PurposeSequence, Name: "seq.yaml", Version: "3", Created: day0, Expires: day0.AddDate(1, 0, 0)})
	f.Add(good)
	f.Add([]byte("AAAA\n"))
	f.Add(good[:len(good)/2])
	now := day0.Add(time.Hour)
	f.Fuzz(func(t *testing.T, sig []byte) {
		s, err := Verify(data, sig, pub, Policy{Purpose: PurposeSequence, MinVersion: "3", Now: now})
		if err != nil {
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("refusal %v does not wrap ErrSignature", err)
			}
			return
		}
		if s.Legacy || s.Purpose != PurposeSequence || (!s.Expires.IsZero() && !now.Before(s.Expires)) {
			t.Fatalf("accepted %+v", s)
		}
		if c, _ := CompareVersions(s.Version, "3"); c < 0 {
			t.Fatalf("accepted version %s below 3", s.Version)
		}
	})
}
