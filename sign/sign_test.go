package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pubF, privF, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubF)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privF)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

var day0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func TestSignVerify(t *testing.T) {
	pub, priv := testKey(t)
	data := []byte(`{"version":1,"size": 1000}`)
	ctx := Context{Purpose: PurposePackage, Name: "debian-12", Version: "12.4", Created: day0, Expires: day0.AddDate(0, 6, 0)}
	sig, err := Sign(data, priv, ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(data, sig, pub, Policy{Purpose: PurposePackage, MinVersion: "12.4", Now: day0.AddDate(0, 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Context != ctx || got.KeyID != KeyID(pub) || got.Legacy {
		t.Errorf("Verify = %+v, want context %+v by key %s", got, ctx, KeyID(pub))
	}

	otherPub, otherPriv := testKey(t)
	otherSig, _ := Sign(data, otherPriv, ctx)
	bad := bytes.Replace(data, []byte(`1000`), []byte(`1001`), 1)
	// The trusted comment changed by someone without the key: version
	// raised past a floor.
	forged := bytes.Replace(sig, []byte("version=12.4"), []byte("version=13.0"), 1)
	seqSig, _ := Sign(data, priv, Context{Purpose: PurposeSequence, Created: day0})
	noVersion, _ := Sign(data, priv, Context{Purpose: PurposePackage, Created: day0})
	policy := Policy{Purpose: PurposePackage, Now: day0.AddDate(0, 1, 0)}
	for name, c := range map[string]struct {
		data, sig []byte
		pub       ed25519.PublicKey
		p         Policy
		want      error
		msg       string
	}{
		"changed data":   {bad, sig, pub, policy, ErrSignature, "changed after signing"},
		"other key":      {data, sig, otherPub, policy, ErrSignature, "signed by key " + KeyID(pub) + ", but the trusted key is " + KeyID(otherPub)},
		"other signer":   {data, otherSig, pub, policy, ErrSignature, KeyID(otherPub)},
		"garbage sig":    {data, []byte("AAAA\n"), pub, policy, ErrSignature, "neither"},
		"no key":         {data, sig, nil, policy, ErrSignature, "no valid public key"},
		"forged comment": {data, forged, pub, policy, ErrSignature, "trusted comment was changed"},
		"as a sequence":  {data, sig, pub, Policy{Purpose: PurposeSequence, Now: policy.Now}, ErrPurpose, "signed as a package, used as a sequence"},
		"as a package":   {data, seqSig, pub, policy, ErrPurpose, "signed as a sequence, used as a package"},
		"expired":        {data, sig, pub, Policy{Purpose: PurposePackage, Now: day0.AddDate(0, 6, 0)}, ErrExpired, "expired on 2027-05-28"},
		"older version":  {data, sig, pub, Policy{Purpose: PurposePackage, MinVersion: "12.10", Now: policy.Now}, ErrVersion, "version 12.4 is older than the minimum 12.10"},
		"no version":     {data, noVersion, pub, Policy{Purpose: PurposePackage, MinVersion: "1", Now: policy.Now}, ErrVersion, "carries no version"},
		"no purpose set": {data, sig, pub, Policy{}, ErrSignature, "names no purpose"},
		"bad floor":      {data, sig, pub, Policy{Purpose: PurposePackage, MinVersion: "4.x", Now: policy.Now}, ErrSignature, `minimum version "4.x"`},
	} {
		_, err := Verify(c.data, c.sig, c.pub, c.p)
		if !errors.Is(err, c.want) || !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %v (and ErrSignature) saying %q", name, err, c.want, c.msg)
		}
	}
}

func TestLegacyFormat(t *testing.T) {
	// Files in minint's format before minisign, as it wrote them.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pubF := []byte("minint-ed25519-public " + base64.StdEncoding.EncodeToString(pub) + "\n")
	privF := []byte("minint-ed25519-private " + base64.StdEncoding.EncodeToString(priv.Seed()) + "\n")
	data := []byte("sequence: old\n")
	sig := []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, data)) + "\n")

	p, err := ParsePublicKey(pubF)
	if err != nil || !p.Equal(pub) {
		t.Fatalf("old public key: %v", err)
	}
	if k, err := ParsePrivateKey(privF); err != nil || !k.Equal(priv) {
		t.Fatalf("old private key: %v", err)
	}
	got, err := Verify(data, sig, p, Policy{Purpose: PurposeSequence})
	if err != nil || !got.Legacy {
		t.Fatalf("old signature: %+v, %v; want accepted as Legacy", got, err)
	}
	if _, err := Verify(append(data, 'x'), sig, p, Policy{Purpose: PurposeSequence}); !errors.Is(err, ErrSignature) {
		t.Errorf("old signature over changed data: %v", err)
	}
	// A floor needs a version, which the old format cannot carry.
	if _, err := Verify(data, sig, p, Policy{Purpose: PurposeSequence, MinVersion: "1"}); !errors.Is(err, ErrVersion) {
		t.Errorf("old signature with a floor: %v, want ErrVersion", err)
	}
}

