package pades_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
)

func verifyPDF(t testing.TB, file []byte, p *signingtest.PKI) (*pades.Report, error) {
	t.Helper()
	return pades.Verify(context.Background(), bytes.NewReader(file), int64(len(file)), pades.VerifyOptions{Roots: p.Roots})
}

var pdfcpuBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pdfcpu")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "install", "github.com/pdfcpu/pdfcpu/cmd/pdfcpu@v0.15.0")
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &exec.Error{Name: "go install pdfcpu: " + string(out), Err: err}
	}
	return filepath.Join(dir, "pdfcpu"), nil
})

// pdfcpuValidate runs pdfcpu's signature validator with the CA imported
// into a private certificate store and returns its report.
func pdfcpuValidate(t testing.TB, file []byte, caPEM string) string {
	t.Helper()
	bin, err := pdfcpuBin()
	if err != nil {
		t.Fatal(err)
	}
	conf := t.TempDir()
	if out, err := exec.Command(bin, "-c", conf, "certificates", "import", caPEM).CombinedOutput(); err != nil {
		t.Fatalf("pdfcpu certificates import: %v\n%s", err, out)
	}
	// Test revocation services run on loopback, which pdfcpu refuses
	// unless told otherwise.
	cfg := filepath.Join(conf, "pdfcpu", "config.yml")
	yml, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	yml = bytes.Replace(yml, []byte("allowedRevocationHosts: []"), []byte("allowedRevocationHosts: [127.0.0.1]"), 1)
	if err := os.WriteFile(cfg, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	f := signingtest.WriteTemp(t, "sealed.pdf", file)
	out, err := exec.Command(bin, "-c", conf, "signatures", "validate", "-a", "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfcpu signatures validate: %v\n%s", err, out)
	}
	return string(out)
}

// opensslTSVerify checks a timestamp token over data with openssl ts.
func opensslTSVerify(t testing.TB, data, token []byte, caPEM string, a *signingtest.TSA) {
	t.Helper()
	d, tok := signingtest.WriteTemp(t, "data.bin", data), signingtest.WriteTemp(t, "token.der", token)
	out, err := exec.Command("openssl", "ts", "-verify", "-data", d, "-in", tok, "-token_in", "-CAfile", caPEM, "-untrusted", a.PEM).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Errorf("openssl ts -verify: %v\n%s", err, out)
	}
}

// Each level is reached on every corpus document, as pdfsig, qpdf, openssl
// and VerifyPDF see it; pdfcpu validates one document per level.
func TestPAdESLevels(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	a := signingtest.NewTSA(t, p)
	caPEM := p.CAFile(t)
	corpus := pdftest.Corpus(t)
	// The development CA publishes no revocation service: its CRL is
	// configured.
	rev := pades.RevocationOptions{CRLs: [][]byte{caCRL(t, p)}}
	for _, level := range []signing.Level{signing.LevelBB, signing.LevelBT, signing.LevelBLT, signing.LevelBLTA} {
		for i, doc := range corpus {
			t.Run(string(level)+"/"+doc.Name, func(t *testing.T) {
				sealed, res := signingtest.SealPDF(t, key, doc.Data, pades.Options{
					Level: level, Timestamper: a.SHA256Client, Revocation: rev,
					Placement: pades.Placement{Page: 1, X: 40, Y: 40, Width: 200, Height: 60},
				})
				want := 1
				if level == signing.LevelBLTA {
					want = 2
				}
				signingtest.CheckIndependently(t, sealed, want)
				if res.Level != level {
					t.Errorf("result level %s", res.Level)
				}
				if len(res.RevocationUnavailable) != 0 {
					t.Errorf("revocation data unavailable for %q", res.RevocationUnavailable)
				}
				rep, err := verifyPDF(t, sealed, p)
				if err != nil {
					t.Fatalf("VerifyPDF: %v", err)
				}
				if got := rep.Signatures[0].Level; got != level {
					t.Errorf("VerifyPDF level %s, want %s", got, level)
				}
				contents := signingtest.SignatureContents(t, sealed)
				if level != signing.LevelBB {
					sigValue, token := signingtest.SignatureTimestamp(t, contents[0].DER)
					if token == nil {
						t.Fatal("no signature timestamp in the CMS")
					}
					opensslTSVerify(t, sigValue, token, caPEM, a)
				}
				if level == signing.LevelBLTA {
					br := contents[1].ByteRange
					signed := append(append([]byte(nil), sealed[:br[1]]...), sealed[br[2]:br[2]+br[3]]...)
					opensslTSVerify(t, signed, contents[1].DER, caPEM, a)
				}
				if i == 0 || (level == signing.LevelBLTA && doc.Name == "chromium-objstm") {
					// pdfcpu calls a signature valid only when it can check
					// revocation online, and the development CA publishes no
					// revocation service (TestPAdESPdfcpu has one); here it
					// must find nothing wrong.
					out := pdfcpuValidate(t, sealed, caPEM)
					for _, bad := range []string{"signature is invalid", "DocModified: true", "certificate path was not resolved", "validate baseline B profile"} {
						if strings.Contains(out, bad) {
							t.Errorf("pdfcpu reports %q:\n%s", bad, out)
						}
					}
					if !strings.Contains(out, "SubFilter:      ETSI.CAdES.detached") {
						t.Errorf("pdfcpu did not see the CAdES signature:\n%s", out)
					}
				}
			})
		}
	}
}

