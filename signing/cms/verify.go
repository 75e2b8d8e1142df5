package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// SignedContent is the document a detached signature is checked against:
// either a Reader, hashed with the signature's own digest algorithm, or a
// Digest made with Hash. Leave both empty for a signature that encapsulates
// its content.
type SignedContent struct {
	Reader io.Reader
	Digest []byte
	Hash   crypto.Hash
}

// VerifyOptions controls Verify.
type VerifyOptions struct {
	// Roots are the trusted roots for the signer; nil means the system roots.
	Roots *x509.CertPool
	// Intermediates help build chains besides the certificates in the signature.
	Intermediates *x509.CertPool
	// TSARoots are the trusted roots for signature timestamps; nil means Roots.
	TSARoots *x509.CertPool
	// At is the time of verification, zero meaning now. The signature
	// timestamp's authority is checked at it, and so is the signer unless a
	// verified signature timestamp shows the signature existed earlier.
	At time.Time
}

// Finding is one reason a signature is not valid.
type Finding struct {
	Code    fault.Code `json:"code"`
	Message string     `json:"message"`
}

// Report is what Verify found. PAdES verification and `sealgate
// verify` extend it; it marshals to the camelCase JSON of verification reports.
type Report struct {
	// Valid is true when the signature verifies over the document, the signer
	// chains to a trusted root and any timestamp verifies.
	Valid bool `json:"valid"`
	// Level is the baseline level reached; empty when invalid or when the
	// signature lacks signing-certificate-v2.
	Level signing.Level `json:"level,omitempty"`
	// Signer is the signer certificate's subject.
	Signer string `json:"signer,omitempty"`
	// SignerCertificate is the certificate the signature names.
	SignerCertificate *x509.Certificate `json:"-"`
	// Chain is the verified chain, signer first, root last.
	Chain []CertificateInfo `json:"chain,omitempty"`
	// ChainValidatedAt is the time the signer's chain was checked at: the
	// verified signature timestamp's genTime if there is one (the
	// signature existed then), else VerifyOptions.At or now. Zero when
	// the signature does not carry the signer's certificate.
	ChainValidatedAt time.Time `json:"chainValidatedAt,omitzero"`
	// ContentType is the signed content type's OID (1.2.840.113549.1.7.1 for data).
	ContentType string `json:"contentType"`
	// DigestAlgorithm names the document hash, e.g. "SHA-256".
	DigestAlgorithm string `json:"digestAlgorithm"`
	// SignatureAlgorithm names the signature scheme, e.g. "SHA256-RSAPSS".
	SignatureAlgorithm string `json:"signatureAlgorithm,omitempty"`
	// SigningTime is the signer's claimed time; PAdES baseline signatures have none.
	SigningTime *time.Time `json:"signingTime,omitempty"`
	// SigningCertificateV2 tells whether that attribute is present, and
	// SigningCertificateV2Matches whether it names the signer certificate.
	SigningCertificateV2        bool `json:"signingCertificateV2"`
	SigningCertificateV2Matches bool `json:"signingCertificateV2Matches"`
	// Timestamp is the verified signature timestamp, if any.
	Timestamp *TimestampInfo `json:"timestamp,omitempty"`
	// Errors lists why the signature is not valid.
	Errors []Finding `json:"errors,omitempty"`
	// Content is the encapsulated content, when the signature carries it.
	Content []byte `json:"-"`
}

func (r *Report) fail(err error) {
	if e := fault.As(err); e != nil {
		r.Errors = append(r.Errors, Finding{Code: e.Code, Message: e.Msg})
		return
	}
	r.Errors = append(r.Errors, Finding{Code: fault.CodeInternal, Message: err.Error()})
}

