// Package cms builds, parses and verifies CMS SignedData (RFC 5652) the way
// electronic seals need it: detached CAdES baseline signatures (ETSI EN
// 319 122-1, levels B-B and B-T) over streamed documents, the CMS inside
// PAdES signatures, RFC 3161 timestamp tokens (parsing and verification),
// and BER input re-encoded as DER before it is parsed.
package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// Error codes of CMS signing and verification.
const (
	// CodeAlgorithmUnsupported: the key type or hash cannot make a CMS signature.
	CodeAlgorithmUnsupported fault.Code = "algorithm_unsupported"
	// CodeSignatureInvalid: the signature value does not verify with the signer certificate.
	CodeSignatureInvalid fault.Code = "signature_invalid"
	// CodeDigestMismatch: the document is not the one that was signed.
	CodeDigestMismatch fault.Code = "digest_mismatch"
	// CodeChainUntrusted: the signer certificate does not chain to a trusted root.
	CodeChainUntrusted fault.Code = "chain_untrusted"
	// CodeMalformed: the signature is not a well-formed CMS SignedData.
	CodeMalformed fault.Code = "cms_malformed"
	// CodeTimestampInvalid: a timestamp token does not verify or does not cover what it should.
	CodeTimestampInvalid fault.Code = "timestamp_invalid"
	// CodeSigningCertificateMismatch: the signing-certificate-v2 attribute names another certificate.
	CodeSigningCertificateMismatch fault.Code = "signing_certificate_mismatch"
	// CodeTimestampBeforeSigningTime: the signature claims a signing time after its own timestamp.
	CodeTimestampBeforeSigningTime fault.Code = "timestamp_before_signing_time"
	// CodeEmbeddedCert: a certificate carried in the signature but not in
	// its verified chain does not chain to a trusted root (CheckContainer).
	CodeEmbeddedCert fault.Code = "pdf_embedded_certificate_invalid"
)

// Object identifiers of RFC 5652 (CMS), RFC 5035 (ESS), RFC 3161 and the
// algorithm RFCs 4055, 5754 and 5758.
var (
	oidData                     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidTSTInfo                  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}
	oidAttrContentType          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSigningCertificate   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidAttrSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	oidAttrTimestampToken       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	oidRSAEncryption            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS                   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1                     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

// OIDTSTInfo is id-ct-TSTInfo, the content type of an RFC 3161 timestamp token.
var OIDTSTInfo = oidTSTInfo

// digestAlgorithm ties a hash to its OIDs and the signature algorithms made with it.
type digestAlgorithm struct {
	hash      crypto.Hash
	oid       asn1.ObjectIdentifier
	withRSA   asn1.ObjectIdentifier
	withECDSA asn1.ObjectIdentifier
	rsaX509   x509.SignatureAlgorithm
	pssX509   x509.SignatureAlgorithm
	ecdsaX509 x509.SignatureAlgorithm
}

var digestAlgorithms = []digestAlgorithm{
	{crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1},
		asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2},
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256},
	{crypto.SHA384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2},
		asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3},
		x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384},
	{crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3},
		asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4},
		x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512},
}

func digestAlgorithmFor(h crypto.Hash) (digestAlgorithm, error) {
	for _, d := range digestAlgorithms {
		if d.hash == h {
			return d, nil
		}
	}
	return digestAlgorithm{}, fault.New(fault.Invalid, CodeAlgorithmUnsupported,
		"hash algorithm %q is not supported for signatures (use SHA-256, SHA-384 or SHA-512)", h.String())
}

// hashNames are the names configuration, storage and the CLI use for the
// digest algorithms sealgate supports.
var hashNames = map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}

// HashByName returns the digest algorithm named "sha256", "sha384" or
// "sha512" (case-insensitive).
func HashByName(name string) (crypto.Hash, bool) {
	h, ok := hashNames[strings.ToLower(name)]
	return h, ok
}

// HashName returns the name HashByName takes for h, or h.String() for an
// algorithm sealgate does not support.
func HashName(h crypto.Hash) string {
	for n, x := range hashNames {
		if x == h {
			return n
		}
	}
	return h.String()
}

