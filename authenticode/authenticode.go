// Package authenticode signs PE/COFF images (EFI applications such as a
// unified kernel image) with Microsoft Authenticode, the signature format
// UEFI Secure Boot checks against the firmware's db, and reads the
// signatures an image carries.
//
// It does in Go what sbsign does, for two reasons that matter to minint:
// the output is reproducible (sbsign, through OpenSSL, stamps a signingTime
// attribute with the clock, so two builds of the same medium would differ;
// this package writes no time at all, which UEFI does not need), and the
// key can be any crypto.Signer (a file today, a hardware token later)
// without an OpenSSL engine. The format is checked against sbverify and
// against OVMF itself in the tests.
//
// The image digest follows the Authenticode specification as EDK2's
// DxeImageVerificationLib computes it: the headers without the checksum
// and the certificate-table entry, the sections in file order, then any
// data after the last section up to the certificate table.
//
// This package imports nothing of minint.
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
	"sort"
	"unicode/utf16"
)

// Errors; they are wrapped with details.
var (
	// ErrFormat: the input is not a PE/COFF image this package can sign or
	// read (truncated, no PE signature, overlapping tables...).
	ErrFormat = errors.New("not a valid PE/COFF image")
	// ErrSigned: Sign was given an image that already carries a signature.
	ErrSigned = errors.New("image is already signed")
	// ErrKey: the key cannot sign for the certificate (wrong type, or it
	// is not the certificate's key).
	ErrKey = errors.New("unusable signing key")
)

// PE/COFF layout (Microsoft PE format specification).
const (
	magicPE32     = 0x10b
	magicPE32Plus = 0x20b
	dirSecurity   = 4 // the certificate table's data directory index

	winCertRevision2   = 0x0200
	winCertTypePKCS7   = 0x0002
	certTableAlignment = 8
)

// header locates the fields Authenticode treats specially.
type header struct {
	checksumOff   int // optional header CheckSum
	certDirOff    int // data directory entry of the certificate table
	sizeOfHeaders int
	sections      []section
	certOff       int // certificate table (file offset), 0 when none
	certSize      int
}

type section struct{ off, size int }

func parse(img []byte) (*header, error) {
	le := binary.LittleEndian
	if len(img) < 0x40 || img[0] != 'M' || img[1] != 'Z' {
		return nil, fmt.Errorf("%w: no MZ header", ErrFormat)
	}
	pe := int(le.Uint32(img[0x3c:]))
	if pe < 0x40 || pe > len(img)-24 || !bytes.Equal(img[pe:pe+4], []byte("PE\x00\x00")) {
		return nil, fmt.Errorf("%w: no PE signature", ErrFormat)
	}
	nsec := int(le.Uint16(img[pe+6:]))
	optSize := int(le.Uint16(img[pe+20:]))
	opt := pe + 24
	if opt+optSize > len(img) || optSize < 2 {
		return nil, fmt.Errorf("%w: optional header past the end", ErrFormat)
	}
	h := &header{checksumOff: opt + 64}
	var dirs, nDirsOff int
	switch le.Uint16(img[opt:]) {
	case magicPE32:
		dirs, nDirsOff = opt+96, opt+92
	case magicPE32Plus:
		dirs, nDirsOff = opt+112, opt+108
	default:
		return nil, fmt.Errorf("%w: unknown optional header magic %#x", ErrFormat, le.Uint16(img[opt:]))
	}
	if nDirsOff+4 > opt+optSize || int(le.Uint32(img[nDirsOff:])) <= dirSecurity || dirs+8*(dirSecurity+1) > opt+optSize {
		return nil, fmt.Errorf("%w: no certificate table directory entry", ErrFormat)
	}
	h.certDirOff = dirs + 8*dirSecurity
	h.sizeOfHeaders = int(le.Uint32(img[opt+60:]))
	secTable := opt + optSize
	if secTable+40*nsec > len(img) || h.sizeOfHeaders < secTable+40*nsec || h.sizeOfHeaders > len(img) {
		return nil, fmt.Errorf("%w: section table or SizeOfHeaders out of range", ErrFormat)
	}
	for i := 0; i < nsec; i++ {
		s := img[secTable+40*i:]
		size, off := int(le.Uint32(s[16:])), int(le.Uint32(s[20:]))
		if size == 0 {
			continue
		}
		if off < h.sizeOfHeaders || off > len(img) || size > len(img)-off {
			return nil, fmt.Errorf("%w: section %d's data (%d bytes at %d) lies outside the file", ErrFormat, i, size, off)
		}
		h.sections = append(h.sections, section{off, size})
	}
	sort.SliceStable(h.sections, func(i, j int) bool { return h.sections[i].off < h.sections[j].off })
	h.certOff = int(le.Uint32(img[h.certDirOff:]))
	h.certSize = int(le.Uint32(img[h.certDirOff+4:]))
	if h.certSize != 0 || h.certOff != 0 {
		if h.certOff < h.sizeOfHeaders || h.certOff > len(img) || h.certSize > len(img)-h.certOff || h.certOff+h.certSize != len(img) {
			return nil, fmt.Errorf("%w: the certificate table (%d bytes at %d) is not at the end of the file", ErrFormat, h.certSize, h.certOff)
		}
	}
	return h, nil
}

