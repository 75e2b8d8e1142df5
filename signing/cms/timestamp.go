package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// tstInfoASN is the RFC 3161 §2.4.2 TSTInfo, the content a timestamp
// authority signs. The tsa package builds it; this package reads it.
type tstInfoASN struct {
	Version        int
	Policy         asn1.ObjectIdentifier
	MessageImprint MessageImprintASN
	SerialNumber   *big.Int
	GenTime        time.Time        `asn1:"generalized"`
	Accuracy       accuracyASN      `asn1:"optional"`
	Ordering       bool             `asn1:"optional,default:false"`
	Nonce          *big.Int         `asn1:"optional"`
	TSA            asn1.RawValue    `asn1:"explicit,optional,tag:0"`
	Extensions     []pkix.Extension `asn1:"optional,tag:1"`
}

// MessageImprintASN is the hash of the timestamped data (RFC 3161 §2.4.1).
type MessageImprintASN struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	HashedMessage []byte
}

// accuracyASN is the RFC 3161 Accuracy; absent fields are zero.
type accuracyASN struct {
	Seconds int64 `asn1:"optional"`
	Millis  int64 `asn1:"optional,tag:0"`
	Micros  int64 `asn1:"optional,tag:1"`
}

func (a accuracyASN) duration() time.Duration {
	return time.Duration(a.Seconds)*time.Second + time.Duration(a.Millis)*time.Millisecond + time.Duration(a.Micros)*time.Microsecond
}

// TimestampInfo describes a verified RFC 3161 timestamp token.
type TimestampInfo struct {
	// GenTime is when the authority issued the token.
	GenTime time.Time `json:"genTime"`
	// Accuracy is ± around GenTime; zero when the token does not say.
	Accuracy time.Duration `json:"accuracyNanos,omitempty"`
	// SerialNumber is the token's serial, in decimal.
	SerialNumber string `json:"serialNumber"`
	// Policy is the TSA policy OID.
	Policy string `json:"policy"`
	// Hash is the imprint's hash algorithm, e.g. "SHA-256".
	Hash string `json:"hash"`
	// Imprint is the timestamped digest.
	Imprint []byte `json:"imprint"`
	// Nonce echoes the request's nonce, if any.
	Nonce *big.Int `json:"-"`
	// TSA is the authority certificate's subject.
	TSA string `json:"tsa"`
	// Certificate is the authority's certificate.
	Certificate *x509.Certificate `json:"-"`
	// Chain is the authority's verified chain, its certificate first.
	Chain []CertificateInfo `json:"chain,omitempty"`

	hash crypto.Hash
}

// HashFunc is the imprint's hash algorithm.
func (t *TimestampInfo) HashFunc() crypto.Hash { return t.hash }

// coversImprint reports whether the token's message imprint is digest made with hash.
func (t *TimestampInfo) coversImprint(digest []byte, hash crypto.Hash) bool {
	return t.hash == hash && bytes.Equal(t.Imprint, digest)
}

// TimestampVerifyOptions controls VerifyTimestampToken.
type TimestampVerifyOptions struct {
	// Roots are the trusted roots for the authority's certificate; nil means the system roots.
	Roots *x509.CertPool
	// Intermediates help build the chain besides the certificates in the token.
	Intermediates *x509.CertPool
	// At is the time the chain is checked at; zero means the token's genTime.
	At time.Time
	// Certificates are candidates for the authority's certificate, for
	// tokens requested without certReq, which carry none.
	Certificates []*x509.Certificate
}

// timestampToken is a parsed, not yet verified token.
type timestampToken struct {
	cms  *parsedCMS
	info *TimestampInfo
}

// parseTimestampToken decodes a TimeStampToken and its TSTInfo without
// checking signatures.
func ParseTimestampToken(token []byte) (*TimestampInfo, error) {
	t, err := decodeTimestampToken(token)
	if err != nil {
		return nil, err
	}
	return t.info, nil
}

func decodeTimestampToken(token []byte) (*timestampToken, error) {
	p, err := parseCMS(token)
	if err != nil {
		return nil, err
	}
	if !p.contentType.Equal(oidTSTInfo) || p.content == nil {
		return nil, malformed(nil, "the timestamp token does not encapsulate a TSTInfo (content type %s)", p.contentType)
	}
	var tst tstInfoASN
	if rest, err := asn1.Unmarshal(p.content, &tst); err != nil || len(rest) > 0 || tst.Version != 1 {
		return nil, malformed(err, "the timestamp token's TSTInfo cannot be decoded")
	}
	h, ok := HashByOID(tst.MessageImprint.HashAlgorithm.Algorithm)
	if !ok {
		return nil, fault.New(fault.Invalid, CodeAlgorithmUnsupported, "timestamp imprint hash %s is not supported", tst.MessageImprint.HashAlgorithm.Algorithm)
	}
	info := &TimestampInfo{
		GenTime:      tst.GenTime.UTC(),
		Accuracy:     tst.Accuracy.duration(),
		SerialNumber: tst.SerialNumber.String(),
		Policy:       tst.Policy.String(),
		Hash:         h.String(),
		Nonce:        tst.Nonce,
		Imprint:      tst.MessageImprint.HashedMessage,
		hash:         h,
	}
	if p.signer != nil {
		info.TSA = p.signer.Subject.String()
		info.Certificate = p.signer
	}
	return &timestampToken{cms: p, info: info}, nil
}

var oidKPTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

// CheckTimestampingEKU reports an error unless cert's extended key usage is
// timeStamping only and critical, as RFC 3161 §2.3 requires of a TSA.
func CheckTimestampingEKU(cert *x509.Certificate) error {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidExtKeyUsage) {
			continue
		}
		var ekus []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(ext.Value, &ekus); err == nil && ext.Critical &&
			len(ekus) == 1 && ekus[0].Equal(oidKPTimeStamping) {
			return nil
		}
		break
	}
	return fault.New(fault.Invalid, CodeTimestampInvalid,
		"certificate %q is not a TSA certificate (a critical extended key usage of timeStamping only is required)", cert.Subject.String())
}

// VerifyTimestampToken verifies an RFC 3161 TimeStampToken over digest
// (made with hash): the TSTInfo's imprint, the authority's signature over
// it, the signing-certificate attribute naming the signer, its critical
// timeStamping key usage, and its chain to opts.Roots.
func VerifyTimestampToken(token, digest []byte, hash crypto.Hash, opts TimestampVerifyOptions) (*TimestampInfo, error) {
	t, err := decodeTimestampToken(token)
	if err != nil {
		return nil, err
	}
	p, info := t.cms, t.info
	if p.signer == nil && len(opts.Certificates) > 0 {
		if p.signer, err = findSigner(p.sid, opts.Certificates); err != nil {
			return nil, err
		}
		p.certs = append(p.certs, opts.Certificates...)
		if p.signer != nil {
			info.TSA, info.Certificate = p.signer.Subject.String(), p.signer
		}
	}
	if !info.coversImprint(digest, hash) {
		return nil, fault.New(fault.Invalid, CodeTimestampInvalid, "the token's %s imprint %x is not the expected %s digest %x", info.Hash, info.Imprint, hash, digest)
	}
	if err := p.checkContentType(); err != nil {
		return nil, err
	}
	if err := p.checkDigest(hashOf(p.hash, p.content)); err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeTimestampInvalid, "the token's TSTInfo is not what its authority signed")
	}
	if err := p.checkSignature(); err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeTimestampInvalid, "the token's signature does not verify")
	}
	present, _, matches, err := p.signingCertificate(p.signer)
	if err != nil {
		return nil, err
	}
	if !present || !matches {
		return nil, fault.New(fault.Invalid, CodeTimestampInvalid, "the token's signing-certificate attribute does not name its signer %q", info.TSA)
	}
	if err := CheckTimestampingEKU(p.signer); err != nil {
		return nil, err
	}
	at := opts.At
	if at.IsZero() {
		at = info.GenTime
	}
	chain, err := verifyChain(p.signer, p.certs, opts.Roots, opts.Intermediates, at, x509.ExtKeyUsageTimeStamping)
	if err != nil {
		return nil, err
	}
	info.Chain = chain
	return info, nil
}

// hashOf returns the h digest of b.
func hashOf(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// CertificateInfo describes one certificate of a verified chain.
type CertificateInfo struct {
	Subject      string    `json:"subject"`
	Issuer       string    `json:"issuer"`
	SerialNumber string    `json:"serialNumber"`
	NotBefore    time.Time `json:"notBefore"`
	NotAfter     time.Time `json:"notAfter"`
	// SHA256 is the fingerprint of the DER certificate, in hex.
	SHA256 string `json:"sha256"`

	cert *x509.Certificate
}

// Certificate is the certificate described, or nil for a description that
// was decoded from JSON.
func (c CertificateInfo) Certificate() *x509.Certificate { return c.cert }

func describeCertificate(c *x509.Certificate) CertificateInfo {
	return CertificateInfo{
		Subject:      c.Subject.String(),
		Issuer:       c.Issuer.String(),
		SerialNumber: c.SerialNumber.Text(16),
		NotBefore:    c.NotBefore.UTC(),
		NotAfter:     c.NotAfter.UTC(),
		SHA256:       Fingerprint(c),
		cert:         c,
	}
}

// verifyChain builds leaf's chain to roots at time at, using the signature's
// own certificates and intermediates, and returns the shortest chain found.
func verifyChain(leaf *x509.Certificate, embedded []*x509.Certificate, roots, intermediates *x509.CertPool, at time.Time, usage x509.ExtKeyUsage) ([]CertificateInfo, error) {
	pool := x509.NewCertPool()
	if intermediates != nil {
		pool = intermediates.Clone()
	}
	for _, c := range embedded {
		if c != leaf {
			pool.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeChainUntrusted, "certificate %q does not chain to a trusted root at %s", leaf.Subject.String(), at.UTC().Format(time.RFC3339))
	}
	shortest := slices.MinFunc(chains, func(a, b []*x509.Certificate) int { return len(a) - len(b) })
	out := make([]CertificateInfo, len(shortest))
	for i, c := range shortest {
		out[i] = describeCertificate(c)
	}
	return out, nil
}