// HashOID returns the digest algorithm OID of h (SHA-256, SHA-384 or SHA-512).
func HashOID(h crypto.Hash) (asn1.ObjectIdentifier, error) {
	d, err := digestAlgorithmFor(h)
	return d.oid, err
}

// HashByOID returns the hash named by a digest algorithm OID.
func HashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, d := range digestAlgorithms {
		if d.oid.Equal(oid) {
			return d.hash, true
		}
	}
	return 0, false
}

// Options controls Sign.
type Options struct {
	// ContentType is the signed content's type (the content-type attribute and
	// eContentType). Default id-data; the timestamp responder uses OIDTSTInfo.
	ContentType asn1.ObjectIdentifier
	// Content, when not nil, is encapsulated in the SignedData (eContent) and
	// the digest passed to Sign may be nil. When nil the signature is detached.
	Content []byte
	// OmitSigningTime leaves out the signing-time attribute, as PAdES
	// baseline signatures require (the time lives in the PDF dictionary or
	// in a timestamp).
	OmitSigningTime bool
	// SigningTime is the claimed signing time; zero means now.
	SigningTime time.Time
	// PSS selects RSASSA-PSS (salt length = hash length) for RSA keys
	// instead of PKCS #1 v1.5.
	PSS bool
	// Timestamper, when set, adds a signature-time-stamp over the signature
	// value as an unsigned attribute (baseline level B-T).
	Timestamper signing.Timestamper
	// OmitCertificates leaves the certificates field out: an RFC 3161
	// token carries none unless the request asked for them (certReq).
	OmitCertificates bool
}

// TimestampHasher is implemented by a Timestamper whose authority wants
// imprints made with a particular hash; without it the signature's own hash
// is used for the signature-time-stamp.
type TimestampHasher interface {
	TimestampHash() crypto.Hash
}

// Sign returns the DER ContentInfo of a CMS SignedData (RFC 5652) with one
// SignerInfo made by key over the content whose hash is digest. The signed
// attributes are content-type, message-digest, signing-time (unless
// omitted) and signing-certificate-v2 (RFC 5035, SHA-256 certificate hash
// with issuerSerial), as CAdES and PAdES baseline signatures need; the
// certificates field carries key's full chain. key.Sign is called once.
func Sign(ctx context.Context, key signing.Key, digest []byte, hash crypto.Hash, opts Options) ([]byte, error) {
	s, err := SignValue(ctx, key, digest, hash, opts)
	if err != nil {
		return nil, err
	}
	var token []byte
	if opts.Timestamper != nil {
		if token, err = s.Timestamp(ctx, opts.Timestamper); err != nil {
			return nil, err
		}
	}
	return s.Encode(token)
}

// Signed is a SignerInfo whose signature is made, before its unsigned
// attributes: a signer that must fit the encoding into reserved space (a
// PDF's /Contents) can still choose to leave the timestamp out once it sees
// the token, without asking the key to sign again.
type Signed struct {
	parts signedDataParts
	hash  crypto.Hash
}

