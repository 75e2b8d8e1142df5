package signing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// softHSMSeal returns the shared test PKI's RSA-2048 seal key on a SoftHSM
// token, and the PKI.
func softHSMSeal(t testing.TB) (signing.Key, *testPKI) {
	t.Helper()
	key, p, _ := softHSMSealSessions(t, 0)
	return key, p
}

// softHSMSealSessions is softHSMSeal with the given number of sessions on
// the token (0: the pool's default); it also returns the SoftHSM holding
// the token "seal-1".
func softHSMSealSessions(t testing.TB, sessions int) (signing.Key, *testPKI, *signingtest.SoftHSM) {
	t.Helper()
	p := sharedPKI(t)
	h := signingtest.NewSoftHSM(t)
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{CA: p.ca, Key: p.signers["rsa-2048"], Sessions: sessions})
	pool, err := signing.NewPool(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	key, err := pool.Key("dev")
	if err != nil {
		t.Fatal(err)
	}
	return key, p, h
}

// seal runs PAdES over in and returns the output, checking the result's
// size and digest describe it.
func seal(t testing.TB, key signing.Key, in []byte, opts signing.PAdESOptions) ([]byte, *signing.PAdESResult) {
	t.Helper()
	var out bytes.Buffer
	res, err := signing.PAdES(context.Background(), key, bytes.NewReader(in), int64(len(in)), &out, opts)
	if err != nil {
		t.Fatalf("PAdES: %v", err)
	}
	if !bytes.HasPrefix(out.Bytes(), in) {
		t.Fatal("the sealed file does not start with the original bytes")
	}
	if res.Size != int64(out.Len()) || hex.EncodeToString(res.SHA256) != sha256Hex(out.Bytes()) {
		t.Errorf("result size %d digest %x do not describe the %d-byte output", res.Size, res.SHA256, out.Len())
	}
	return out.Bytes(), res
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pdfsigReport is one signature as pdfsig prints it.
type pdfsigReport struct {
	field, subFilter, validation string
	total                        bool
}

// pdfsig runs poppler's pdfsig and parses its per-signature blocks (it exits
// 0 even when a digest does not match, so its text is what counts).
func pdfsig(t testing.TB, file string) []pdfsigReport {
	t.Helper()
	out, err := exec.Command("pdfsig", "-nocert", file).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfsig: %v\n%s", err, out)
	}
	var sigs []pdfsigReport
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Signature #"):
			sigs = append(sigs, pdfsigReport{})
		case len(sigs) == 0:
		case strings.HasPrefix(line, "- Signature Field Name:"):
			sigs[len(sigs)-1].field = strings.TrimSpace(strings.TrimPrefix(line, "- Signature Field Name:"))
		case strings.HasPrefix(line, "- Signature Type:"):
			sigs[len(sigs)-1].subFilter = strings.TrimSpace(strings.TrimPrefix(line, "- Signature Type:"))
		case strings.HasPrefix(line, "- Signature Validation:"):
			sigs[len(sigs)-1].validation = strings.TrimSpace(strings.TrimPrefix(line, "- Signature Validation:"))
		case line == "- Total document signed":
			sigs[len(sigs)-1].total = true
		}
	}
	// Empty signature fields are listed too; they carry no signature.
	signed := sigs[:0]
	for _, s := range sigs {
		if s.subFilter != "" {
			signed = append(signed, s)
		}
	}
	return signed
}

// checkIndependently runs the independent verifiers over a sealed file:
// pdfsig finds want signatures, all valid and the newest covering the
// whole file; qpdf --check is clean; openssl sees signing-certificate-v2 and no
// signing-time in every CAdES signature.
func checkIndependently(t testing.TB, sealed []byte, want int) {
	t.Helper()
	file := writeTemp(t, "sealed.pdf", sealed)
	sigs := pdfsig(t, file)
	if len(sigs) != want {
		t.Fatalf("pdfsig found %d signatures, want %d: %+v", len(sigs), want, sigs)
	}
	for i, s := range sigs {
		// This pdfsig does not know RFC 3161 document timestamps (it names
		// their type "unknown"); openssl ts checks them in the level tests.
		if s.subFilter == "unknown" && s.validation == "Signature has not yet been verified." {
			continue
		}
		if s.validation != "Signature is Valid." {
			t.Errorf("pdfsig signature %d (%s): %q", i+1, s.field, s.validation)
		}
	}
	// pdfsig lists signatures in field order; the newest one, whichever
	// field it is in, and only it, covers the whole file.
	total := 0
	for _, s := range sigs {
		if s.total {
			total++
		}
	}
	if total != 1 {
		t.Errorf("pdfsig: %d signatures cover the whole document, want the newest one only", total)
	}
	if out, err := exec.Command("qpdf", "--check", file).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
	for i, c := range signatureContents(t, sealed) {
		if c.subFilter != "ETSI.CAdES.detached" {
			continue
		}
		p7s := writeTemp(t, fmt.Sprintf("sig%d.p7s", i), c.der)
		out, err := exec.Command("openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", p7s).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl cms -print: %v\n%s", err, out)
		}
		// Only the signer's own signed attributes count: a signature
		// timestamp token inside the unsigned ones has a signing-time of its own.
		signed := string(out)
		if i := strings.Index(signed, "unsignedAttrs:"); i >= 0 {
			signed = signed[:i]
		}
		if !strings.Contains(signed, "signingCertificateV2") || strings.Contains(signed, "signingTime") {
			t.Errorf("signature %d: want signingCertificateV2 and no signingTime in\n%s", i+1, out)
		}
	}
}