// Three seals on one document — a visible one in a new field, one in an
// existing empty field and an invisible one — all stay valid.
func TestPAdESThreeSeals(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{SigField: "Approval", Pages: []pdftest.Page{{Text: "one"}, {Text: "two", Rotate: 90}}})
	steps := []pades.Options{
		{Placement: pades.Placement{Page: 2, X: 40, Y: 40, Width: 200, Height: 60}, Reason: "Checked"},
		{Field: "Approval", Reason: "Approved"},
		{Reason: "Archived"},
	}
	wantFields := []string{"Seal1", "Approval", "Seal2"}
	for i, o := range steps {
		var res *pades.Result
		doc, res = signingtest.SealPDF(t, key, doc, o)
		if res.Field != wantFields[i] {
			t.Errorf("seal %d went into field %q, want %q", i+1, res.Field, wantFields[i])
		}
	}
	signingtest.CheckIndependently(t, doc, 3)
	rep, err := verifyPDF(t, doc, p)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	if len(rep.Signatures) != 3 || rep.Revisions != 4 {
		t.Fatalf("%d signatures in %d revisions, want 3 in 4", len(rep.Signatures), rep.Revisions)
	}
	for i, s := range rep.Signatures {
		if !s.Valid || s.Field != wantFields[i] || s.Reason != steps[i].Reason || s.CoversWholeDocument != (i == 2) || len(s.LaterChanges) != 0 {
			t.Errorf("signature %d: %+v", i+1, s)
		}
	}
}

// Flipping any one byte of a sealed document is detected: every revision
// is covered by some signature, and the /Contents padding is checked too.
func TestVerifyPDFDetectsFlippedBytes(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	for i := 0; i < 3; i++ {
		doc, _ = signingtest.SealPDF(t, key, doc, pades.Options{Placement: pades.Placement{Page: 1, X: 40, Y: float64(40 + 80*i), Width: 200, Height: 60}})
	}
	if _, err := verifyPDF(t, doc, p); err != nil {
		t.Fatalf("unchanged document: %v", err)
	}
	step := len(doc) / 400
	positions := []int{}
	for pos := 0; pos < len(doc); pos += step {
		positions = append(positions, pos)
	}
	// And the DER header of every signature: a longer length would take
	// the zero padding in.
	for i := 0; ; {
		j := bytes.Index(doc[i:], []byte("/Contents <"))
		if j < 0 {
			break
		}
		for k := 0; k < 8; k++ {
			positions = append(positions, i+j+len("/Contents <")+k)
		}
		i += j + 1
	}
	for _, pos := range positions {
		flipped := append([]byte(nil), doc...)
		flipped[pos] ^= 0x01
		rep, err := verifyPDF(t, flipped, p)
		if err == nil || (rep != nil && rep.Valid) {
			t.Errorf("flipping the byte at %d (%q) went unnoticed", pos, doc[max(0, pos-10):min(len(doc), pos+10)])
		}
	}
}

