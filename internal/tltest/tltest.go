// Package tltest writes the small EU trusted lists (ETSI TS 119 612) that
// sealgate's qualification tests run on — a List of the Trusted Lists and
// national lists — and signs them with xmlsec1, so that the signatures the
// verifier checks are made by another implementation of XML-DSig.
package tltest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
)

// URIs of TS 119 612 the tests use.
const (
	StatusGranted   = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
	StatusWithdrawn = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn"
	TypeCAQC        = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
	ForeSeals       = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSeals"
	ForeSignatures  = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSignatures"
	Qualifier       = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/" // + QCWithQSCD, NotQualified, ...
)

// Signer is a trusted-list signing key (RSA, as xmlsec1 signs everywhere)
// and its self-signed certificate, also written as PEM files.
type Signer struct {
	Cert     *x509.Certificate
	Key      *rsa.PrivateKey
	CertFile string
	KeyFile  string
}

// NewSigner makes a signer named cn with its files in dir.
func NewSigner(t testing.TB, dir, cn string) Signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Country: []string{"EU"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s := Signer{Cert: cert, Key: key, CertFile: filepath.Join(dir, cn+".pem"), KeyFile: filepath.Join(dir, cn+"-key.pem")}
	if err := devpki.WriteCertsPEM(s.CertFile, cert); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteKeyPEM(s.KeyFile, key); err != nil {
		t.Fatal(err)
	}
	return s
}

// Status is a service status from Start on.
type Status struct {
	Status string
	Start  time.Time
}

// Qualification is one qualifier extension: Qualifiers apply to
// certificates with the nonRepudiation key usage (when KeyUsage) and all
// of Policies.
type Qualification struct {
	Qualifiers []string
	KeyUsage   bool
	Policies   []string
}

// Service is a trust service; History is newest first (History[0] is the
// current status). Type defaults to CA/QC.
type Service struct {
	Name           string
	Type           string
	Cert           *x509.Certificate
	History        []Status
	AdditionalInfo []string
	Qualifications []Qualification
}

// National is a national trusted list of one provider.
type National struct {
	Territory string
	Sequence  int
	Provider  string
	Services  []Service
}

// Pointer is the LOTL's entry for a national list.
type Pointer struct {
	Territory string
	Location  string
	Signer    *x509.Certificate
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func certB64(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }

const header = `<?xml version="1.0" encoding="UTF-8"?>
<tsl:TrustServiceStatusList xmlns:tsl="http://uri.etsi.org/02231/v2#" xmlns:ecc="http://uri.etsi.org/TrstSvc/SvcInfoExt/eSigDir-1999-93-EC-TrustedList/#" xmlns:tslx="http://uri.etsi.org/02231/v2/additionaltypes#" xmlns:xades="http://uri.etsi.org/01903/v1.3.2#" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag">
`

func schemeInfo(b *bytes.Buffer, seq int, typ, territory, operator string) {
	now := time.Now().UTC()
	fmt.Fprintf(b, `<tsl:SchemeInformation><tsl:TSLVersionIdentifier>5</tsl:TSLVersionIdentifier><tsl:TSLSequenceNumber>%d</tsl:TSLSequenceNumber>`+
		`<tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/%s</tsl:TSLType>`+
		`<tsl:SchemeOperatorName><tsl:Name xml:lang="en">%s</tsl:Name></tsl:SchemeOperatorName>`+
		`<tsl:SchemeTerritory>%s</tsl:SchemeTerritory><tsl:ListIssueDateTime>%s</tsl:ListIssueDateTime>`+
		`<tsl:NextUpdate><tsl:dateTime>%s</tsl:dateTime></tsl:NextUpdate>`,
		seq, typ, esc(operator), territory, now.Add(-time.Hour).Format(time.RFC3339), now.AddDate(0, 6, 0).Format(time.RFC3339))
}

// LOTL writes a List of the Trusted Lists pointing at the national lists.
func LOTL(seq int, pointers []Pointer) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	schemeInfo(&b, seq, "EUlistofthelists", "EU", "European Commission (test)")
	b.WriteString(`<tsl:PointersToOtherTSL>`)
	for _, p := range pointers {
		fmt.Fprintf(&b, `<tsl:OtherTSLPointer><tsl:ServiceDigitalIdentities><tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>%s</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity></tsl:ServiceDigitalIdentities>`+
			`<tsl:TSLLocation>%s</tsl:TSLLocation><tsl:AdditionalInformation>`+
			`<tsl:OtherInformation><tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric</tsl:TSLType></tsl:OtherInformation>`+
			`<tsl:OtherInformation><tsl:SchemeTerritory>%s</tsl:SchemeTerritory></tsl:OtherInformation>`+
			`<tsl:OtherInformation><tslx:MimeType>application/vnd.etsi.tsl+xml</tslx:MimeType></tsl:OtherInformation>`+
			`</tsl:AdditionalInformation></tsl:OtherTSLPointer>`, certB64(p.Signer), esc(p.Location), p.Territory)
	}
	b.WriteString(`</tsl:PointersToOtherTSL></tsl:SchemeInformation>`)
	b.WriteString(signatureTemplate + `</tsl:TrustServiceStatusList>`)
	return b.Bytes()
}

