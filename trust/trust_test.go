package trust_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/tltest"
	"github.com/sealgate/sealgate/trust"
)

// world is a small EU: a LOTL (a file) pinned to its signer, pointing at a
// German list served over HTTP and signed by the German operator.
type world struct {
	dir      string
	ca       *devpki.CA
	lotl     tltest.Signer
	national tltest.Signer
	// served is the German list the HTTP server answers with.
	served atomic.Pointer[[]byte]
	srv    *httptest.Server
	cfg    trust.Config
}

func newWorld(t *testing.T, services func(ca *devpki.CA) []tltest.Service) *world {
	t.Helper()
	w := &world{dir: t.TempDir()}
	var err error
	if w.ca, err = devpki.NewCA("Example QTSP"); err != nil {
		t.Fatal(err)
	}
	w.lotl = tltest.NewSigner(t, w.dir, "lotl-signer")
	w.national = tltest.NewSigner(t, w.dir, "de-signer")
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b := w.served.Load()
		if b == nil {
			http.Error(rw, "gone", http.StatusServiceUnavailable)
			return
		}
		rw.Write(*b)
	}))
	t.Cleanup(w.srv.Close)
	w.serve(tltest.Sign(t, tltest.NationalList(tltest.National{Territory: "DE", Sequence: 7, Provider: "Example QTSP GmbH", Services: services(w.ca)}), w.national))
	lotl := tltest.Sign(t, tltest.LOTL(300, []tltest.Pointer{{Territory: "DE", Location: w.srv.URL + "/de.xml", Signer: w.national.Cert}}), w.lotl)
	lotlFile := filepath.Join(w.dir, "eu-lotl.xml")
	if err := os.WriteFile(lotlFile, lotl, 0o644); err != nil {
		t.Fatal(err)
	}
	w.cfg = trust.Config{LOTL: lotlFile, LOTLCertificates: []string{w.lotl.CertFile}, Refresh: time.Hour, Timeout: 10 * time.Second, CacheDir: filepath.Join(w.dir, "cache")}
	return w
}

func (w *world) serve(b []byte) { w.served.Store(&b) }

