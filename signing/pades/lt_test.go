package pades_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
	"github.com/sealgate/sealgate/tsa"
)

// crlSeal is a seal whose certificate names an OCSP responder and a CRL
// distribution point, both served on loopback by its CA.
type crlSeal struct {
	key signing.Key
	crl []byte
	srv *httptest.Server
}

// caCRL is a CRL of the development CA, valid for a day, listing the given
// certificates as revoked an hour ago.
func caCRL(t testing.TB, p *signingtest.PKI, revoked ...*x509.Certificate) []byte {
	t.Helper()
	crl, err := p.CA.CRL(24*time.Hour, revoked...)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func newCRLSeal(t testing.TB, p *signingtest.PKI) *crlSeal {
	t.Helper()
	now := time.Now()
	crl := caCRL(t, p)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ca.crl" {
			w.Header().Set("Content-Type", "application/pkix-crl")
			w.Write(crl)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := ocsp.CreateResponse(p.CA.Cert, p.CA.Cert, ocsp.Response{
			Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		}, p.CA.Key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	signer := p.Signers["ecdsa-p256"]
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "Example Manufacturing GmbH Seal", Organization: []string{"Example Manufacturing GmbH"}, Country: []string{"DE"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{srv.URL + "/ca.crl"},
		OCSPServer:            []string{srv.URL + "/ocsp"},
	}, p.CA.Cert, signer.Public(), p.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	key, err := softkey.New(signer, []*x509.Certificate{cert, p.CA.Cert})
	if err != nil {
		t.Fatal(err)
	}
	return &crlSeal{key: key, crl: crl, srv: srv}
}

// dssCounts opens a sealed file and counts the entries of its document
// security store.
func dssCounts(t testing.TB, file []byte) (certs, ocsps, crls int) {
	t.Helper()
	r, err := pdf.Open(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	_, cat, err := r.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	dss, err := r.Dict(cat["DSS"])
	if err != nil || dss == nil {
		t.Fatalf("no /DSS in the catalog: %v", err)
	}
	c, _ := r.Array(dss["Certs"])
	o, _ := r.Array(dss["OCSPs"])
	l, _ := r.Array(dss["CRLs"])
	return len(c), len(o), len(l)
}

// B-LT embeds an OCSP response fetched from the seal's responder, or a
// configured CRL, with the seal's and the authority's certificates; a
// certificate nothing is found for is reported as lacking revocation data.
func TestPAdESRevocationData(t *testing.T) {
	p := signingtest.SharedPKI(t)
	s := newCRLSeal(t, p)
	a := signingtest.NewTSA(t, p)
	tests := []struct {
		name        string
		rev         pades.RevocationOptions
		ocsps, crls int
		// The CA's CRL covers the authority's certificate too, but only a
		// configured one is found for it: that certificate names no
		// responder or distribution point.
		unavailable []string
	}{
		{"fetched from the OCSP responder", pades.RevocationOptions{HTTPClient: s.srv.Client()}, 1, 0, []string{"Development TSA"}},
		{"configured CRL", pades.RevocationOptions{CRLs: [][]byte{s.crl}}, 0, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, res := signingtest.SealPDF(t, s.key, pdftest.Bytes(pdftest.Spec{}), pades.Options{
				Level: signing.LevelBLT, Timestamper: a.SHA256Client, Revocation: tt.rev,
			})
			if len(res.RevocationUnavailable) != len(tt.unavailable) {
				t.Errorf("revocation unavailable for %q, want %q", res.RevocationUnavailable, tt.unavailable)
			}
			for i, u := range tt.unavailable {
				if i < len(res.RevocationUnavailable) && !strings.Contains(res.RevocationUnavailable[i], u) {
					t.Errorf("revocation unavailable for %q, want %q", res.RevocationUnavailable, tt.unavailable)
				}
			}
			certs, ocsps, crls := dssCounts(t, sealed)
			if certs != 3 || ocsps != tt.ocsps || crls != tt.crls {
				t.Errorf("DSS holds %d certificates, %d OCSP responses, %d CRLs; want 3, %d, %d", certs, ocsps, crls, tt.ocsps, tt.crls)
			}
			signingtest.CheckIndependently(t, sealed, 1)
			// Without revocation data for every certificate but the root,
			// the document reaches B-T only (EN 319 142-1 §6.3), as the
			// result and VerifyPDF both say.
			want := signing.LevelBLT
			if len(tt.unavailable) > 0 {
				want = signing.LevelBT
			}
			rep, err := verifyPDF(t, sealed, p)
			if err != nil || res.Level != want || rep.Signatures[0].Level != want {
				t.Fatalf("result level %s; VerifyPDF: %v, %+v", res.Level, err, rep)
			}
			if missing := rep.Signatures[0].MissingRevocation; len(missing) != len(tt.unavailable) {
				t.Errorf("VerifyPDF misses revocation data for %q, want %q", missing, tt.unavailable)
			}
		})
	}
}

// A certificate that the document's own revocation data shows revoked
// before the signature timestamp makes the signature invalid.
func TestVerifyPDFRevokedSeal(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	a := signingtest.NewTSA(t, p)
	crl := caCRL(t, p, key.Chain()[0])
	sealed, res := signingtest.SealPDF(t, key, pdftest.Bytes(pdftest.Spec{}), pades.Options{
		Level: signing.LevelBLT, Timestamper: a.SHA256Client, Revocation: pades.RevocationOptions{CRLs: [][]byte{crl}},
	})
	if len(res.RevocationUnavailable) != 0 {
		t.Errorf("revocation unavailable for %q", res.RevocationUnavailable)
	}
	rep, err := verifyPDF(t, sealed, p)
	if fault.CodeOf(err) != pades.CodeCertificateRevoked || rep == nil || rep.Valid || rep.Signatures[0].Valid {
		t.Fatalf("VerifyPDF of a revoked seal: %v, %+v", err, rep)
	}
}

// publishedTSA is a timestamp authority whose certificate names the CRL
// distribution point of s's CA.
func publishedTSA(t testing.TB, p *signingtest.PKI, s *crlSeal) *tsa.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "Example Manufacturing GmbH Development TSA", Organization: []string{"Example Manufacturing GmbH"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{s.srv.URL + "/ca.crl"},
		// RFC 3161 §2.3: timeStamping only, and critical.
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}, p.CA.Cert, key.Public(), p.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tsa.NewResponder(key, []*x509.Certificate{cert, p.CA.Cert}, tsa.ResponderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	c, err := tsa.NewClient(tsa.ClientConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With revocation services for the seal and the authority, pdfcpu finds
// every signature and document timestamp valid at each level, and names
// the CAdES profile B-B (the only level it names).
func TestPAdESPdfcpu(t *testing.T) {
	p := signingtest.SharedPKI(t)
	s := newCRLSeal(t, p)
	ts := publishedTSA(t, p, s)
	caPEM := p.CAFile(t)
	corpus := pdftest.Corpus(t)
	for i, level := range []signing.Level{signing.LevelBB, signing.LevelBT, signing.LevelBLT, signing.LevelBLTA} {
		// Each level on two documents of different producers, in turn.
		for _, doc := range []pdftest.Doc{corpus[i%len(corpus)], corpus[(i+4)%len(corpus)]} {
			t.Run(string(level)+"/"+doc.Name, func(t *testing.T) {
				opts := pades.Options{
					Level: level, Timestamper: ts, Revocation: pades.RevocationOptions{HTTPClient: s.srv.Client()},
					Placement: pades.Placement{Page: 1, X: 40, Y: 40, Width: 200, Height: 60},
				}
				if doc.Name == "go-sigfield" {
					// pdfcpu refuses to validate a file with an empty
					// signature field, so this one is filled.
					opts.Field = "Approval"
				}
				sealed, res := signingtest.SealPDF(t, s.key, doc.Data, opts)
				if len(res.RevocationUnavailable) != 0 {
					t.Errorf("revocation unavailable for %q", res.RevocationUnavailable)
				}
				out := pdfcpuValidate(t, sealed, caPEM)
				want := 1
				if level == signing.LevelBLTA {
					want = 2
				}
				if n := strings.Count(out, "Status: signature is valid"); n != want || strings.Contains(out, "DocModified: true") || !strings.Contains(out, "PAdES:          B-B") {
					t.Errorf("pdfcpu: %d valid, want %d:\n%s", n, want, out)
				}
			})
		}
	}
}
