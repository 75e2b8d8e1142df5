package cms

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// ASN.1 shapes of RFC 5652 used for parsing; building uses cryptobyte.
type contentInfoASN struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedDataASN struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	EncapContentInfo encapContentInfoASN
	Certificates     asn1.RawValue   `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue   `asn1:"optional,tag:1"`
	SignerInfos      []signerInfoASN `asn1:"set"`
}

type encapContentInfoASN struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signerInfoASN struct {
	Version            int
	SID                asn1.RawValue
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

type attributeASN struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

type issuerAndSerialASN struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

// parsedCMS is a SignedData with exactly one SignerInfo, decoded far enough
// to verify it.
type parsedCMS struct {
	contentType asn1.ObjectIdentifier // eContentType
	content     []byte                // eContent; nil when detached
	certs       []*x509.Certificate
	sid         asn1.RawValue
	signer      *x509.Certificate // nil when no certificate matches the sid
	hash        crypto.Hash       // the SignerInfo's digest algorithm
	sigAlg      pkix.AlgorithmIdentifier
	signature   []byte
	signedRaw   []byte // DER SET OF Attribute, as signed
	signed      []attributeASN
	unsigned    []attributeASN
}

func malformed(err error, format string, args ...any) error {
	return fault.Wrap(err, fault.Invalid, CodeMalformed, format, args...)
}

// parseCMS decodes a BER or DER ContentInfo holding a SignedData with one
// signer that has signed attributes (every signature sealgate makes or
// checks has them).
func parseCMS(sig []byte) (*parsedCMS, error) {
	der, rest, err := BERToDER(sig)
	if err != nil {
		return nil, malformed(err, "the signature is not a BER or DER encoding")
	}
	if len(rest) > 0 {
		return nil, malformed(nil, "%d bytes follow the CMS ContentInfo", len(rest))
	}
	var ci contentInfoASN
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, malformed(err, "the signature is not a CMS ContentInfo")
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, malformed(nil, "the CMS content type is %s, not signedData", ci.ContentType)
	}
	var sd signedDataASN
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil { // Bytes: inside the [0] EXPLICIT
		return nil, malformed(err, "the CMS SignedData cannot be decoded")
	}
	if len(sd.SignerInfos) != 1 {
		return nil, malformed(nil, "the SignedData has %d signers; exactly one is supported", len(sd.SignerInfos))
	}
	p := &parsedCMS{contentType: sd.EncapContentInfo.EContentType}
	if ec := sd.EncapContentInfo.EContent; len(ec.FullBytes) > 0 {
		var octets asn1.RawValue
		if _, err := asn1.Unmarshal(ec.Bytes, &octets); err != nil || octets.Tag != asn1.TagOctetString || octets.IsCompound {
			return nil, malformed(err, "the encapsulated content is not a primitive OCTET STRING")
		}
		p.content = octets.Bytes
	}
	if len(sd.Certificates.Bytes) > 0 {
		if p.certs, err = x509.ParseCertificates(sd.Certificates.Bytes); err != nil {
			return nil, malformed(err, "the SignedData certificates cannot be parsed")
		}
	}
	si := sd.SignerInfos[0]
	var ok bool
	if p.hash, ok = HashByOID(si.DigestAlgorithm.Algorithm); !ok {
		return nil, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "digest algorithm %s is not supported", si.DigestAlgorithm.Algorithm)
	}
	p.sigAlg, p.signature = si.SignatureAlgorithm, si.Signature
	if len(si.SignedAttrs.FullBytes) == 0 {
		return nil, malformed(nil, "the signer has no signed attributes")
	}
	p.signedRaw = retag(si.SignedAttrs.FullBytes, 0x31) // verified as the universal SET OF
	if p.signed, err = parseAttributes(si.SignedAttrs.Bytes, true); err != nil {
		return nil, err
	}
	if len(si.UnsignedAttrs.FullBytes) > 0 {
		if p.unsigned, err = parseAttributes(si.UnsignedAttrs.Bytes, false); err != nil {
			return nil, err
		}
	}
	p.sid = si.SID
	p.signer, err = findSigner(si.SID, p.certs)
	return p, err
}

// parseAttributes decodes a SET OF Attribute. In signed attributes RFC
// 5652 §11 forbids repeating an attribute or giving it several values; both
// are refused there, so that no verifier can be shown a different message
// digest than another. Unsigned attributes may repeat (several signature
// timestamps).
func parseAttributes(b []byte, signed bool) ([]attributeASN, error) {
	var attrs []attributeASN
	for len(b) > 0 {
		var a attributeASN
		var err error
		if b, err = asn1.Unmarshal(b, &a); err != nil {
			return nil, malformed(err, "a CMS attribute cannot be decoded")
		}
		if len(a.Values) == 0 || signed && len(a.Values) != 1 {
			return nil, malformed(nil, "CMS attribute %s has %d values, not one", a.Type, len(a.Values))
		}
		if _, dup := findAttr(attrs, a.Type); dup && signed {
			return nil, malformed(nil, "CMS attribute %s appears twice", a.Type)
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}

// findSigner returns the certificate the SignerIdentifier names, by issuer
// and serial number or by subject key identifier ([0]).
func findSigner(sid asn1.RawValue, certs []*x509.Certificate) (*x509.Certificate, error) {
	switch {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence:
		var ias issuerAndSerialASN
		if _, err := asn1.Unmarshal(sid.FullBytes, &ias); err != nil {
			return nil, malformed(err, "the signer identifier cannot be decoded")
		}
		for _, c := range certs {
			if c.SerialNumber.Cmp(ias.Serial) == 0 && bytes.Equal(c.RawIssuer, ias.Issuer.FullBytes) {
				return c, nil
			}
		}
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0:
		for _, c := range certs {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, sid.Bytes) {
				return c, nil
			}
		}
	default:
		return nil, malformed(nil, "the signer identifier has an unknown form")
	}
	return nil, nil
}

// findAttr returns the value of the signed (or unsigned) attribute oid.
func findAttr(attrs []attributeASN, oid asn1.ObjectIdentifier) (asn1.RawValue, bool) {
	for _, a := range attrs {
		if a.Type.Equal(oid) {
			return a.Values[0], true
		}
	}
	return asn1.RawValue{}, false
}

// messageDigest returns the message-digest attribute.
func (p *parsedCMS) messageDigest() ([]byte, error) {
	v, ok := findAttr(p.signed, oidAttrMessageDigest)
	if !ok {
		return nil, malformed(nil, "the message-digest attribute is missing")
	}
	var d []byte
	if _, err := asn1.Unmarshal(v.FullBytes, &d); err != nil {
		return nil, malformed(err, "the message-digest attribute cannot be decoded")
	}
	return d, nil
}

// checkContentType checks the content-type attribute equals eContentType.
func (p *parsedCMS) checkContentType() error {
	v, ok := findAttr(p.signed, oidAttrContentType)
	if !ok {
		return malformed(nil, "the content-type attribute is missing")
	}
	var ct asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(v.FullBytes, &ct); err != nil {
		return malformed(err, "the content-type attribute cannot be decoded")
	}
	if !ct.Equal(p.contentType) {
		return malformed(nil, "the content-type attribute %s differs from eContentType %s", ct, p.contentType)
	}
	return nil
}

// signingTime returns the signing-time attribute, if present.
func (p *parsedCMS) signingTime() (*time.Time, error) {
	v, ok := findAttr(p.signed, oidAttrSigningTime)
	if !ok {
		return nil, nil
	}
	var t time.Time
	if _, err := asn1.Unmarshal(v.FullBytes, &t); err != nil {
		return nil, malformed(err, "the signing-time attribute cannot be decoded")
	}
	return &t, nil
}

// essCertID is the part of ESSCertID / ESSCertIDv2 (RFC 5035) sealgate checks.
type essCertID struct {
	HashAlgorithm pkix.AlgorithmIdentifier `asn1:"optional"`
	CertHash      []byte
	IssuerSerial  asn1.RawValue `asn1:"optional"`
}

// essCertIDv1 lacks the hash algorithm: SHA-1 is implied (RFC 2634 §5.4.1).
type essCertIDv1 struct {
	CertHash     []byte
	IssuerSerial asn1.RawValue `asn1:"optional"`
}

type issuerSerialASN struct {
	Issuer []asn1.RawValue // GeneralNames
	Serial *big.Int
}

// signingCertificate reports whether the signing-certificate-v2 (or, for
// timestamp tokens, the older signing-certificate) attribute is present and
// whether its first ESSCertID names cert.
func (p *parsedCMS) signingCertificate(cert *x509.Certificate) (present bool, v2 bool, matches bool, err error) {
	if v, ok := findAttr(p.signed, oidAttrSigningCertificateV2); ok {
		var sc struct{ Certs []essCertID }
		if _, err := asn1.Unmarshal(v.FullBytes, &sc); err != nil || len(sc.Certs) == 0 {
			return true, true, false, malformed(err, "the signing-certificate-v2 attribute cannot be decoded")
		}
		id := sc.Certs[0]
		h := crypto.SHA256
		if len(id.HashAlgorithm.Algorithm) > 0 {
			var ok bool
			if h, ok = HashByOID(id.HashAlgorithm.Algorithm); !ok {
				return true, true, false, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "signing-certificate-v2 hash %s is not supported", id.HashAlgorithm.Algorithm)
			}
		}
		return true, true, cert != nil && certIDMatches(cert, h, id.CertHash, id.IssuerSerial), nil
	}
	if v, ok := findAttr(p.signed, oidAttrSigningCertificate); ok {
		var sc struct{ Certs []essCertIDv1 }
		if _, err := asn1.Unmarshal(v.FullBytes, &sc); err != nil || len(sc.Certs) == 0 {
			return true, false, false, malformed(err, "the signing-certificate attribute cannot be decoded")
		}
		return true, false, cert != nil && certIDMatches(cert, crypto.SHA1, sc.Certs[0].CertHash, sc.Certs[0].IssuerSerial), nil
	}
	return false, false, false, nil
}

func certIDMatches(cert *x509.Certificate, h crypto.Hash, certHash []byte, issuerSerial asn1.RawValue) bool {
	if !h.Available() {
		return false
	}
	if !bytes.Equal(hashOf(h, cert.Raw), certHash) {
		return false
	}
	if len(issuerSerial.FullBytes) == 0 {
		return true
	}
	var is issuerSerialASN
	if _, err := asn1.Unmarshal(issuerSerial.FullBytes, &is); err != nil {
		return false
	}
	if is.Serial == nil || is.Serial.Cmp(cert.SerialNumber) != 0 {
		return false
	}
	for _, gn := range is.Issuer {
		if gn.Class == asn1.ClassContextSpecific && gn.Tag == 4 && bytes.Equal(gn.Bytes, cert.RawIssuer) {
			return true
		}
	}
	return false
}

// checkSignature verifies the signature value over the signed attributes
// with the signer certificate's key.
func (p *parsedCMS) checkSignature() error {
	if p.signer == nil {
		return fault.New(fault.Invalid, CodeSignatureInvalid, "the signer certificate is not in the signature")
	}
	s, err := p.signatureScheme()
	if err != nil {
		return err
	}
	if s.pssSalt > 0 {
		// crypto/x509 checks RSASSA-PSS with a salt as long as the hash
		// only; crypto/rsa takes the length the parameters state.
		pub, ok := p.signer.PublicKey.(*rsa.PublicKey)
		if !ok {
			return fault.New(fault.Invalid, CodeSignatureInvalid, "the RSASSA-PSS signature of %q is not made with an RSA key", p.signer.Subject.String())
		}
		err = rsa.VerifyPSS(pub, p.hash, hashOf(p.hash, p.signedRaw), p.signature, &rsa.PSSOptions{SaltLength: s.pssSalt, Hash: p.hash})
	} else {
		err = p.signer.CheckSignature(s.alg, p.signedRaw, p.signature)
	}
	if err != nil {
		return fault.Wrap(err, fault.Invalid, CodeSignatureInvalid, "the signature of %q does not verify", p.signer.Subject.String())
	}
	return nil
}

// pssParamsASN is RSASSA-PSS-params (RFC 4055 §3.1). Absent fields take
// their defaults: SHA-1, MGF1 with SHA-1, a 20-byte salt, trailer field 1.
type pssParamsASN struct {
	Hash       pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:0"`
	MGF        pkix.AlgorithmIdentifier `asn1:"optional,explicit,tag:1"`
	SaltLength int                      `asn1:"optional,explicit,tag:2,default:20"`
	Trailer    int                      `asn1:"optional,explicit,tag:3,default:1"`
}

