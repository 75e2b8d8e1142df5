package signing

import (
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"time"

	"github.com/sealgate/sealgate/fault"
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

// CMSVerifyOptions controls VerifyCMS.
type CMSVerifyOptions struct {
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

// CMSReport is what VerifyCMS found. PAdES verification and `sealgate
// verify` extend it; it marshals to the camelCase JSON of verification reports.
type CMSReport struct {
	// Valid is true when the signature verifies over the document, the signer
	// chains to a trusted root and any timestamp verifies.
	Valid bool `json:"valid"`
	// Level is the baseline level reached; empty when invalid or when the
	// signature lacks signing-certificate-v2.
	Level Level `json:"level,omitempty"`
	// Signer is the signer certificate's subject.
	Signer string `json:"signer,omitempty"`
	// SignerCertificate is the certificate the signature names.
	SignerCertificate *x509.Certificate `json:"-"`
	// Chain is the verified chain, signer first, root last.
	Chain []CertificateInfo `json:"chain,omitempty"`
	// ChainValidatedAt is the time the signer's chain was checked at: the
	// verified signature timestamp's genTime if there is one (the
	// signature existed then), else CMSVerifyOptions.At or now. Zero when
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

func (r *CMSReport) fail(err error) {
	if e := fault.As(err); e != nil {
		r.Errors = append(r.Errors, Finding{Code: e.Code, Message: e.Msg})
		return
	}
	r.Errors = append(r.Errors, Finding{Code: fault.CodeInternal, Message: err.Error()})
}

// VerifyCMS verifies a CMS signature made by one signer, BER or DER: the
// message digest against content, the signature with the signer
// certificate, the signing-certificate-v2 attribute, the signature
// timestamp (whose imprint must be the hash of the signature value, its
// authority's chain valid at opts.At) and the certificate's chain to
// opts.Roots, valid at the timestamp's genTime when the timestamp verifies
// and at opts.At otherwise. It returns a report whenever the signature can be
// decoded; when the signature is not valid the error is the first finding.
// Undecodable signatures give cms_malformed, unreadable content input_unreadable.
func VerifyCMS(ctx context.Context, sig []byte, content SignedContent, opts CMSVerifyOptions) (*CMSReport, error) {
	p, err := parseCMS(sig)
	if err != nil {
		return nil, err
	}
	r := &CMSReport{
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
		r.Level = LevelBB
		if r.Timestamp != nil {
			r.Level = LevelBT
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
func verifySignatureTimestamp(p *parsedCMS, opts CMSVerifyOptions, at time.Time) (*TimestampInfo, error) {
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
		if _, err := copyContext(ctx, h, c.Reader); err != nil {
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
	return nil, fault.New(fault.Invalid, CodeInputUnreadable, "the signature is detached and no document was given")
}

func atOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// copyContext copies src to dst until EOF, stopping when ctx is done. A
// failing src gives input_unreadable.
func copyContext(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	n, err := io.CopyBuffer(dst, contextReader{ctx, src}, make([]byte, 64<<10))
	if ctxErr := ctx.Err(); ctxErr != nil {
		return n, ctxErr
	}
	if err != nil {
		return n, fault.Wrap(err, fault.Invalid, CodeInputUnreadable, "the document could not be read after %d bytes", n)
	}
	return n, nil
}

// contextReader ends a read loop once its context is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
