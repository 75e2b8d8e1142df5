package pades_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
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

// dssEntries opens a sealed file and returns its document security store
// and, for each of its arrays, the data of every entry in order.
func dssEntries(t testing.TB, file []byte) (pdf.Dict, map[pdf.Name][][]byte) {
	t.Helper()
	r, _, cat := signingtest.OpenCatalog(t, file)
	dss, err := r.Dict(cat["DSS"])
	if err != nil || dss == nil {
		t.Fatalf("no /DSS in the catalog: %v", err)
	}
	entries := map[pdf.Name][][]byte{}
	for _, key := range []pdf.Name{"Certs", "OCSPs", "CRLs"} {
		arr, err := r.Array(dss[key])
		if err != nil {
			t.Fatalf("/DSS /%s: %v", key, err)
		}
		for _, o := range arr {
			so, err := r.Resolve(o)
			st, ok := so.(*pdf.Stream)
			if err != nil || !ok {
				t.Fatalf("/DSS /%s entry %v is not a stream: %v", key, o, err)
			}
			data, err := r.StreamData(st)
			if err != nil {
				t.Fatalf("/DSS /%s entry %v: %v", key, o, err)
			}
			entries[key] = append(entries[key], data)
		}
	}
	return dss, entries
}

// dssCounts opens a sealed file and counts the entries of its document
// security store.
func dssCounts(t testing.TB, file []byte) (certs, ocsps, crls int) {
	t.Helper()
	_, e := dssEntries(t, file)
	return len(e["Certs"]), len(e["OCSPs"]), len(e["CRLs"])
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

// Repeated seals extend the document security store instead of copying
// it (ETSI EN 319 142-1 §5.4, ISO 32000-2 §12.8.4.3): three B-LT seals and
// a B-LTA seal store each certificate, OCSP response and CRL once, keep
// the streams and the /VRI an earlier revision wrote, and every seal
// reaches its level with pdfsig, qpdf, pdfcpu and the verifier content.
func TestPAdESDSSReuse(t *testing.T) {
	p := signingtest.SharedPKI(t)
	s := newCRLSeal(t, p)
	ts := publishedTSA(t, p, s)
	tests := []struct {
		name        string
		rev         pades.RevocationOptions
		ocsps, crls int  // in the final store
		vri         bool // another producer adds a /VRI after the first seal
	}{
		// The same CRL covers the seal and the authority: after the
		// first seal, the store holds everything the later ones need.
		{"configured CRL", pades.RevocationOptions{CRLs: [][]byte{s.crl}}, 0, 1, true},
		// Each seal fetches a fresh OCSP response for its certificate
		// and the same CRL for the authority's.
		{"fetched", pades.RevocationOptions{HTTPClient: s.srv.Client()}, 4, 1, false},
	}
	levels := []signing.Level{signing.LevelBLT, signing.LevelBLT, signing.LevelBLT, signing.LevelBLTA}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := pdftest.Bytes(pdftest.Spec{})
			var firstCerts pdf.Array
			var vri pdf.Name
			for i, level := range levels {
				var res *pades.Result
				doc, res = signingtest.SealPDF(t, s.key, doc, pades.Options{Level: level, Timestamper: ts, Revocation: tt.rev})
				if res.Level != level || len(res.RevocationUnavailable) != 0 {
					t.Fatalf("seal %d: level %s, revocation unavailable for %q; want %s", i+1, res.Level, res.RevocationUnavailable, level)
				}
				if i == 0 {
					dss, _ := dssEntries(t, doc)
					firstCerts = dss["Certs"].(pdf.Array)
					if tt.vri {
						doc, vri = addVRI(t, doc)
					}
				}
			}
			dss, entries := dssEntries(t, doc)
			for key, ders := range entries {
				distinct := map[string]bool{}
				for _, d := range ders {
					distinct[string(d)] = true
				}
				if len(distinct) != len(ders) {
					t.Errorf("/DSS /%s: %d entries, %d distinct", key, len(ders), len(distinct))
				}
			}
			if c, o, l := len(entries["Certs"]), len(entries["OCSPs"]), len(entries["CRLs"]); c != 3 || o != tt.ocsps || l != tt.crls {
				t.Errorf("DSS holds %d certificates, %d OCSP responses, %d CRLs; want 3, %d, %d", c, o, l, tt.ocsps, tt.crls)
			}
			if certs := dss["Certs"].(pdf.Array); len(certs) < len(firstCerts) || !reflect.DeepEqual(certs[:len(firstCerts)], firstCerts) {
				t.Errorf("/DSS /Certs %v does not keep the first seal's %v", certs, firstCerts)
			}
			if v, ok := dss["VRI"].(pdf.Dict); tt.vri && (!ok || v[vri] == nil) {
				t.Errorf("/DSS /VRI %v lost the entry %s", dss["VRI"], vri)
			}
			signingtest.CheckIndependently(t, doc, len(levels)+1)
			// pdfcpu 0.15 does not know /VRI: it calls the entry
			// unsupported and every signature's validity unknown.
			if !tt.vri {
				out := pdfcpuValidate(t, doc, p.CAFile(t))
				if strings.Count(out, "Status: signature is valid") != len(levels)+1 || strings.Contains(out, "DocModified: true") {
					t.Errorf("pdfcpu: want %d valid signatures:\n%s", len(levels)+1, out)
				}
			}
			rep, err := verifyPDF(t, doc, p)
			if err != nil || !rep.Valid {
				t.Fatalf("VerifyPDF: %v, %+v", err, rep)
			}
			for _, sig := range rep.Signatures {
				// The document timestamp covers every seal and the store.
				if sig.Type == "signature" && sig.Level != signing.LevelBLTA {
					t.Errorf("signature %s reaches %s, want %s", sig.Field, sig.Level, signing.LevelBLTA)
				}
			}
		})
	}
}

// addVRI appends an update that gives the document security store a /VRI
// entry (ISO 32000-2 §12.8.4.4) for the file's first signature, as other
// producers write, and returns the file and the entry's key.
func addVRI(t testing.TB, file []byte) ([]byte, pdf.Name) {
	t.Helper()
	r, root, cat := signingtest.OpenCatalog(t, file)
	dss, err := r.Dict(cat["DSS"])
	if err != nil || dss == nil {
		t.Fatalf("no /DSS: %v", err)
	}
	sum := sha1.Sum(signingtest.SignatureContents(t, file)[0].DER)
	key := pdf.Name(strings.ToUpper(hex.EncodeToString(sum[:])))
	u := pdf.NewUpdate(r)
	dss = dss.Clone()
	entry := pdf.Dict{}
	for vriKey, dssKey := range map[pdf.Name]pdf.Name{"Cert": "Certs", "CRL": "CRLs", "OCSP": "OCSPs"} {
		if dss[dssKey] != nil {
			entry[vriKey] = dss[dssKey]
		}
	}
	dss["VRI"] = pdf.Dict{key: entry}
	cat = cat.Clone()
	cat["DSS"] = u.Add(dss)
	u.Set(root, cat)
	laid, err := u.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Clone(file), laid.Bytes...), key
}
