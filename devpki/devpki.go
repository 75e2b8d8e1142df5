// Package devpki issues the development PKI that lets sealgate run out of the
// box: a CA, a seal certificate for an example organisation and a timestamping
// certificate. Everything it makes is marked "development — not qualified" in
// the subject, so it can never be mistaken for a qualified seal.
package devpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// NotQualified is put in the OU of every development certificate.
const NotQualified = "development — not qualified"

// CA is a development certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed ECDSA P-256 development CA valid for ten years.
func NewCA(org string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: org + " Development CA", Organization: []string{org}, OrganizationalUnit: []string{NotQualified}},
		NotBefore:             now,
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// SealSubject names the organisation a seal certificate is issued to.
type SealSubject struct {
	Organization string // e.g. "Example Manufacturing GmbH"
	// OrganizationIdentifier is the eIDAS organisationIdentifier (2.5.4.97),
	// e.g. "VATDE-123456789"; optional.
	OrganizationIdentifier string
	Country                string // ISO 3166 code, e.g. "DE"
}

var oidOrganizationIdentifier = asn1.ObjectIdentifier{2, 5, 4, 97}

// IssueSeal issues a seal certificate for pub, valid for validity.
// Key usage is nonRepudiation (contentCommitment) and digitalSignature, as
// for an eIDAS seal certificate.
func (ca *CA) IssueSeal(pub crypto.PublicKey, subj SealSubject, validity time.Duration) (*x509.Certificate, error) {
	name := pkix.Name{
		CommonName:         subj.Organization + " Seal",
		Organization:       []string{subj.Organization},
		OrganizationalUnit: []string{NotQualified},
	}
	if subj.Country != "" {
		name.Country = []string{subj.Country}
	}
	if subj.OrganizationIdentifier != "" {
		name.ExtraNames = append(name.ExtraNames, pkix.AttributeTypeAndValue{Type: oidOrganizationIdentifier, Value: subj.OrganizationIdentifier})
	}
	return ca.Issue(pub, validity, &x509.Certificate{Subject: name, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment})
}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
var oidKPTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// IssueTSA issues a timestamping certificate for pub. RFC 3161 §2.3 requires
// the extended key usage to be timeStamping only and critical; Go writes EKU
// non-critical, so it is added as a raw extension.
func (ca *CA) IssueTSA(pub crypto.PublicKey, org string, validity time.Duration) (*x509.Certificate, error) {
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidKPTimeStamping})
	if err != nil {
		return nil, err
	}
	name := pkix.Name{CommonName: org + " Development TSA", Organization: []string{org}, OrganizationalUnit: []string{NotQualified}}
	return ca.Issue(pub, validity, &x509.Certificate{Subject: name, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}}})
}

// IssueServer issues a TLS server certificate for pub naming hosts (DNS
// names or IP addresses) as subject alternative names.
func (ca *CA) IssueServer(pub crypto.PublicKey, hosts []string, validity time.Duration) (*x509.Certificate, error) {
	if len(hosts) == 0 {
		return nil, errors.New("devpki: a server certificate needs at least one host name")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: ca.Cert.Subject.Organization, OrganizationalUnit: []string{NotQualified}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.Issue(pub, validity, tmpl)
}

// IssueClient issues a TLS client certificate for pub with common name cn,
// as a process presents to authenticate (see `sealgate process add-cert`).
func (ca *CA) IssueClient(pub crypto.PublicKey, cn string, validity time.Duration) (*x509.Certificate, error) {
	return ca.Issue(pub, validity, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: ca.Cert.Subject.Organization, OrganizationalUnit: []string{NotQualified}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// CRL issues a certificate revocation list of the CA, valid from an hour
// ago (for clocks that lag) for validity from now, listing the given
// certificates as revoked an hour ago.
func (ca *CA) CRL(validity time.Duration, revoked ...*x509.Certificate) ([]byte, error) {
	now := time.Now()
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now.Add(-time.Hour)})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(now.UnixNano()), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(validity),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
}

// Issue completes tmpl (subject, key usages, extensions) with a serial,
// validity and key identifier, and signs it: the profiles above, and any
// other a caller builds (e.g. test seal certificates with QC statements).
// A negative validity makes a certificate that has already expired (for
// tests of expiry handling).
func (ca *CA) Issue(pub crypto.PublicKey, validity time.Duration, tmpl *x509.Certificate) (*x509.Certificate, error) {
	// Back-dated an hour for clocks that lag; validity counts from now.
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(validity)
	if validity < 0 {
		tmpl.NotBefore = tmpl.NotAfter.Add(-time.Hour)
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.SerialNumber, tmpl.SubjectKeyId, tmpl.BasicConstraintsValid = serial(), keyID(pub), true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("devpki: issue %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// keyID is the RFC 5280 §4.2.1.2 method (1) key identifier.
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	h := sha1.Sum(spki.PublicKey.Bytes)
	return h[:]
}

// WriteCertsPEM writes certificates to path as PEM, leaf first.
func WriteCertsPEM(path string, certs ...*x509.Certificate) error {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return os.WriteFile(path, out, 0o644)
}

// ReadCertsPEM reads every certificate in a PEM file, in order.
func ReadCertsPEM(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCertsPEM(b)
}

// ParseCertsPEM parses every CERTIFICATE block in b, in order.
func ParseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// WriteKeyPEM writes a private key as PKCS#8 PEM readable by the owner only.
func WriteKeyPEM(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// ReadKeyPEM reads a PKCS#8, PKCS#1 or SEC 1 private key PEM file.
func ReadKeyPEM(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", path, k)
	}
	return s, nil
}