// SignValue is Sign up to the signature: opts.Timestamper is not used.
func SignValue(ctx context.Context, key signing.Key, digest []byte, hash crypto.Hash, opts Options) (*Signed, error) {
	chain := key.Chain()
	if len(chain) == 0 {
		return nil, fault.New(fault.Internal, signing.CodeKeyMismatch, "the seal key has no certificate")
	}
	signer := chain[0]
	dalg, err := digestAlgorithmFor(hash)
	if err != nil {
		return nil, err
	}
	if opts.Content != nil {
		sum := hashOf(hash, opts.Content)
		if digest != nil && !bytes.Equal(digest, sum) {
			return nil, fault.New(fault.Invalid, CodeDigestMismatch, "the digest given does not match the %d-byte encapsulated content", len(opts.Content))
		}
		digest = sum
	}
	if len(digest) != hash.Size() {
		return nil, fault.New(fault.Invalid, CodeDigestMismatch, "digest is %d bytes, %s needs %d", len(digest), hash, hash.Size())
	}
	sigAlg, signerOpts, err := signatureAlgorithm(key.Public(), dalg, opts.PSS)
	if err != nil {
		return nil, err
	}
	contentType := opts.ContentType
	if contentType == nil {
		contentType = oidData
	}

	attrs := [][]byte{
		attribute(oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(contentType) }),
		attribute(oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }),
		attribute(oidAttrSigningCertificateV2, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, signer) }),
	}
	if !opts.OmitSigningTime {
		t := opts.SigningTime
		if t.IsZero() {
			t = time.Now()
		}
		attrs = append(attrs, attribute(oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, t) }))
	}
	signedAttrs, err := setOf(attrs)
	if err != nil {
		return nil, fault.Wrap(err, fault.Internal, CodeMalformed, "encoding the signed attributes failed")
	}

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The signature covers the DER SET OF encoding of the attributes (RFC 5652 §5.4).
	signature, err := signing.SignContext(ctx, key, hashOf(hash, signedAttrs), signerOpts)
	if err != nil {
		if fault.As(err) != nil { // the pool already said which card failed and why
			return nil, err
		}
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTokenUnavailable, "the seal key %q could not sign", signer.Subject.CommonName)
	}

	return &Signed{hash: hash, parts: signedDataParts{
		dalg:        dalg,
		contentType: contentType,
		content:     opts.Content,
		chain:       chain,
		omitCerts:   opts.OmitCertificates,
		signedAttrs: signedAttrs,
		sigAlg:      sigAlg,
		signature:   signature,
	}}, nil
}

// Timestamp asks ts for a signature-time-stamp token over the signature
// value (baseline level B-T) and checks that it covers it.
func (s *Signed) Timestamp(ctx context.Context, ts signing.Timestamper) ([]byte, error) {
	return timestampSignature(ctx, ts, s.parts.signature, s.hash)
}

// Encode returns the DER ContentInfo, with token (when not nil) as the
// signature-time-stamp attribute.
func (s *Signed) Encode(token []byte) ([]byte, error) {
	p := s.parts
	if token != nil {
		p.unsigned = [][]byte{attribute(oidAttrTimestampToken, func(b *cryptobyte.Builder) { b.AddBytes(token) })}
	}
	return marshalSignedData(p)
}

// timestampSignature obtains a signature-time-stamp token (ETSI EN 319 122-1
// §5.3) over the signature value and checks it covers that value.
func timestampSignature(ctx context.Context, ts signing.Timestamper, signature []byte, hash crypto.Hash) ([]byte, error) {
	if th, ok := ts.(TimestampHasher); ok && th.TimestampHash() != 0 {
		hash = th.TimestampHash()
	}
	if !hash.Available() {
		return nil, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "timestamp hash %q is not available", hash.String())
	}
	imprint := hashOf(hash, signature)
	token, err := ts.Timestamp(ctx, imprint, hash)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTimestampFailed, "the timestamp authority did not timestamp the signature")
	}
	info, err := ParseTimestampToken(token)
	if err == nil && !info.coversImprint(imprint, hash) {
		err = fault.New(fault.Unavailable, CodeTimestampInvalid, "the token's message imprint is not the signature's %s hash", hash)
	}
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTimestampFailed, "the timestamp authority returned an unusable token")
	}
	return token, nil
}

// signatureAlgorithm picks the SignerInfo signatureAlgorithm (DER) and the
// crypto.SignerOpts for pub.
func signatureAlgorithm(pub crypto.PublicKey, d digestAlgorithm, pss bool) ([]byte, crypto.SignerOpts, error) {
	var b cryptobyte.Builder
	var opts crypto.SignerOpts = d.hash
	switch pub.(type) {
	case *rsa.PublicKey:
		if pss {
			addPSSAlgorithm(&b, d)
			opts = &rsa.PSSOptions{SaltLength: d.hash.Size(), Hash: d.hash}
		} else {
			addAlgorithm(&b, d.withRSA, true)
		}
	case *ecdsa.PublicKey:
		if pss {
			return nil, nil, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "RSASSA-PSS was requested for an ECDSA key")
		}
		addAlgorithm(&b, d.withECDSA, false)
	default:
		return nil, nil, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "key type %T cannot make CMS signatures (RSA or ECDSA needed)", pub)
	}
	der, err := b.Bytes()
	return der, opts, err
}

