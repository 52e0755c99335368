package authenticode

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNotSigned: the image carries no Authenticode signature at all.
var ErrNotSigned = errors.New("image is not signed")

// ErrBadSignature: a signature is there but does not verify (the image was
// changed after signing, or the certificate is not the signer's).
var ErrBadSignature = errors.New("signature does not verify")

// Signature is one PKCS#7 signature of an image.
type Signature struct {
	// Certificates are the ones the signature carries (the signer's and
	// usually its chain); Signer is the one whose key made it, when found.
	Certificates []*x509.Certificate
	Signer       *x509.Certificate
	raw          signed
}

type signed struct {
	imageDigest   []byte // from SpcIndirectDataContent
	contentBody   []byte // SpcIndirectDataContent without tag and length
	attrs         []byte // authenticated attributes re-tagged as SET OF
	messageDigest []byte
	sig           []byte
	issuer        []byte
	serial        []byte
}

// Signatures reads the Authenticode signatures of img, without checking
// them. An unsigned image gives ErrNotSigned. The parser takes the bytes
// as hostile: every length is checked, nothing is trusted.
func Signatures(img []byte) ([]Signature, error) {
	h, err := parse(img)
	if err != nil {
		return nil, err
	}
	if h.certSize == 0 {
		return nil, ErrNotSigned
	}
	var out []Signature
	table := img[h.certOff : h.certOff+h.certSize]
	for len(table) >= 8 {
		n := int(binary.LittleEndian.Uint32(table))
		if n < 8 || n > len(table) {
			return nil, fmt.Errorf("%w: certificate table entry of %d bytes in %d", ErrFormat, n, len(table))
		}
		if binary.LittleEndian.Uint16(table[6:]) == winCertTypePKCS7 {
			s, err := parseSignedData(table[8:n])
			if err != nil {
				return nil, err
			}
			out = append(out, *s)
		}
		n = (n + certTableAlignment - 1) / certTableAlignment * certTableAlignment
		if n >= len(table) {
			break
		}
		table = table[n:]
	}
	if len(out) == 0 {
		return nil, ErrNotSigned
	}
	return out, nil
}

// Verify checks that img carries a valid signature made with cert's key
// over its current contents. (It checks one signer, as a db entry that is
// the signing certificate itself would; chains to a CA are the firmware's
// business.)
func Verify(img []byte, cert *x509.Certificate) error {
	sigs, err := Signatures(img)
	if err != nil {
		return err
	}
	digest, err := Digest(img)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate %s has no RSA key", ErrBadSignature, cert.Subject)
	}
	var errs []error
	for _, s := range sigs {
		r := s.raw
		c := sha256.Sum256(r.contentBody)
		a := sha256.Sum256(r.attrs)
		switch {
		case !bytes.Equal(r.imageDigest, digest):
			errs = append(errs, errors.New("the image changed after it was signed (digest mismatch)"))
		case !bytes.Equal(r.messageDigest, c[:]):
			errs = append(errs, errors.New("the signed attributes do not cover the content"))
		case rsa.VerifyPKCS1v15(pub, crypto.SHA256, a[:], r.sig) != nil:
			errs = append(errs, fmt.Errorf("not signed by %s", cert.Subject))
		default:
			return nil
		}
	}
	return fmt.Errorf("%w: %w", ErrBadSignature, errors.Join(errs...))
}

// parseSignedData reads the parts of an Authenticode PKCS#7 that
// verification needs.
func parseSignedData(der []byte) (*Signature, error) {
	bad := func(what string) error { return fmt.Errorf("%w: PKCS#7 signature: %s", ErrFormat, what) }
	var ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &ci); err != nil || !ci.Type.Equal(oidSignedData) {
		return nil, bad("not a SignedData ContentInfo")
	}
	var sd struct {
		Version      int
		DigestAlgs   asn1.RawValue
		Content      asn1.RawValue
		Certificates asn1.RawValue `asn1:"optional,tag:0"`
		SignerInfos  asn1.RawValue
	}
	// A RawValue for [0] EXPLICIT keeps the wrapper: Bytes is the SignedData.
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, bad("SignedData: " + err.Error())
	}
	var inner struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(sd.Content.FullBytes, &inner); err != nil || !inner.Type.Equal(oidSpcIndirectData) {
		return nil, bad("content is not SpcIndirectDataContent")
	}
	var indirect struct {
		Data   asn1.RawValue
		Digest struct {
			Alg    asn1.RawValue
			Digest []byte
		}
	}
	var indirectRaw asn1.RawValue
	if _, err := asn1.Unmarshal(inner.Content.Bytes, &indirectRaw); err != nil {
		return nil, bad("SpcIndirectDataContent: " + err.Error())
	}
	if _, err := asn1.Unmarshal(inner.Content.Bytes, &indirect); err != nil {
		return nil, bad("SpcIndirectDataContent: " + err.Error())
	}
	s := &Signature{}
	s.raw.imageDigest = indirect.Digest.Digest
	s.raw.contentBody = indirectRaw.Bytes
	if len(sd.Certificates.Bytes) > 0 {
		certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
		if err != nil {
			return nil, bad("certificates: " + err.Error())
		}
		s.Certificates = certs
	}
	var si struct {
		Version   int
		IssuerSN  struct{ Issuer, Serial asn1.RawValue }
		DigestAlg asn1.RawValue
		Attrs     asn1.RawValue `asn1:"optional,tag:0"`
		SigAlg    asn1.RawValue
		Sig       []byte
	}
	if _, err := asn1.Unmarshal(sd.SignerInfos.Bytes, &si); err != nil {
		return nil, bad("SignerInfo: " + err.Error())
	}
	if len(si.Attrs.FullBytes) == 0 {
		return nil, bad("no authenticated attributes")
	}
	s.raw.sig = si.Sig
	s.raw.issuer = si.IssuerSN.Issuer.FullBytes
	s.raw.serial = si.IssuerSN.Serial.Bytes
	// The signature covers the attributes with their SET OF tag.
	s.raw.attrs = append([]byte{tagSet}, si.Attrs.FullBytes[1:]...)
	rest := si.Attrs.Bytes
	for len(rest) > 0 {
		var attr struct {
			Type   asn1.ObjectIdentifier
			Values asn1.RawValue
		}
		var err error
		if rest, err = asn1.Unmarshal(rest, &attr); err != nil {
			return nil, bad("attribute: " + err.Error())
		}
		if attr.Type.Equal(oidMessageDigest) {
			var d []byte
			if _, err := asn1.Unmarshal(attr.Values.Bytes, &d); err != nil {
				return nil, bad("message digest: " + err.Error())
			}
			s.raw.messageDigest = d
		}
	}
	for _, c := range s.Certificates {
		var sn asn1.RawValue
		sb, _ := asn1.Marshal(c.SerialNumber)
		asn1.Unmarshal(sb, &sn)
		if bytes.Equal(c.RawIssuer, s.raw.issuer) && bytes.Equal(sn.Bytes, s.raw.serial) {
			s.Signer = c
		}
	}
	return s, nil
}