var oidSHA1 = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}

// signatureScheme is how a SignerInfo's signature value is checked.
type signatureScheme struct {
	alg     x509.SignatureAlgorithm // as crypto/x509 names (and, but for PSS, checks) it
	pssSalt int                     // the RSASSA-PSS salt length in bytes; 0 for other schemes
}

// signatureScheme maps the SignerInfo's algorithms to the scheme the
// signature is checked with, insisting the signature's hash is the digest
// algorithm.
func (p *parsedCMS) signatureScheme() (signatureScheme, error) {
	d, err := digestAlgorithmFor(p.hash)
	if err != nil {
		return signatureScheme{}, err
	}
	oid := p.sigAlg.Algorithm
	switch {
	case oid.Equal(oidRSAEncryption) || oid.Equal(d.withRSA):
		return signatureScheme{alg: d.rsaX509}, nil
	case oid.Equal(d.withECDSA):
		return signatureScheme{alg: d.ecdsaX509}, nil
	case oid.Equal(oidRSAPSS):
		salt, err := pssSaltLength(p.sigAlg.Parameters, d)
		return signatureScheme{alg: d.pssX509, pssSalt: salt}, err
	}
	return signatureScheme{}, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "signature algorithm %s with %s is not supported", oid, p.hash)
}

// pssSaltLength decodes RSASSA-PSS parameters and returns their salt
// length. It refuses what crypto/rsa cannot check: a hash other than d's,
// a mask generation function other than MGF1 with that same hash, a
// trailer field other than 1, and an empty salt (crypto/rsa would accept
// any length in its place).
func pssSaltLength(raw asn1.RawValue, d digestAlgorithm) (int, error) {
	var params pssParamsASN
	if rest, err := asn1.Unmarshal(raw.FullBytes, &params); err != nil || len(rest) > 0 {
		return 0, malformed(err, "the RSASSA-PSS parameters cannot be decoded")
	}
	if len(params.Hash.Algorithm) == 0 {
		params.Hash.Algorithm = oidSHA1
	}
	mgfHash := pkix.AlgorithmIdentifier{Algorithm: oidSHA1}
	switch {
	case len(params.MGF.Algorithm) == 0:
	case !params.MGF.Algorithm.Equal(oidMGF1):
		return 0, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "RSASSA-PSS mask generation function %s is not supported (only MGF1)", params.MGF.Algorithm)
	default:
		if rest, err := asn1.Unmarshal(params.MGF.Parameters.FullBytes, &mgfHash); err != nil || len(rest) > 0 {
			return 0, malformed(err, "the RSASSA-PSS MGF1 hash cannot be decoded")
		}
	}
	switch {
	case !params.Hash.Algorithm.Equal(d.oid):
		return 0, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "the RSASSA-PSS hash %s is not the digest algorithm %s", params.Hash.Algorithm, d.hash)
	case !mgfHash.Algorithm.Equal(d.oid):
		return 0, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "RSASSA-PSS with MGF1 hash %s and hash %s is not supported", mgfHash.Algorithm, d.hash)
	case params.Trailer != 1:
		return 0, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "RSASSA-PSS trailer field %d is not supported (only 1)", params.Trailer)
	case params.SaltLength < 0:
		return 0, malformed(nil, "the RSASSA-PSS salt length %d is negative", params.SaltLength)
	case params.SaltLength == 0:
		return 0, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "RSASSA-PSS without a salt is not supported")
	}
	return params.SaltLength, nil
}

// checkDigest compares the message-digest attribute with digest.
func (p *parsedCMS) checkDigest(digest []byte) error {
	md, err := p.messageDigest()
	if err != nil {
		return err
	}
	if !bytes.Equal(md, digest) {
		return fault.New(fault.Invalid, CodeDigestMismatch, "the document's %s digest %x is not the signed digest %x", p.hash, digest, md)
	}
	return nil
}

// Fingerprint is a certificate's SHA-256 in hex, as reports show it.
// Certificates returns the certificates a CMS SignedData carries (as in a
// timestamp token).
func Certificates(der []byte) ([]*x509.Certificate, error) {
	p, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	return p.certs, nil
}

// Fingerprint is the SHA-256 of the DER certificate, in hex, as
// CertificateInfo.SHA256 gives it.
func Fingerprint(c *x509.Certificate) string {
	return fmt.Sprintf("%x", sha256.Sum256(c.Raw))
}
