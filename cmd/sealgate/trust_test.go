package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/loopback"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/internal/tltest"
	"github.com/sealgate/sealgate/trust"
)

// TestQualifiedSealVerdict runs the qualification as an operator sees it:
// the development seal gets a certificate with QC statements (QcCompliance,
// QcSSCD, QcType eseal) from the development CA, which a national trusted
// list (signed with xmlsec1, named by a LOTL pinned in sealgate.yaml) lists
// as a granted CA/QC for seals. Its seals are QESeal at their signature
// timestamp — in words from `sealgate verify`, identically in `verify --json`
// and POST /api/v1/verifications; with the national list tampered with,
// the qualification is indeterminate.
func TestQualifiedSealVerdict(t *testing.T) {
	dir, data := initDevelopment(t)
	caCerts, err := devpki.ReadCertsPEM(filepath.Join(data, "pki", "dev-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := devpki.ReadKeyPEM(filepath.Join(data, "pki", "dev-ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca := &devpki.CA{Cert: caCerts[0], Key: caKey}
	chainFile := filepath.Join(data, "pki", "dev-seal-chain.pem")
	chain, err := devpki.ReadCertsPEM(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	// The same key, now with a qualified certificate for seals.
	qc, err := trust.CertificateClaims{QcCompliance: true, QcSSCD: true, QcTypes: []string{trust.QcTypeESeal}, LegalPerson: true}.Extension()
	if err != nil {
		t.Fatal(err)
	}
	subject := chain[0].Subject
	subject.OrganizationalUnit = nil
	subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 97}, Value: "VATDE-000000000"}}
	leaf, err := ca.Issue(chain[0].PublicKey, 365*24*time.Hour, &x509.Certificate{Subject: subject, KeyUsage: chain[0].KeyUsage, ExtraExtensions: []pkix.Extension{qc}})
	if err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(chainFile, leaf, ca.Cert); err != nil {
		t.Fatal(err)
	}

	lotlSigner := tltest.NewSigner(t, dir, "lotl-signer")
	deSigner := tltest.NewSigner(t, dir, "de-signer")
	deFile := filepath.Join(dir, "de-tl.xml")
	deList := tltest.Sign(t, tltest.NationalList(tltest.National{Territory: "DE", Sequence: 7, Provider: "Example QTSP GmbH", Services: []tltest.Service{{
		Name: "Example seal CA", Cert: ca.Cert, AdditionalInfo: []string{tltest.ForeSeals},
		History: []tltest.Status{{Status: tltest.StatusGranted, Start: time.Now().Add(-48 * time.Hour)}},
	}}}), deSigner)
	if err := os.WriteFile(deFile, deList, 0o644); err != nil {
		t.Fatal(err)
	}
	lotlFile := filepath.Join(dir, "eu-lotl.xml")
	if err := os.WriteFile(lotlFile, tltest.Sign(t, tltest.LOTL(300, []tltest.Pointer{{Territory: "DE", Location: deFile, Signer: deSigner.Cert}}), lotlSigner), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(data, "sealgate.yaml")
	f, err := os.OpenFile(cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("trustedLists:\n  lotl: " + lotlFile + "\n  lotlCertificates: [" + lotlSigner.CertFile + "]\n  refresh: 1h\n")
	f.Close()

	doc := filepath.Join(dir, "order.xml")
	os.WriteFile(doc, []byte("<order>7</order>"), 0o644)
	if out, code := sealgateCmd(t, "seal", "--data", data, "--format", "cades", doc); code != 0 {
		t.Fatalf("seal: %d\n%s", code, out)
	}
	out, code := sealgateCmd(t, "verify", "--data", data, "--signature", doc+".p7s", doc)
	if code != 0 || !strings.Contains(out, "eIDAS     the signature: QESeal — qualified electronic seal") || !strings.Contains(out, "at the signature timestamp") ||
		!strings.Contains(out, "trusted list DE (sequence 7): Example QTSP GmbH, Example seal CA — granted since") {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	out, _ = sealgateCmd(t, "trust", "status", "--data", data)
	for _, want := range []string{"EU   " + lotlFile, "sequence 300", "DE   " + deFile, "sequence 7,", "signature valid, signed by CN=de-signer,C=EU"} {
		if !strings.Contains(out, want) {
			t.Errorf("trust status lacks %q:\n%s", want, out)
		}
	}

	cliJSON, _ := sealgateCmd(t, "verify", "--data", data, "--json", "--signature", doc+".p7s", doc)
	cli := qualifications(t, []byte(cliJSON))
	if len(cli) != 1 || cli[0]["qualification"].(map[string]any)["level"] != "QESeal" || cli[0]["qualification"].(map[string]any)["atSource"] != "signatureTimestamp" {
		t.Fatalf("verify --json: %s", cliJSON)
	}
	// PAdES: each signature field has its qualification.
	pdf := filepath.Join(dir, "invoice.pdf")
	os.WriteFile(pdf, pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 7"}}}), 0o644)
	if out, code := sealgateCmd(t, "seal", "--data", data, pdf); code != 0 {
		t.Fatalf("seal PDF: %d\n%s", code, out)
	}
	pdfJSON, _ := sealgateCmd(t, "verify", "--data", data, "--json", filepath.Join(dir, "invoice-sealed.pdf"))
	if q := qualifications(t, []byte(pdfJSON)); len(q) != 1 || q[0]["field"] == "" || q[0]["qualification"].(map[string]any)["level"] != "QESeal" {
		t.Errorf("verify --json of the PDF: %s", pdfJSON)
	}

	d := startServe(t, data, loopback.FreeAddr(t))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	p7s, _ := os.ReadFile(doc + ".p7s")
	w, _ := mw.CreateFormFile("signature", "order.xml.p7s")
	w.Write(p7s)
	w, _ = mw.CreateFormFile("document", "order.xml")
	w.Write([]byte("<order>7</order>"))
	mw.Close()
	resp, err := http.Post(d.url+"/api/v1/verifications", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	restJSON, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rest := qualifications(t, restJSON); !reflect.DeepEqual(rest, cli) {
		t.Errorf("REST and CLI differ:\nREST %s\nCLI  %s", restJSON, cliJSON)
	}
	// Stopped, so that its refresh cannot cache the list again below.
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()

	// The national list tampered with, and no good copy cached: refused.
	os.WriteFile(deFile, bytes.Replace(deList, []byte("Example seal CA"), []byte("Example seal CB"), 1), 0o644)
	os.RemoveAll(filepath.Join(data, "trusted-lists"))
	out, _ = sealgateCmd(t, "verify", "--data", data, "--json", "--signature", doc+".p7s", doc)
	q := qualifications(t, []byte(out))
	if len(q) != 1 || q[0]["qualification"].(map[string]any)["level"] != "indeterminate" || !strings.Contains(out, "trusted_list_invalid") {
		t.Errorf("with the list tampered with: %s", out)
	}
	if out, _ := sealgateCmd(t, "trust", "status", "--data", data); !strings.Contains(out, "NOT LOADED") || !strings.Contains(out, "the XML signature does not verify") {
		t.Errorf("trust status with the list tampered with:\n%s", out)
	}
}

// qualifications picks the report's qualifications out of its JSON.
func qualifications(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var rep struct {
		Qualifications []map[string]any `json:"qualifications"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return rep.Qualifications
}