// Digest returns the Authenticode SHA-256 digest of a PE/COFF image.
func Digest(img []byte) ([]byte, error) {
	h, err := parse(img)
	if err != nil {
		return nil, err
	}
	return h.digest(img), nil
}

func (h *header) digest(img []byte) []byte {
	d := sha256.New()
	d.Write(img[:h.checksumOff])
	d.Write(img[h.checksumOff+4 : h.certDirOff])
	d.Write(img[h.certDirOff+8 : h.sizeOfHeaders])
	hashed := h.sizeOfHeaders
	for _, s := range h.sections {
		d.Write(img[s.off : s.off+s.size])
		hashed += s.size
	}
	end := len(img) - h.certSize
	if hashed < end {
		d.Write(img[hashed:end])
	}
	return d.Sum(nil)
}

// Sign returns a copy of the unsigned image img with an Authenticode
// signature by key for cert appended (the image padded to 8 bytes, the
// certificate table added, the PE checksum updated). The key must be an
// RSA key (what UEFI firmware verifies) and match cert.
func Sign(img []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if err := checkKey(key, cert); err != nil {
		return nil, err
	}
	h, err := parse(img)
	if err != nil {
		return nil, err
	}
	if h.certSize != 0 {
		return nil, ErrSigned
	}
	out := make([]byte, len(img), len(img)+8192)
	copy(out, img)
	for len(out)%certTableAlignment != 0 {
		out = append(out, 0)
	}
	if h, err = parse(out); err != nil {
		return nil, err
	}
	sig, err := signedData(h.digest(out), key, cert)
	if err != nil {
		return nil, err
	}
	entry := make([]byte, 8, 8+len(sig)+certTableAlignment)
	binary.LittleEndian.PutUint32(entry[0:], uint32(8+len(sig)))
	binary.LittleEndian.PutUint16(entry[4:], winCertRevision2)
	binary.LittleEndian.PutUint16(entry[6:], winCertTypePKCS7)
	entry = append(entry, sig...)
	for len(entry)%certTableAlignment != 0 {
		entry = append(entry, 0)
	}
	binary.LittleEndian.PutUint32(out[h.certDirOff:], uint32(len(out)))
	binary.LittleEndian.PutUint32(out[h.certDirOff+4:], uint32(len(entry)))
	out = append(out, entry...)
	binary.LittleEndian.PutUint32(out[h.checksumOff:], Checksum(out, h.checksumOff))
	return out, nil
}

func checkKey(key crypto.Signer, cert *x509.Certificate) error {
	if key == nil || cert == nil {
		return fmt.Errorf("%w: no key or no certificate", ErrKey)
	}
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: a %T; UEFI firmware verifies RSA signatures (use an RSA 2048 or 4096 key)", ErrKey, key.Public())
	}
	if cp, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !cp.Equal(pub) {
		return fmt.Errorf("%w: the key is not the certificate's (%s)", ErrKey, cert.Subject)
	}
	return nil
}