func (w *world) open(t *testing.T) *trust.Lists {
	t.Helper()
	l, err := trust.Open(context.Background(), w.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// grantedCA is the development CA as a granted CA/QC for seals.
func grantedCA(ca *devpki.CA) []tltest.Service {
	return []tltest.Service{{
		Name: "Example QTSP qualified seal CA", Cert: ca.Cert,
		History:        []tltest.Status{{Status: tltest.StatusGranted, Start: time.Now().Add(-48 * time.Hour)}},
		AdditionalInfo: []string{tltest.ForeSeals},
		// Certificates under QCP-l-qscd have their key on a QSCD, whatever they say.
		Qualifications: []tltest.Qualification{{Qualifiers: []string{tltest.Qualifier + "QCWithQSCD"}, KeyUsage: true, Policies: []string{"0.4.0.194112.1.3"}}},
	}}
}

// qcpLQSCD is the policy QCP-l-qscd.
var qcpLQSCD = func() x509.OID {
	oid, err := x509.OIDFromInts([]uint64{0, 4, 0, 194112, 1, 3})
	if err != nil {
		panic(err)
	}
	return oid
}()

// issue makes a seal certificate of the CA with the QC statements of claims.
func issue(t *testing.T, ca *devpki.CA, claims *trust.CertificateClaims, policies ...x509.OID) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "Example Manufacturing GmbH Seal", Organization: []string{"Example Manufacturing GmbH"}, Country: []string{"DE"},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 97}, Value: "VATDE-123456789"}}},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		Policies: policies,
	}
	if claims != nil {
		ext, err := claims.Extension()
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{ext}
	}
	cert, err := ca.Issue(key.Public(), 24*time.Hour, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func qualify(l *trust.Lists, ca *devpki.CA, cert *x509.Certificate, at time.Time) trust.Qualification {
	return l.Qualify(trust.Input{Chain: []*x509.Certificate{cert, ca.Cert}, Valid: true, At: at, Timestamped: true})
}

// TestQualificationVerdicts: what a seal certificate states, read against a
// granted CA/QC for seals, gives the verdict of TS 119 615 / 119 172-4.
func TestQualificationVerdicts(t *testing.T) {
	w := newWorld(t, grantedCA)
	l := w.open(t)
	now := time.Now()
	devKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	devSeal, err := w.ca.IssueSeal(devKey.Public(), devpki.SealSubject{Organization: "Example Manufacturing GmbH"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cert   *x509.Certificate
		valid  bool
		want   trust.Level
		reason string
	}{
		{"QcCompliance, QcSSCD, QcType eseal", issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}, LegalPerson: true}), true, trust.QESeal, "the private key is on a qualified creation device"},
		{"without QcSSCD", issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcTypes: []string{trust.QcTypeESeal}}), true, trust.AdESealQC, "no QcSSCD"},
		{"without QcSSCD under QCP-l-qscd: the list's QCWithQSCD applies", issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcTypes: []string{trust.QcTypeESeal}}, qcpLQSCD), true, trust.QESeal, "0.4.0.194112.1.3 (QCP-l-qscd)"},
		{"no QC statements, a legal person", issue(t, w.ca, nil), true, trust.AdESeal, "the certificate is not a qualified certificate"},
		{"for signatures from a CA for seals only", issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESign}}), true, trust.NotQualified, "issues qualified certificates only for ForeSeals"},
		{"invalid signature", issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}}), false, trust.NotQualified, "the signature is not valid"},
		{"development seal", devSeal, true, trust.Development, devpki.NotQualified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := l.Qualify(trust.Input{Chain: []*x509.Certificate{tc.cert, w.ca.Cert}, Valid: tc.valid, At: now, Timestamped: true})
			if q.Level != tc.want || !strings.Contains(strings.Join(q.Reasons, "\n"), tc.reason) {
				t.Fatalf("level %q, reasons:\n%s\nwant %q and a reason with %q", q.Level, strings.Join(q.Reasons, "\n"), tc.want, tc.reason)
			}
			if q.Words == "" || q.AtSource != "signatureTimestamp" || !q.At.Equal(now.UTC()) {
				t.Errorf("words %q, at %s (%s)", q.Words, q.At, q.AtSource)
			}
			if tc.want == trust.QESeal || tc.want == trust.AdESealQC {
				s := q.Service
				if s == nil || s.Territory != "DE" || s.Sequence != 7 || s.Name != "Example QTSP qualified seal CA" || s.Status != tltest.StatusGranted || s.Type != tltest.TypeCAQC {
					t.Errorf("service %+v", s)
				}
			}
		})
	}
	// The claims are read back as written.
	c := trust.ReadClaims(issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}, LegalPerson: true,
		QcCClegislation: []string{"CH"}, QcPDS: []trust.PDS{{URL: "https://qtsp.example/pds", Language: "en"}}, QcRetentionPeriod: 15}, qcpLQSCD))
	if len(c.QcTypes) != 1 || len(c.QcCClegislation) != 1 || len(c.QcPDS) != 1 || len(c.Policies) != 1 {
		t.Fatalf("claims read back: %+v", c)
	}
	if !c.QcCompliance || !c.QcSSCD || c.QcTypes[0] != "eseal" || !c.LegalPerson || c.OrganizationIdentifier != "VATDE-123456789" ||
		c.QcCClegislation[0] != "CH" || c.QcPDS[0].URL != "https://qtsp.example/pds" || c.QcRetentionPeriod != 15 || c.Policies[0] != "0.4.0.194112.1.3 (QCP-l-qscd)" || len(c.Problems) > 0 {
		t.Fatalf("claims read back: %+v", c)
	}
}

// TestWithdrawnCA: a CA withdrawn before the signing time issues no
// qualified seals from then on; a seal timestamped while it was granted
// stays qualified.
func TestWithdrawnCA(t *testing.T) {
	withdrawn := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	w := newWorld(t, func(ca *devpki.CA) []tltest.Service {
		s := grantedCA(ca)
		s[0].History = []tltest.Status{{Status: tltest.StatusWithdrawn, Start: withdrawn}, {Status: tltest.StatusGranted, Start: time.Now().Add(-48 * time.Hour)}}
		return s
	})
	l := w.open(t)
	cert := issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}})
	q := qualify(l, w.ca, cert, time.Now())
	if q.Level != trust.NotQualified || !strings.Contains(strings.Join(q.Reasons, "\n"), "was withdrawn at the signing time") {
		t.Errorf("signed after the withdrawal: %q %q", q.Level, q.Reasons)
	}
	if q.Service == nil || q.Service.Status != tltest.StatusWithdrawn || !q.Service.StatusSince.Equal(withdrawn) {
		t.Errorf("service %+v", q.Service)
	}
	if q := qualify(l, w.ca, cert, withdrawn.Add(-time.Minute)); q.Level != trust.QESeal {
		t.Errorf("timestamped before the withdrawal: %q %q", q.Level, q.Reasons)
	}
}