// sigContents is one signature dictionary's /Contents, found the way an
// outside tool would: from its /ByteRange.
type sigContents struct {
	subFilter string
	byteRange [4]int64
	der       []byte
}

var byteRangeRE = regexp.MustCompile(`/ByteRange\s*\[\s*0\s+(\d+)\s+(\d+)\s+(\d+)\s*\]`)
var subFilterRE = regexp.MustCompile(`/SubFilter\s*/([A-Za-z0-9.]+)`)

func signatureContents(t testing.TB, file []byte) []sigContents {
	t.Helper()
	var out []sigContents
	for _, m := range byteRangeRE.FindAllSubmatchIndex(file, -1) {
		var br [4]int64
		for i := 1; i <= 3; i++ {
			br[i], _ = strconv.ParseInt(string(file[m[2*i]:m[2*i+1]]), 10, 64)
		}
		raw, err := hex.DecodeString(string(file[br[1]+1 : br[2]-1]))
		if err != nil {
			t.Fatalf("contents at %d: %v", br[1], err)
		}
		var rv asn1.RawValue
		if _, err := asn1.Unmarshal(raw, &rv); err != nil {
			t.Fatalf("contents at %d is not DER: %v", br[1], err)
		}
		// The signature dictionary holding this ByteRange starts at the
		// last "obj" before it.
		objStart := bytes.LastIndex(file[:m[0]], []byte(" obj"))
		sf := subFilterRE.FindSubmatch(file[objStart : br[2]+200])
		c := sigContents{byteRange: br, der: rv.FullBytes}
		if sf != nil {
			c.subFilter = string(sf[1])
		}
		out = append(out, c)
	}
	return out
}

// Every corpus document sealed at B-B, invisibly and with a visible stamp
// on its last page, passes pdfsig, qpdf, openssl and VerifyPDF; sealed
// again, both seals stay valid.
func TestPAdESCorpusBB(t *testing.T) {
	key, p := softHSMSeal(t)
	for _, doc := range pdftest.Corpus(t) {
		for _, visible := range []bool{false, true} {
			name := doc.Name + "/invisible"
			opts := signing.PAdESOptions{Reason: "Invoice approved", Location: "Hamburg"}
			if visible {
				name = doc.Name + "/visible"
				opts.Placement = signing.Placement{Page: doc.Pages, X: 240, Y: 40, Width: 220, Height: 70}
			}
			t.Run(name, func(t *testing.T) {
				sealed, res := seal(t, key, doc.Data, opts)
				if res.Level != signing.LevelBB || res.Field != "Seal1" {
					t.Errorf("result level %s field %q", res.Level, res.Field)
				}
				checkIndependently(t, sealed, 1)
				if _, err := verifyPDF(t, sealed, p); err != nil {
					t.Errorf("VerifyPDF: %v", err)
				}
				twice, _ := seal(t, key, sealed, opts)
				checkIndependently(t, twice, 2)
				if rep, err := verifyPDF(t, twice, p); err != nil || len(rep.Signatures) != 2 {
					t.Errorf("VerifyPDF after a second seal: %v", err)
				}
			})
		}
	}
}