// addAlgorithm writes an AlgorithmIdentifier; RSA algorithms carry NULL
// parameters (RFC 4055 §5), ECDSA and SHA-2 digest algorithms none (RFC 5758, RFC 5754).
func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, nullParams bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
}

// addPSSAlgorithm writes id-RSASSA-PSS with RSASSA-PSS-params (RFC 4055 §3.1):
// the hash, MGF1 with the same hash and a salt as long as the hash; the
// trailer field keeps its default.
func addPSSAlgorithm(b *cryptobyte.Builder, d digestAlgorithm) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidRSAPSS)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				addAlgorithm(b, d.oid, true)
			})
			b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidMGF1)
					addAlgorithm(b, d.oid, true)
				})
			})
			b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1Int64(int64(d.hash.Size()))
			})
		})
	})
}

// attribute returns the DER of Attribute { type, SET { one value } }.
func attribute(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	return b.BytesOrPanic()
}

// setOf returns the DER SET OF the given encoded elements, sorted as DER
// requires (X.690 §11.6), so that verifiers re-encoding it hash the same bytes.
func setOf(elems [][]byte) ([]byte, error) {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, e := range sorted {
			b.AddBytes(e)
		}
	})
	return b.Bytes()
}

// addTime writes a CMS Time: UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5652 §11.3).
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
}

// addSigningCertificateV2 writes SigningCertificateV2 (RFC 5035 §3) naming
// cert by its SHA-256 hash (the DEFAULT algorithm, so omitted) and its
// issuer and serial number.
func addSigningCertificateV2(b *cryptobyte.Builder, cert *x509.Certificate) {
	sum := sha256.Sum256(cert.Raw)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SigningCertificateV2
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // certs
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ESSCertIDv2
				b.AddASN1OctetString(sum[:])
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerSerial
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // GeneralNames
						b.AddASN1(cbasn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // directoryName
							b.AddBytes(cert.RawIssuer)
						})
					})
					b.AddASN1BigInt(cert.SerialNumber)
				})
			})
		})
	})
}

// signedDataParts are the pieces marshalSignedData assembles.
type signedDataParts struct {
	dalg        digestAlgorithm
	contentType asn1.ObjectIdentifier
	content     []byte
	chain       []*x509.Certificate
	omitCerts   bool
	signedAttrs []byte // DER SET OF Attribute
	sigAlg      []byte // DER AlgorithmIdentifier
	signature   []byte
	unsigned    [][]byte // DER Attributes
}

// marshalSignedData writes ContentInfo { id-signedData, SignedData }.
func marshalSignedData(p signedDataParts) ([]byte, error) {
	// RFC 5652 §5.1: version 3 when eContentType is not id-data, else 1.
	version := int64(1)
	if !p.contentType.Equal(oidData) {
		version = 3
	}
	signer := p.chain[0]
	var unsignedSet []byte
	if len(p.unsigned) > 0 {
		var err error
		if unsignedSet, err = setOf(p.unsigned); err != nil {
			return nil, err
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(version)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgorithm(b, p.dalg.oid, false) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncapsulatedContentInfo
					b.AddASN1ObjectIdentifier(p.contentType)
					if p.content != nil {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(p.content)
						})
					}
				})
				if !p.omitCerts {
					b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // certificates
						for _, c := range p.chain {
							b.AddBytes(c.Raw)
						}
					})
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { // signerInfos
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1) // issuerAndSerialNumber
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(signer.RawIssuer)
							b.AddASN1BigInt(signer.SerialNumber)
						})
						addAlgorithm(b, p.dalg.oid, false)
						b.AddBytes(retag(p.signedAttrs, 0xa0)) // [0] IMPLICIT SET OF Attribute
						b.AddBytes(p.sigAlg)
						b.AddASN1OctetString(p.signature)
						if unsignedSet != nil {
							b.AddBytes(retag(unsignedSet, 0xa1)) // [1] IMPLICIT SET OF Attribute
						}
					})
				})
			})
		})
	})
	return b.Bytes()
}

// retag returns der with its (single-byte) identifier octet replaced, for
// IMPLICIT tagging of an already encoded SET.
func retag(der []byte, tag byte) []byte {
	out := slices.Clone(der)
	out[0] = tag
	return out
}