func TestKeyFiles(t *testing.T) {
	pubF, privF, _ := GenerateKey()
	pub, err := ParsePublicKey(pubF)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privF)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
		t.Error("private key file does not match public key file")
	}
	if !strings.Contains(string(pubF), "minisign public key "+KeyID(pub)+"\nRW") {
		t.Errorf("public key file does not name its key ID %s as minisign does:\n%s", KeyID(pub), pubF)
	}
	if _, err := ParsePublicKey(privF); !errors.Is(err, ErrKey) {
		t.Errorf("private key accepted as public: %v", err)
	}
	if _, err := ParsePrivateKey(pubF); !errors.Is(err, ErrKey) {
		t.Errorf("public key accepted as private: %v", err)
	}
	// Damage: a flipped byte in the secret half, an encrypted key.
	raw, _ := base64.StdEncoding.DecodeString(strings.Split(string(privF), "\n")[1])
	bad := bytes.Clone(raw)
	bad[70] ^= 1
	if _, err := ParsePrivateKey([]byte(base64.StdEncoding.EncodeToString(bad))); !errors.Is(err, ErrKey) {
		t.Errorf("damaged secret key accepted: %v", err)
	}
	enc := bytes.Clone(raw)
	copy(enc[2:4], "Sc")
	if _, err := ParsePrivateKey([]byte(base64.StdEncoding.EncodeToString(enc))); !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted secret key: %v, want ErrKey saying encrypted", err)
	}
}

func TestContext(t *testing.T) {
	c := Context{Purpose: "state", Name: "pc-042", Version: "3", Created: day0}
	got, err := ParseContext(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, s := range []string{
		"timestamp:1555779966\tfile:test",                         // minisign's default
		"minint purpose=package",                                  // no created
		"minint purpose=package created=2026-11-28T09:00:00Z x=1", // unknown field
		"minint purpose=package purpose=sequence created=2026-11-28T09:00:00Z",
		"minint purpose=package version=1.x created=2026-11-28T09:00:00Z",
		"minint purpose=package created=2026-11-28T09:00:00Z expires=2026-11-28T09:00:00Z",
	} {
		if _, err := ParseContext(s); err == nil {
			t.Errorf("ParseContext(%q) accepted", s)
		}
	}
	_, priv := testKey(t)
	if _, err := Sign(nil, priv, Context{Purpose: PurposePackage, Name: "two words"}); err == nil {
		t.Error("a name with a space was signed")
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"12.10", "12.9", 1}, {"12", "12.0", 0}, {"1.2.3", "1.2.4", -1}, {"20261128", "20261127.9", 1}} {
		if got, err := CompareVersions(c.a, c.b); err != nil || got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d, %v; want %d", c.a, c.b, got, err, c.want)
		}
	}
	if _, err := CompareVersions("1.-2", "1"); err == nil {
		t.Error("1.-2 accepted as a version")
	}
}

