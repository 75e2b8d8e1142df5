package trust

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// VerifyList checks the enveloped XML signature (XML-DSig, as TS 119 612
// §5.7 requires) of a trusted list against signers, the certificates the
// list may be signed with, and parses what the signature covers — only
// that, so content outside the signed element can never be read as part of
// the list. It returns the list and the certificate that signed it.
func VerifyList(b []byte, signers []*x509.Certificate) (*List, *x509.Certificate, error) {
	if len(signers) == 0 {
		return nil, nil, errors.New("no certificate is known that may sign this list")
	}
	if len(b) > maxListSize {
		return nil, nil, fmt.Errorf("the list is larger than %d bytes", maxListSize)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, nil, fmt.Errorf("not XML: %w", err)
	}
	root := doc.Root()
	if root == nil {
		return nil, nil, errors.New("not XML: no root element")
	}
	signer, err := keyInfoSigner(root, signers)
	if err != nil {
		return nil, nil, err
	}
	ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{signer}})
	// TS 119 612 names the list's ID attribute "Id"; references are "" or "#Id".
	ctx.IdAttribute = "Id"
	signed, err := ctx.Validate(root)
	if err != nil {
		return nil, nil, fmt.Errorf("the XML signature does not verify: %w", err)
	}
	out := etree.NewDocument()
	out.SetRoot(signed)
	covered, err := out.WriteToBytes()
	if err != nil {
		return nil, nil, fmt.Errorf("the signed content cannot be read: %w", err)
	}
	l, err := ParseList(covered)
	if err != nil {
		return nil, nil, err
	}
	return l, signer, nil
}

// keyInfoSigner returns the one of signers the signature's KeyInfo names
// (TS 119 612 §5.7.1: the signing certificate is in KeyInfo/X509Data).
func keyInfoSigner(root *etree.Element, signers []*x509.Certificate) (*x509.Certificate, error) {
	el := root.FindElement("./Signature/KeyInfo/X509Data/X509Certificate")
	if el == nil {
		return nil, errors.New("the list is not signed (no ds:Signature with a KeyInfo certificate)")
	}
	der, err := base64.StdEncoding.DecodeString(stripSpace(el.Text()))
	if err != nil {
		return nil, fmt.Errorf("the signature's certificate is not base64: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("the signature's certificate: %w", err)
	}
	for _, s := range signers {
		if s.Equal(cert) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("signed by %q, which is not a certificate this list may be signed with", cert.Subject)
}