// TestTamperedListRefused: a national list whose signature does not verify
// is refused, and a seal it would have qualified is indeterminate; a LOTL
// signed by a certificate that is not pinned is refused as a whole.
func TestTamperedListRefused(t *testing.T) {
	w := newWorld(t, grantedCA)
	good := *w.served.Load()
	w.serve(bytes.Replace(good, []byte("Example QTSP qualified seal CA"), []byte("Example QTSP qualified seal CB"), 1))
	l := w.open(t)
	st := l.Status()
	if len(st.Lists) != 2 || st.Lists[0].Signature != "valid" || st.Lists[1].Signature != "none" || st.Lists[1].Error == nil ||
		st.Lists[1].Error.Code != trust.CodeListInvalid || !strings.Contains(st.Lists[1].Error.Message, "does not verify") {
		t.Fatalf("status %+v", st.Lists)
	}
	cert := issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}})
	q := qualify(l, w.ca, cert, time.Now())
	if q.Level != trust.Indeterminate || q.Words != "the qualification could not be determined" || !strings.Contains(strings.Join(q.Reasons, "\n"), "trusted_list_invalid") {
		t.Errorf("with the German list refused: %q %q %q", q.Level, q.Words, q.Reasons)
	}
	// The good list, served again, is taken at the next refresh.
	w.serve(good)
	if st := l.Refresh(context.Background()); st.Lists[1].Signature != "valid" || st.Lists[1].Error != nil || st.Lists[1].Sequence != 7 {
		t.Fatalf("after refresh %+v", st.Lists[1])
	}
	if q := qualify(l, w.ca, cert, time.Now()); q.Level != trust.QESeal {
		t.Errorf("after refresh: %q %q", q.Level, q.Reasons)
	}

	other := tltest.NewSigner(t, w.dir, "someone-else")
	w.cfg.LOTLCertificates = []string{other.CertFile}
	w.cfg.CacheDir = filepath.Join(w.dir, "cache-2")
	st = w.open(t).Status()
	if len(st.Lists) != 1 || st.Lists[0].Error == nil || st.Lists[0].Error.Code != trust.CodeListInvalid || !strings.Contains(st.Lists[0].Error.Message, "not a certificate this list may be signed with") {
		t.Errorf("LOTL from an unpinned signer: %+v", st.Lists)
	}
}

// TestCacheKeepsLastGoodLists: an offline node keeps its last good lists —
// a refresh that fails keeps them, and a new start reads them from the
// cache directory (verifying them again) with the network gone.
func TestCacheKeepsLastGoodLists(t *testing.T) {
	w := newWorld(t, grantedCA)
	l := w.open(t)
	cert := issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}})
	w.served.Store(nil)
	st := l.Refresh(context.Background())
	if de := st.Lists[1]; de.Signature != "valid" || de.Error == nil || de.Error.Code != trust.CodeListUnavailable || de.Source != "download" {
		t.Fatalf("refresh with the server down: %+v", de)
	}
	if q := qualify(l, w.ca, cert, time.Now()); q.Level != trust.QESeal {
		t.Errorf("with the last good list: %q %q", q.Level, q.Reasons)
	}
	w.srv.Close()
	l2 := w.open(t)
	if de := l2.Status().Lists[1]; de.Source != "cache" || de.Signature != "valid" || de.Sequence != 7 {
		t.Fatalf("started offline: %+v", de)
	}
	if q := qualify(l2, w.ca, cert, time.Now()); q.Level != trust.QESeal {
		t.Errorf("started offline: %q %q", q.Level, q.Reasons)
	}
	// A cached file changed on disk is refused like a download (and, the
	// network gone, no list is held for the territory).
	files, _ := filepath.Glob(filepath.Join(w.cfg.CacheDir, "DE-*.xml"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], bytes.Replace(b, []byte(">7<"), []byte(">8<"), 1), 0o644)
	if de := w.open(t).Status().Lists[1]; de.Signature != "none" || de.Error == nil {
		t.Errorf("changed cache file: %+v", de)
	}
}

// TestTrustAnchors: the lists' CA certificates validate chains.
func TestTrustAnchors(t *testing.T) {
	w := newWorld(t, grantedCA)
	l := w.open(t)
	cert := issue(t, w.ca, nil)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: l.Pool(x509.NewCertPool())}); err != nil {
		t.Errorf("chain to the listed CA: %v", err)
	}
	var nilLists *trust.Lists
	if q := nilLists.Qualify(trust.Input{Chain: []*x509.Certificate{issue(t, w.ca, &trust.CertificateClaims{QcCompliance: true})}, Valid: true, At: time.Now()}); q.Level != trust.Indeterminate {
		t.Errorf("without lists: %q", q.Level)
	}
}