// Checksum is the PE optional-header checksum (ImageHlp's
// CheckSumMappedFile): a 16-bit folded sum of the file's little-endian
// words with the checksum field at csOff taken as zero, plus the file
// length.
func Checksum(b []byte, csOff int) uint32 {
	var sum uint64
	for i := 0; i < len(b); i += 2 {
		if i == csOff || i == csOff+2 {
			continue
		}
		w := uint64(b[i])
		if i+1 < len(b) {
			w |= uint64(b[i+1]) << 8
		}
		sum += w
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

// ChecksumOffset returns where img's PE checksum field is.
func ChecksumOffset(img []byte) (int, error) {
	h, err := parse(img)
	if err != nil {
		return 0, err
	}
	return h.checksumOff, nil
}

// Object identifiers of the signature.
var (
	oidSignedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSA             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidContentType     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSpcIndirectData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcSpOpusInfo   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
)

// DER tags used below.
const (
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagNull        = 0x05
	tagSequence    = 0x30
	tagSet         = 0x31
	tagCtx0        = 0xa0 // [0] constructed
	tagCtx2        = 0xa2 // [2] constructed
	tagCtx0Prim    = 0x80 // [0] primitive
)

// tlv encodes one DER element with the concatenated contents.
func tlv(tag byte, contents ...[]byte) []byte {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	out := []byte{tag}
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	for _, c := range contents {
		out = append(out, c...)
	}
	return out
}

func derOID(o asn1.ObjectIdentifier) []byte {
	b, _ := asn1.Marshal(o)
	return b
}

func sha256Alg() []byte { return tlv(tagSequence, derOID(oidSHA256), tlv(tagNull)) }

// signedData builds the PKCS#7 SignedData (Authenticode profile) over an
// image digest: the SpcIndirectDataContent naming the digest, the signer's
// certificate, and one SignerInfo whose authenticated attributes (content
// type, message digest, an empty SpcSpOpusInfo; no signing time) are
// signed with RSA PKCS#1 v1.5 / SHA-256.
func signedData(digest []byte, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	obsolete := utf16.Encode([]rune("<<<Obsolete>>>"))
	bmp := make([]byte, 2*len(obsolete))
	for i, c := range obsolete {
		binary.BigEndian.PutUint16(bmp[2*i:], c)
	}
	// SpcPeImageData ::= SEQUENCE { flags BIT STRING, file [0] SpcLink }
	// with SpcLink.file [2] SpcString.unicode [0] "<<<Obsolete>>>", as
	// signtool and sbsign write it.
	peImageData := tlv(tagSequence, tlv(tagBitString, []byte{0}), tlv(tagCtx0, tlv(tagCtx2, tlv(tagCtx0Prim, bmp))))
	indirect := tlv(tagSequence,
		tlv(tagSequence, derOID(oidSpcPEImageData), peImageData),
		tlv(tagSequence, sha256Alg(), tlv(tagOctetString, digest)))
	// The message digest covers the content's value, without its tag and
	// length (Authenticode, "Calculating the PE image hash").
	_, body, err := splitTLV(indirect)
	if err != nil {
		return nil, err
	}
	contentDigest := sha256.Sum256(body)
	attrs := [][]byte{
		tlv(tagSequence, derOID(oidContentType), tlv(tagSet, derOID(oidSpcIndirectData))),
		tlv(tagSequence, derOID(oidMessageDigest), tlv(tagSet, tlv(tagOctetString, contentDigest[:]))),
		tlv(tagSequence, derOID(oidSpcSpOpusInfo), tlv(tagSet, tlv(tagSequence))),
	}
	// DER orders a SET OF by the elements' encodings.
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 })
	attrSet := tlv(tagSet, attrs...)
	attrDigest := sha256.Sum256(attrSet)
	sig, err := key.Sign(nil, attrDigest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: signing: %w", ErrKey, err)
	}
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	_, attrBody, _ := splitTLV(attrSet)
	signerInfo := tlv(tagSequence,
		tlv(tagInteger, []byte{1}),
		tlv(tagSequence, cert.RawIssuer, serial),
		sha256Alg(),
		tlv(tagCtx0, attrBody), // [0] IMPLICIT SET OF Attribute
		tlv(tagSequence, derOID(oidRSA), tlv(tagNull)),
		tlv(tagOctetString, sig))
	sd := tlv(tagSequence,
		tlv(tagInteger, []byte{1}),
		tlv(tagSet, sha256Alg()),
		tlv(tagSequence, derOID(oidSpcIndirectData), tlv(tagCtx0, indirect)),
		tlv(tagCtx0, cert.Raw),
		tlv(tagSet, signerInfo))
	return tlv(tagSequence, derOID(oidSignedData), tlv(tagCtx0, sd)), nil
}

// splitTLV returns the tag and contents of the DER element at the start of b.
func splitTLV(b []byte) (tag byte, body []byte, err error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil {
		return 0, nil, err
	}
	if len(rest) != 0 {
		return 0, nil, fmt.Errorf("%w: trailing data after a DER element", ErrFormat)
	}
	return b[0], v.Bytes, nil
}