// Verify verifies a CMS signature made by one signer, BER or DER: the
// message digest against content, the signature with the signer
// certificate, the signing-certificate-v2 attribute, the signature
// timestamp (whose imprint must be the hash of the signature value, its
// authority's chain valid at opts.At) and the certificate's chain to
// opts.Roots, valid at the timestamp's genTime when the timestamp verifies
// and at opts.At otherwise. It returns a report whenever the signature can be
// decoded; when the signature is not valid the error is the first finding.
// Undecodable signatures give cms_malformed, unreadable content input_unreadable.
func Verify(ctx context.Context, sig []byte, content SignedContent, opts VerifyOptions) (*Report, error) {
	p, err := parseCMS(sig)
	if err != nil {
		return nil, err
	}
	r := &Report{
		ContentType:       p.contentType.String(),
		DigestAlgorithm:   p.hash.String(),
		SignerCertificate: p.signer,
		Content:           p.content,
	}
	if s, err := p.signatureScheme(); err == nil {
		r.SignatureAlgorithm = s.alg.String()
	}
	if p.signer != nil {
		r.Signer = p.signer.Subject.String()
	}
	if err := p.checkContentType(); err != nil {
		return nil, err
	}
	if r.SigningTime, err = p.signingTime(); err != nil {
		return nil, err
	}

	digest, err := contentDigestFor(ctx, p, content)
	if err != nil {
		return nil, err
	}
	if err := p.checkDigest(digest); err != nil {
		r.fail(err)
	}
	if err := p.checkSignature(); err != nil {
		r.fail(err)
	}
	// The timestamp is checked first since it decides the time of the
	// chain, its finding recorded after the chain's.
	at := atOrNow(opts.At)
	ts, tsErr := verifySignatureTimestamp(p, opts, at)
	if p.signer != nil {
		// A verified signature timestamp proves the signature existed at
		// its genTime: the signer's certificate need only have been valid
		// then, so the signature outlives it (the past signature validation
		// of ETSI EN 319 102-1).
		if ts != nil && ts.GenTime.Before(at) {
			at = ts.GenTime
		}
		chain, err := verifyChain(p.signer, p.certs, opts.Roots, opts.Intermediates, at, x509.ExtKeyUsageAny)
		if err != nil {
			r.fail(err)
		}
		r.Chain, r.ChainValidatedAt = chain, at.UTC()
	}
	present, v2, matches, err := p.signingCertificate(p.signer)
	if err != nil {
		return nil, err
	}
	r.SigningCertificateV2, r.SigningCertificateV2Matches = present && v2, present && v2 && matches
	if present && !matches {
		r.fail(fault.New(fault.Invalid, CodeSigningCertificateMismatch, "the signing-certificate attribute does not name the signer certificate %q", r.Signer))
	}
	if tsErr != nil {
		r.fail(tsErr)
	}
	r.Timestamp = ts
	// A signature cannot have been made after it was timestamped (ETSI EN
	// 319 102-1 §5.6.2.4.4, timestamp ordering); the accuracy and the
	// signing time's whole seconds give the benefit of the doubt.
	if r.Timestamp != nil && r.SigningTime != nil &&
		r.SigningTime.After(r.Timestamp.GenTime.Add(r.Timestamp.Accuracy+time.Second)) {
		r.fail(fault.New(fault.Invalid, CodeTimestampBeforeSigningTime, "the signing time %s is after the signature timestamp %s",
			r.SigningTime.UTC().Format(time.RFC3339), r.Timestamp.GenTime.Format(time.RFC3339)))
	}

	r.Valid = len(r.Errors) == 0
	if r.Valid && r.SigningCertificateV2Matches {
		r.Level = signing.LevelBB
		if r.Timestamp != nil {
			r.Level = signing.LevelBT
		}
	}
	if !r.Valid {
		return r, fault.New(fault.Invalid, r.Errors[0].Code, "%s", r.Errors[0].Message)
	}
	return r, nil
}

// verifySignatureTimestamp checks the signature-time-stamp attribute, if
// any, with the authority's chain valid at at. It returns nil and no error
// when there is none.
func verifySignatureTimestamp(p *parsedCMS, opts VerifyOptions, at time.Time) (*TimestampInfo, error) {
	v, ok := findAttr(p.unsigned, oidAttrTimestampToken)
	if !ok {
		return nil, nil
	}
	parsed, err := ParseTimestampToken(v.FullBytes)
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeTimestampInvalid, "the signature timestamp cannot be decoded")
	}
	roots := opts.TSARoots
	if roots == nil {
		roots = opts.Roots
	}
	return VerifyTimestampToken(v.FullBytes, hashOf(parsed.hash, p.signature), parsed.hash,
		TimestampVerifyOptions{Roots: roots, Intermediates: opts.Intermediates, At: at})
}