// Refused inputs get their codes and nothing is written to the output.
func TestPAdESRefusals(t *testing.T) {
	key, _ := softHSMSeal(t)
	plain := pdftest.Bytes(pdftest.Spec{})
	withField := pdftest.Bytes(pdftest.Spec{SigField: "Approval"})
	signedField, _ := seal(t, key, withField, signing.PAdESOptions{Field: "Approval"})
	certifiedP1, _ := seal(t, key, plain, signing.PAdESOptions{Certify: signing.NoChangesAllowed})
	certifiedP2, _ := seal(t, key, plain, signing.PAdESOptions{Certify: signing.FormFillingAllowed})
	tests := []struct {
		name string
		in   []byte
		opts signing.PAdESOptions
		code fault.Code
	}{
		{"encrypted", pdftest.Qpdf(t, plain, "--encrypt", "", "owner", "256", "--"), signing.PAdESOptions{}, signing.CodePDFEncrypted},
		{"not a PDF", []byte("PK\x03\x04 a zip file"), signing.PAdESOptions{}, signing.CodePDFMalformed},
		{"truncated", plain[:len(plain)-40], signing.PAdESOptions{}, signing.CodePDFMalformed},
		{"unknown field", withField, signing.PAdESOptions{Field: "Nope"}, signing.CodeFieldUnknown},
		{"field already signed", signedField, signing.PAdESOptions{Field: "Approval"}, signing.CodeFieldSigned},
		{"page out of range", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 2, Width: 10, Height: 10}}, signing.CodePageOutOfRange},
		{"certified, no changes allowed", certifiedP1, signing.PAdESOptions{}, signing.CodeSigningForbidden},
		{"certifying a certified document", certifiedP2, signing.PAdESOptions{Certify: signing.AnnotationsAllowed}, signing.CodeSigningForbidden},
		{"certifying a signed document", signedField, signing.PAdESOptions{Certify: signing.FormFillingAllowed}, signing.CodeSigningForbidden},
		{"B-T without a timestamp authority", plain, signing.PAdESOptions{Level: signing.LevelBT}, signing.CodePAdESOptionInvalid},
		{"empty stamp rectangle", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle off the page", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1, X: 1000, Y: 1000, Width: 220, Height: 70}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle across the page's edge", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1, X: 500, Y: 40, Width: 220, Height: 70}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle too small to read", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1, X: 40, Y: 40, Width: 2, Height: 2}}, signing.CodePAdESOptionInvalid},
		{"unknown logo position", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1, Width: 100, Height: 50}, Stamp: signing.StampOptions{LogoPosition: "right"}}, signing.CodePAdESOptionInvalid},
		{"font size out of range", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1, Width: 100, Height: 50}, Stamp: signing.StampOptions{FontSize: 500}}, signing.CodePAdESOptionInvalid},
		{"logo not an image", plain, signing.PAdESOptions{Placement: signing.Placement{Page: 1, Width: 100, Height: 50}, Stamp: signing.StampOptions{Logo: []byte("GIF89a")}}, signing.CodeStampLogoInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := signing.PAdES(context.Background(), key, bytes.NewReader(tt.in), int64(len(tt.in)), &out, tt.opts)
			if fault.CodeOf(err) != tt.code {
				t.Errorf("error %v, want code %s", err, tt.code)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes written to the output of a refused seal", out.Len())
			}
		})
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A certification signature records its DocMDP permission; with form
// filling allowed a later approval seal keeps both valid, and VerifyPDF
// reports the certification.
func TestPAdESCertification(t *testing.T) {
	key, p := softHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{SigField: "Approval"})
	certified, _ := seal(t, key, doc, signing.PAdESOptions{Certify: signing.FormFillingAllowed, Reason: "Issued"})
	approved, _ := seal(t, key, certified, signing.PAdESOptions{Field: "Approval", Reason: "Approved"})
	checkIndependently(t, approved, 2)
	rep, err := verifyPDF(t, approved, p)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	if rep.Signatures[0].Certification != signing.FormFillingAllowed || rep.Signatures[1].Certification != 0 {
		t.Errorf("certification %d then %d, want %d then 0", rep.Signatures[0].Certification, rep.Signatures[1].Certification, signing.FormFillingAllowed)
	}
	out := pdfcpuValidate(t, approved, p.caFile(t))
	if !strings.Contains(out, "Certified:      true") || strings.Contains(out, "DocModified: true") {
		t.Errorf("pdfcpu does not see the certification:\n%s", out)
	}
}

// A signature added by another tool to a document certified with "no
// changes allowed" makes the certification report the change.
func TestVerifyPDFNoChangesCertification(t *testing.T) {
	key, p := softHSMSeal(t)
	certified, _ := seal(t, key, pdftest.Bytes(pdftest.Spec{}), signing.PAdESOptions{Certify: signing.NoChangesAllowed})
	if _, err := verifyPDF(t, certified, p); err != nil {
		t.Fatalf("certified document: %v", err)
	}
	twice, err := pdfsignSign(key, certified)
	if err != nil {
		t.Fatalf("pdfsign: %v", err)
	}
	rep, err := verifyPDF(t, twice, p)
	if fault.CodeOf(err) != signing.CodeModifiedAfterSign || rep == nil || len(rep.Signatures) != 2 {
		t.Fatalf("VerifyPDF: %v, %+v", err, rep)
	}
	first := rep.Signatures[0]
	if first.Certification != signing.NoChangesAllowed || first.Valid || !strings.Contains(strings.Join(first.LaterChanges, "\n"), "certification allows no changes") {
		t.Errorf("certification: %+v", first)
	}
}

