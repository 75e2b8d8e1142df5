package trust_test

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/tltest"
	"github.com/sealgate/sealgate/trust"
)

// FuzzParseList: a trusted list comes from the network and is parsed (to
// find its signature, and then what the signature covers) before anything
// about it is trusted. Whatever the bytes, parsing and checking the
// signature end in a list or an error, never a panic; a list that parses
// has its times in UTC.
func FuzzParseList(f *testing.F) {
	ca, err := devpki.NewCA("Fuzz QTSP")
	if err != nil {
		f.Fatal(err)
	}
	signer := tltest.NewSigner(f, f.TempDir(), "fuzz-signer")
	national := tltest.NationalList(tltest.National{Territory: "DE", Sequence: 3, Provider: "Fuzz QTSP", Services: []tltest.Service{{
		Name: "CA", Cert: ca.Cert, AdditionalInfo: []string{tltest.ForeSeals},
		History:        []tltest.Status{{Status: tltest.StatusWithdrawn, Start: time.Now()}, {Status: tltest.StatusGranted, Start: time.Now().Add(-time.Hour)}},
		Qualifications: []tltest.Qualification{{Qualifiers: []string{tltest.Qualifier + "QCWithQSCD"}, KeyUsage: true, Policies: []string{"0.4.0.194112.1.3"}}},
	}}})
	f.Add(national)
	f.Add(tltest.Sign(f, national, signer))
	f.Add(tltest.LOTL(1, []tltest.Pointer{{Territory: "AT", Location: "https://tl.example/at.xml", Signer: signer.Cert}}))
	f.Add(bytes.Replace(national, []byte(`assert="all"`), []byte(`assert="none"`), 1))
	f.Add([]byte(`<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#"><SchemeInformation><TSLSequenceNumber>1</TSLSequenceNumber><ListIssueDateTime>2024-01-01T00:00:00Z</ListIssueDateTime></SchemeInformation></TrustServiceStatusList>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := trust.ParseList(b); err == nil {
			if l.Issued.Location() != time.UTC || l.NextUpdate.Location() != time.UTC {
				t.Errorf("times not in UTC: %v %v", l.Issued, l.NextUpdate)
			}
		}
		if l, _, err := trust.VerifyList(b, nil); err == nil || l != nil {
			t.Errorf("verified with no signer: %v", err)
		}
		trust.VerifyList(b, []*x509.Certificate{signer.Cert})
	})
}