// TestMinisignInterop checks the format against the real minisign tool
// (Debian's minisign, installed by scripts/setup-host.sh): it verifies
// what minint signs, and minint verifies what it signs with a minint key.
func TestMinisignInterop(t *testing.T) {
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Skip("minisign not installed (scripts/setup-host.sh installs it)")
	}
	dir := t.TempDir()
	pubF, privF, _ := GenerateKey()
	pub, _ := ParsePublicKey(pubF)
	priv, _ := ParsePrivateKey(privF)
	pubPath, keyPath, data := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key"), filepath.Join(dir, "seq.yaml")
	os.WriteFile(pubPath, pubF, 0o644)
	os.WriteFile(keyPath, privF, 0o600)
	os.WriteFile(data, []byte("steps: []\n"), 0o644)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("minisign", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("minisign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	ctx := Context{Purpose: PurposeSequence, Name: "seq.yaml", Version: "7", Created: day0}
	sig, err := Sign([]byte("steps: []\n"), priv, ctx)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(data+".sig", sig, 0o644)
	// -H: minisign insists on the prehashed algorithm; -Q prints the
	// trusted comment it verified.
	if out := run("-V", "-H", "-Q", "-p", pubPath, "-m", data, "-x", data+".sig"); strings.TrimSpace(out) != ctx.String() {
		t.Errorf("minisign verified trusted comment %q, want %q", out, ctx.String())
	}
	// Changed data: minisign must refuse too (the check above can fail).
	os.WriteFile(data, []byte("steps: [x]\n"), 0o644)
	if out, err := exec.Command("minisign", "-V", "-p", pubPath, "-m", data, "-x", data+".sig").CombinedOutput(); err == nil {
		t.Errorf("minisign accepted a changed file:\n%s", out)
	}

	// minisign signs with minint's key; minint verifies.
	run("-S", "-s", keyPath, "-m", data, "-x", data+".sig", "-t", ctx.String())
	ms, _ := os.ReadFile(data + ".sig")
	got, err := Verify([]byte("steps: [x]\n"), ms, pub, Policy{Purpose: PurposeSequence, MinVersion: "7"})
	if err != nil || got.Context != ctx {
		t.Fatalf("minint on minisign's signature: %+v, %v", got, err)
	}
	if _, err := Verify([]byte("steps: []\n"), ms, pub, Policy{Purpose: PurposeSequence}); !errors.Is(err, ErrSignature) {
		t.Errorf("minisign's signature over other data: %v", err)
	}
	// Its default trusted comment says nothing about the use: refused.
	run("-S", "-s", keyPath, "-m", data, "-x", data+".sig")
	ms, _ = os.ReadFile(data + ".sig")
	if _, err := Verify([]byte("steps: [x]\n"), ms, pub, Policy{Purpose: PurposeSequence}); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "does not say what was signed") {
		t.Errorf("minisign's default trusted comment: %v", err)
	}
	// A key made by minisign -G -W verifies (its ID is random, so minint
	// cannot sign with it).
	run("-G", "-W", "-p", filepath.Join(dir, "m.pub"), "-s", filepath.Join(dir, "m.key"))
	run("-S", "-s", filepath.Join(dir, "m.key"), "-m", data, "-x", data+".sig", "-t", ctx.String())
	mpubF, _ := os.ReadFile(filepath.Join(dir, "m.pub"))
	mpub, err := ParsePublicKey(mpubF)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ = os.ReadFile(data + ".sig")
	if _, err := Verify([]byte("steps: [x]\n"), ms, mpub, Policy{Purpose: PurposeSequence}); err != nil {
		t.Errorf("signature by a minisign -G key: %v", err)
	}
	mkeyF, _ := os.ReadFile(filepath.Join(dir, "m.key"))
	if _, err := ParsePrivateKey(mkeyF); !errors.Is(err, ErrKey) {
		t.Errorf("minisign -G -W secret key: %v, want ErrKey (random key ID)", err)
	}
}

func TestSignatureFor(t *testing.T) {
	for in, want := range map[string][2]string{
		"manifest.json":            {"manifest.json.sig", "manifest.sig"},
		"http://h/p/manifest.json": {"http://h/p/manifest.json.sig", "http://h/p/manifest.sig"},
		"/minint/seq.yaml":         {"/minint/seq.yaml.sig", "/minint/seq.sig"},
		"noext":                    {"noext.sig", "noext.sig"},
		"dir.d/file":               {"dir.d/file.sig", "dir.d/file.sig"},
	} {
		if got := SignatureFor(in); got != want[0] {
			t.Errorf("SignatureFor(%q) = %q, want %q", in, got, want[0])
		}
		if got := ShortSignatureFor(in); got != want[1] {
			t.Errorf("ShortSignatureFor(%q) = %q, want %q", in, got, want[1])
		}
	}
}