// contentDigestFor returns the digest of the signed content with the
// signature's digest algorithm.
func contentDigestFor(ctx context.Context, p *parsedCMS, c SignedContent) ([]byte, error) {
	switch {
	case c.Reader != nil:
		h := p.hash.New()
		if _, err := signing.CopyContext(ctx, h, c.Reader); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	case c.Digest != nil:
		if c.Hash != p.hash {
			return nil, fault.New(fault.Invalid, CodeDigestMismatch, "the document digest given is %s, the signature uses %s", c.Hash, p.hash)
		}
		return c.Digest, nil
	case p.content != nil:
		return hashOf(p.hash, p.content), nil
	}
	return nil, fault.New(fault.Invalid, signing.CodeInputUnreadable, "the signature is detached and no document was given")
}

func atOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// CheckContainer checks the parts of a verified CMS signature (der, with
// its report rep) that its signature value does not cover, for formats in
// which they are still part of a signed file, as in a PDF:
// the SignedData and SignerInfo versions (RFC 5652 §5.1, §5.3), the digest
// algorithms list naming the signer's, and every certificate carried being
// in the verified chain or chaining to a trusted root itself (the chain is
// built from the trusted roots, so a damaged copy of a root inside the
// signature would otherwise go unnoticed).
func CheckContainer(der []byte, rep *Report, opts VerifyOptions) error {
	var ci contentInfoASN
	var sd signedDataASN
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return malformed(err, "the signature is not a DER CMS ContentInfo")
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(sd.SignerInfos) != 1 {
		return malformed(err, "the CMS SignedData cannot be decoded")
	}
	si := sd.SignerInfos[0]
	bySKI := si.SID.Class == asn1.ClassContextSpecific
	if (sd.Version != 1 && sd.Version != 3) || (sd.Version == 1 && bySKI) || (si.Version != 1 && si.Version != 3) || (si.Version == 3) != bySKI {
		return malformed(nil, "the SignedData version %d or SignerInfo version %d does not fit its signer identifier", sd.Version, si.Version)
	}
	listed := false
	for _, a := range sd.DigestAlgorithms {
		listed = listed || a.Algorithm.Equal(si.DigestAlgorithm.Algorithm)
	}
	if !listed {
		return malformed(nil, "the SignedData digest algorithms do not list the signer's %s", si.DigestAlgorithm.Algorithm)
	}
	algs := append([]pkix.AlgorithmIdentifier{si.DigestAlgorithm}, sd.DigestAlgorithms...)
	if !si.SignatureAlgorithm.Algorithm.Equal(oidRSAPSS) {
		algs = append(algs, si.SignatureAlgorithm)
	}
	for _, a := range algs {
		// Only RSASSA-PSS has parameters; the others have none or NULL.
		if p := a.Parameters.FullBytes; len(p) > 0 && !bytes.Equal(p, asn1.NullBytes) {
			return malformed(nil, "algorithm %s carries unexpected parameters", a.Algorithm)
		}
	}
	p, err := parseCMS(der)
	if err != nil {
		return err
	}
	inChain := map[string]bool{}
	for _, c := range rep.Chain {
		inChain[c.SHA256] = true
	}
	pool := x509.NewCertPool()
	if opts.Intermediates != nil {
		pool = opts.Intermediates.Clone()
	}
	for _, c := range p.certs {
		pool.AddCert(c)
	}
	for _, c := range p.certs {
		if inChain[Fingerprint(c)] {
			continue
		}
		at := rep.ChainValidatedAt
		if at.IsZero() {
			at = atOrNow(opts.At)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: opts.Roots, Intermediates: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fault.Wrap(err, fault.Invalid, CodeEmbeddedCert, "certificate %q carried in the signature does not chain to a trusted root", c.Subject.String())
		}
	}
	return nil
}