// The /Contents placeholder is sized before signing, so every key signs
// exactly once, a 4096-bit RSA key and a timestamped signature included.
func TestPAdESSignsOnce(t *testing.T) {
	p := sharedPKI(t)
	a := newTestTSA(t, p)
	big, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.ca.IssueSeal(big.Public(), devpkiSubject, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rsa4096, err := signing.NewSoftKey(big, []*x509.Certificate{cert, p.ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]signing.Key{"rsa-2048": p.keys["rsa-2048"], "ecdsa-p384": p.keys["ecdsa-p384"], "rsa-4096": rsa4096}
	for name, k := range keys {
		for _, level := range []signing.Level{signing.LevelBB, signing.LevelBT} {
			t.Run(name+"/"+string(level), func(t *testing.T) {
				ck := &countingKey{Key: k}
				sealed, _ := seal(t, ck, pdftest.Bytes(pdftest.Spec{}), signing.PAdESOptions{Level: level, Timestamper: a.client})
				if n := ck.signs.Load(); n != 1 {
					t.Errorf("the key signed %d times", n)
				}
				checkIndependently(t, sealed, 1)
			})
		}
	}
}

// Sealing a document another producer (digitorus/pdfsign) has signed keeps
// that signature valid and covers it.
func TestPAdESAfterAnotherProducer(t *testing.T) {
	key, p := softHSMSeal(t)
	signed, err := pdfsignSign(key, pdftest.Bytes(pdftest.Spec{}))
	if err != nil {
		t.Fatalf("pdfsign: %v", err)
	}
	sealed, _ := seal(t, key, signed, signing.PAdESOptions{Placement: signing.Placement{Page: 1, X: 300, Y: 40, Width: 200, Height: 60}})
	checkIndependently(t, sealed, 2)
	rep, err := verifyPDF(t, sealed, p)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	if rep.Signatures[0].SubFilter != "adbe.pkcs7.detached" || !rep.Signatures[0].Valid || !rep.Signatures[1].CoversWholeDocument {
		t.Errorf("signatures: %+v", rep.Signatures)
	}
}

// A document timestamp may follow a certification that allows no changes.
func TestPAdESCertifiedLTA(t *testing.T) {
	key, p := softHSMSeal(t)
	a := newTestTSA(t, p)
	sealed, _ := seal(t, key, pdftest.Bytes(pdftest.Spec{}), signing.PAdESOptions{
		Certify: signing.NoChangesAllowed, Level: signing.LevelBLTA, Timestamper: a.client,
		Revocation: signing.RevocationOptions{CRLs: [][]byte{p.crl(t)}},
	})
	checkIndependently(t, sealed, 2)
	rep, err := verifyPDF(t, sealed, p)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	if s := rep.Signatures[0]; s.Certification != signing.NoChangesAllowed || s.Level != signing.LevelBLTA || rep.Signatures[1].Type != "documentTimestamp" {
		t.Errorf("signatures: %+v", rep.Signatures)
	}
}

// A new seal field's name is unique among all the form's fields, of any
// type (ISO 32000-1 §12.7.3.2), not only among signature fields.
func TestPAdESFieldNameUnique(t *testing.T) {
	key, p := softHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	r, err := pdf.Open(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	page, err := r.Page(1)
	if err != nil {
		t.Fatal(err)
	}
	root, cat, err := r.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	u := pdf.NewUpdate(r)
	text := u.Add(pdf.Dict{"Type": pdf.Name("Annot"), "Subtype": pdf.Name("Widget"), "FT": pdf.Name("Tx"),
		"T": pdf.TextString("seal1"), "Rect": pdf.Array{pdf.Integer(0), pdf.Integer(0), pdf.Integer(0), pdf.Integer(0)}, "P": page.Ref})
	pd := page.Dict.Clone()
	pd["Annots"] = pdf.Array{text}
	u.Set(page.Ref, pd)
	cat = cat.Clone()
	cat["AcroForm"] = pdf.Dict{"Fields": pdf.Array{text}}
	u.Set(root, cat)
	laid, err := u.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	withText := append(bytes.Clone(doc), laid.Bytes...)
	sealed, res := seal(t, key, withText, signing.PAdESOptions{})
	if res.Field != "Seal2" {
		t.Errorf("field %q, want Seal2 beside the text field seal1", res.Field)
	}
	checkIndependently(t, sealed, 1)
	if _, err := verifyPDF(t, sealed, p); err != nil {
		t.Errorf("VerifyPDF: %v", err)
	}
}