// A change after a signature that signing does not make (new page content)
// is reported, while the signature itself still verifies.
func TestVerifyPDFReportsModification(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	sealed, _ := signingtest.SealPDF(t, key, pdftest.Bytes(pdftest.Spec{}), pades.Options{})
	r, err := pdf.Open(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	u := pdf.NewUpdate(r)
	page, err := r.Page(1)
	if err != nil {
		t.Fatal(err)
	}
	pd := page.Dict.Clone()
	pd["Contents"] = u.Add(&pdf.Stream{Dict: pdf.Dict{}, Data: []byte("BT /F1 30 Tf 100 400 Td (PAID) Tj ET")})
	u.Set(page.Ref, pd)
	laid, err := u.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tampered := append(append([]byte(nil), sealed...), laid.Bytes...)
	rep, err := verifyPDF(t, tampered, p)
	if fault.CodeOf(err) != pades.CodeModifiedAfterSign {
		t.Fatalf("VerifyPDF error %v, want %s", err, pades.CodeModifiedAfterSign)
	}
	s := rep.Signatures[0]
	if s.CMS == nil || !s.CMS.Valid || s.CoversWholeDocument || len(s.LaterChanges) == 0 {
		t.Errorf("report: %+v", s)
	}
}

// The report marshals to the camelCase JSON the verification endpoints share.
func TestPDFReportJSON(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	sealed, _ := signingtest.SealPDF(t, key, pdftest.Bytes(pdftest.Spec{}), pades.Options{Reason: "Invoice"})
	rep, err := verifyPDF(t, sealed, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sig := m["signatures"].([]any)[0].(map[string]any)
	for _, k := range []string{"field", "subFilter", "byteRange", "coversWholeDocument", "level", "cms", "reason"} {
		if _, ok := sig[k]; !ok {
			t.Errorf("signature JSON lacks %q: %s", k, b)
		}
	}
	if m["valid"] != true || sig["level"] != "B-B" {
		t.Errorf("JSON: %s", b)
	}
}

// An unsigned document is readable but not valid.
func TestVerifyPDFUnsigned(t *testing.T) {
	p := signingtest.SharedPKI(t)
	rep, err := verifyPDF(t, pdftest.Bytes(pdftest.Spec{SigField: "Empty"}), p)
	if fault.CodeOf(err) != pades.CodeNoSignature || rep == nil || rep.Valid {
		t.Errorf("VerifyPDF = %+v, %v; want %s", rep, err, pades.CodeNoSignature)
	}
}

// Arbitrary bytes never panic the verifier or the writer, and a refused
// seal writes nothing.
func FuzzPDFVerifyAndSeal(f *testing.F) {
	p := signingtest.SharedPKI(f)
	key := p.Keys["ecdsa-p256"]
	plain := pdftest.Bytes(pdftest.Spec{SigField: "Approval", SigFieldRect: [4]float64{10, 10, 200, 70}})
	sealed, _ := signingtest.SealPDF(f, key, plain, pades.Options{Field: "Approval"})
	f.Add(plain)
	f.Add(sealed)
	f.Fuzz(func(t *testing.T, b []byte) {
		pades.Verify(context.Background(), bytes.NewReader(b), int64(len(b)), pades.VerifyOptions{Roots: p.Roots})
		var out bytes.Buffer
		_, err := pades.Seal(context.Background(), key, bytes.NewReader(b), int64(len(b)), &out, pades.Options{Field: "Approval"})
		if err != nil && out.Len() > 0 {
			t.Fatalf("%d bytes written by a refused seal", out.Len())
		}
	})
}