// NationalList writes a national trusted list.
func NationalList(n National) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	schemeInfo(&b, n.Sequence, "EUgeneric", n.Territory, n.Territory+" supervisory body (test)")
	b.WriteString(`</tsl:SchemeInformation><tsl:TrustServiceProviderList><tsl:TrustServiceProvider>`)
	fmt.Fprintf(&b, `<tsl:TSPInformation><tsl:TSPName><tsl:Name xml:lang="en">%s</tsl:Name></tsl:TSPName></tsl:TSPInformation><tsl:TSPServices>`, esc(n.Provider))
	for _, s := range n.Services {
		typ := s.Type
		if typ == "" {
			typ = TypeCAQC
		}
		b.WriteString(`<tsl:TSPService>`)
		for i, st := range s.History {
			el := "ServiceInformation"
			if i == 1 {
				b.WriteString(`<tsl:ServiceHistory>`)
			}
			if i > 0 {
				el = "ServiceHistoryInstance"
			}
			fmt.Fprintf(&b, `<tsl:%s><tsl:ServiceTypeIdentifier>%s</tsl:ServiceTypeIdentifier><tsl:ServiceName><tsl:Name xml:lang="en">%s</tsl:Name></tsl:ServiceName>`+
				`<tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>%s</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity>`+
				`<tsl:ServiceStatus>%s</tsl:ServiceStatus><tsl:StatusStartingTime>%s</tsl:StatusStartingTime>`,
				el, typ, esc(s.Name), certB64(s.Cert), st.Status, st.Start.UTC().Format(time.RFC3339))
			extensions(&b, s)
			fmt.Fprintf(&b, `</tsl:%s>`, el)
		}
		if len(s.History) > 1 {
			b.WriteString(`</tsl:ServiceHistory>`)
		}
		b.WriteString(`</tsl:TSPService>`)
	}
	b.WriteString(`</tsl:TSPServices></tsl:TrustServiceProvider></tsl:TrustServiceProviderList>`)
	b.WriteString(signatureTemplate + `</tsl:TrustServiceStatusList>`)
	return b.Bytes()
}

func extensions(b *bytes.Buffer, s Service) {
	if len(s.AdditionalInfo) == 0 && len(s.Qualifications) == 0 {
		return
	}
	b.WriteString(`<tsl:ServiceInformationExtensions>`)
	for _, u := range s.AdditionalInfo {
		fmt.Fprintf(b, `<tsl:Extension Critical="false"><tsl:AdditionalServiceInformation><tsl:URI xml:lang="en">%s</tsl:URI></tsl:AdditionalServiceInformation></tsl:Extension>`, u)
	}
	if len(s.Qualifications) > 0 {
		b.WriteString(`<tsl:Extension Critical="true"><ecc:Qualifications>`)
		for _, q := range s.Qualifications {
			b.WriteString(`<ecc:QualificationElement><ecc:Qualifiers>`)
			for _, u := range q.Qualifiers {
				fmt.Fprintf(b, `<ecc:Qualifier uri="%s"/>`, u)
			}
			b.WriteString(`</ecc:Qualifiers><ecc:CriteriaList assert="all">`)
			if q.KeyUsage {
				b.WriteString(`<ecc:KeyUsage><ecc:KeyUsageBit name="nonRepudiation">true</ecc:KeyUsageBit></ecc:KeyUsage>`)
			}
			if len(q.Policies) > 0 {
				b.WriteString(`<ecc:PolicySet>`)
				for _, p := range q.Policies {
					fmt.Fprintf(b, `<ecc:PolicyIdentifier><xades:Identifier Qualifier="OIDAsURN">urn:oid:%s</xades:Identifier></ecc:PolicyIdentifier>`, p)
				}
				b.WriteString(`</ecc:PolicySet>`)
			}
			b.WriteString(`</ecc:CriteriaList></ecc:QualificationElement>`)
		}
		b.WriteString(`</ecc:Qualifications></tsl:Extension>`)
	}
	b.WriteString(`</tsl:ServiceInformationExtensions>`)
}

// signatureTemplate is the enveloped XML-DSig xmlsec1 fills in: RSA-SHA256
// over the whole list, exclusive canonicalization, the signer's certificate
// in KeyInfo (TS 119 612 §5.7).
const signatureTemplate = `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="tsl-signature"><ds:SignedInfo>` +
	`<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
	`<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
	`<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
	`<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>` +
	`<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>` +
	`<ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>`

// Sign signs a list written by LOTL or NationalList with xmlsec1.
func Sign(t testing.TB, list []byte, s Signer) []byte {
	t.Helper()
	if _, err := exec.LookPath("xmlsec1"); err != nil {
		t.Fatal("xmlsec1 is needed to sign the test's trusted lists: apt-get install xmlsec1")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.xml"), filepath.Join(dir, "out.xml")
	if err := os.WriteFile(in, list, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xmlsec1", "--sign", "--privkey-pem", s.KeyFile+","+s.CertFile, "--output", out, in)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
