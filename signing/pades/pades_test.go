package pades_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
	"github.com/sealgate/sealgate/signing/stamp"
)

// Every corpus document sealed at B-B, invisibly and with a visible stamp
// on its last page, passes pdfsig, qpdf, openssl and VerifyPDF; sealed
// again, both seals stay valid.
func TestPAdESCorpusBB(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	for _, doc := range pdftest.Corpus(t) {
		for _, visible := range []bool{false, true} {
			name := doc.Name + "/invisible"
			opts := pades.Options{Reason: "Invoice approved", Location: "Hamburg"}
			if visible {
				name = doc.Name + "/visible"
				opts.Placement = pades.Placement{Page: doc.Pages, X: 240, Y: 40, Width: 220, Height: 70}
			}
			t.Run(name, func(t *testing.T) {
				sealed, res := signingtest.SealPDF(t, key, doc.Data, opts)
				if res.Level != signing.LevelBB || res.Field != "Seal1" {
					t.Errorf("result level %s field %q", res.Level, res.Field)
				}
				signingtest.CheckIndependently(t, sealed, 1)
				if _, err := verifyPDF(t, sealed, p); err != nil {
					t.Errorf("VerifyPDF: %v", err)
				}
				twice, _ := signingtest.SealPDF(t, key, sealed, opts)
				signingtest.CheckIndependently(t, twice, 2)
				if rep, err := verifyPDF(t, twice, p); err != nil || len(rep.Signatures) != 2 {
					t.Errorf("VerifyPDF after a second seal: %v", err)
				}
			})
		}
	}
}

// Refused inputs get their codes and nothing is written to the output.
func TestPAdESRefusals(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	plain := pdftest.Bytes(pdftest.Spec{})
	withField := pdftest.Bytes(pdftest.Spec{SigField: "Approval"})
	signedField, _ := signingtest.SealPDF(t, key, withField, pades.Options{Field: "Approval"})
	certifiedP1, _ := signingtest.SealPDF(t, key, plain, pades.Options{Certify: pades.NoChangesAllowed})
	certifiedP2, _ := signingtest.SealPDF(t, key, plain, pades.Options{Certify: pades.FormFillingAllowed})
	tests := []struct {
		name string
		in   []byte
		opts pades.Options
		code fault.Code
	}{
		{"encrypted", pdftest.Qpdf(t, plain, "--encrypt", "", "owner", "256", "--"), pades.Options{}, signing.CodePDFEncrypted},
		{"not a PDF", []byte("PK\x03\x04 a zip file"), pades.Options{}, signing.CodePDFMalformed},
		{"truncated", plain[:len(plain)-40], pades.Options{}, signing.CodePDFMalformed},
		{"unknown field", withField, pades.Options{Field: "Nope"}, pades.CodeFieldUnknown},
		{"field already signed", signedField, pades.Options{Field: "Approval"}, pades.CodeFieldSigned},
		{"page out of range", plain, pades.Options{Placement: pades.Placement{Page: 2, Width: 10, Height: 10}}, pades.CodePageOutOfRange},
		{"certified, no changes allowed", certifiedP1, pades.Options{}, pades.CodeSigningForbidden},
		{"certifying a certified document", certifiedP2, pades.Options{Certify: pades.AnnotationsAllowed}, pades.CodeSigningForbidden},
		{"certifying a signed document", signedField, pades.Options{Certify: pades.FormFillingAllowed}, pades.CodeSigningForbidden},
		{"B-T without a timestamp authority", plain, pades.Options{Level: signing.LevelBT}, signing.CodePAdESOptionInvalid},
		{"empty stamp rectangle", plain, pades.Options{Placement: pades.Placement{Page: 1}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle off the page", plain, pades.Options{Placement: pades.Placement{Page: 1, X: 1000, Y: 1000, Width: 220, Height: 70}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle across the page's edge", plain, pades.Options{Placement: pades.Placement{Page: 1, X: 500, Y: 40, Width: 220, Height: 70}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle of NaN", plain, pades.Options{Placement: pades.Placement{Page: 1, X: math.NaN(), Y: 40, Width: 220, Height: 70}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle of infinite size", plain, pades.Options{Placement: pades.Placement{Page: 1, X: 40, Y: 40, Width: math.Inf(1), Height: 70}}, signing.CodePAdESOptionInvalid},
		{"stamp rectangle too small to read", plain, pades.Options{Placement: pades.Placement{Page: 1, X: 40, Y: 40, Width: 2, Height: 2}}, signing.CodePAdESOptionInvalid},
		{"unknown logo position", plain, pades.Options{Placement: pades.Placement{Page: 1, Width: 100, Height: 50}, Stamp: stamp.Options{LogoPosition: "right"}}, signing.CodePAdESOptionInvalid},
		{"font size out of range", plain, pades.Options{Placement: pades.Placement{Page: 1, Width: 100, Height: 50}, Stamp: stamp.Options{FontSize: 500}}, signing.CodePAdESOptionInvalid},
		{"logo not an image", plain, pades.Options{Placement: pades.Placement{Page: 1, Width: 100, Height: 50}, Stamp: stamp.Options{Logo: []byte("GIF89a")}}, stamp.CodeLogoInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := pades.Seal(context.Background(), key, bytes.NewReader(tt.in), int64(len(tt.in)), &out, tt.opts)
			if fault.CodeOf(err) != tt.code {
				t.Errorf("error %v, want code %s", err, tt.code)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes written to the output of a refused seal", out.Len())
			}
		})
	}
}

// A certification signature records its DocMDP permission; with form
// filling allowed a later approval seal keeps both valid, and VerifyPDF
// reports the certification.
func TestPAdESCertification(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{SigField: "Approval"})
	certified, _ := signingtest.SealPDF(t, key, doc, pades.Options{Certify: pades.FormFillingAllowed, Reason: "Issued"})
	approved, _ := signingtest.SealPDF(t, key, certified, pades.Options{Field: "Approval", Reason: "Approved"})
	signingtest.CheckIndependently(t, approved, 2)
	rep, err := verifyPDF(t, approved, p)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	if rep.Signatures[0].Certification != pades.FormFillingAllowed || rep.Signatures[1].Certification != 0 {
		t.Errorf("certification %d then %d, want %d then 0", rep.Signatures[0].Certification, rep.Signatures[1].Certification, pades.FormFillingAllowed)
	}
	out := pdfcpuValidate(t, approved, p.CAFile(t))
	if !strings.Contains(out, "Certified:      true") || strings.Contains(out, "DocModified: true") {
		t.Errorf("pdfcpu does not see the certification:\n%s", out)
	}
}

// A signature added by another tool to a document certified with "no
// changes allowed" makes the certification report the change.
func TestVerifyPDFNoChangesCertification(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	certified, _ := signingtest.SealPDF(t, key, pdftest.Bytes(pdftest.Spec{}), pades.Options{Certify: pades.NoChangesAllowed})
	if _, err := verifyPDF(t, certified, p); err != nil {
		t.Fatalf("certified document: %v", err)
	}
	twice, err := pdfsignSign(key, certified)
	if err != nil {
		t.Fatalf("pdfsign: %v", err)
	}
	rep, err := verifyPDF(t, twice, p)
	if fault.CodeOf(err) != pades.CodeModifiedAfterSign || rep == nil || len(rep.Signatures) != 2 {
		t.Fatalf("VerifyPDF: %v, %+v", err, rep)
	}
	first := rep.Signatures[0]
	if first.Certification != pades.NoChangesAllowed || first.Valid || !strings.Contains(strings.Join(first.LaterChanges, "\n"), "certification allows no changes") {
		t.Errorf("certification: %+v", first)
	}
}

// The /Contents placeholder is sized before signing, so every key signs
// exactly once, a 4096-bit RSA key and a timestamped signature included.
func TestPAdESSignsOnce(t *testing.T) {
	p := signingtest.SharedPKI(t)
	a := signingtest.NewTSA(t, p)
	big, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.CA.IssueSeal(big.Public(), signingtest.SealSubject, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rsa4096, err := softkey.New(big, []*x509.Certificate{cert, p.CA.Cert})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]signing.Key{"rsa-2048": p.Keys["rsa-2048"], "ecdsa-p384": p.Keys["ecdsa-p384"], "rsa-4096": rsa4096}
	for name, k := range keys {
		for _, level := range []signing.Level{signing.LevelBB, signing.LevelBT} {
			t.Run(name+"/"+string(level), func(t *testing.T) {
				ck := &signingtest.CountingKey{Key: k}
				sealed, _ := signingtest.SealPDF(t, ck, pdftest.Bytes(pdftest.Spec{}), pades.Options{Level: level, Timestamper: a.SHA256Client})
				if n := ck.Signs.Load(); n != 1 {
					t.Errorf("the key signed %d times", n)
				}
				signingtest.CheckIndependently(t, sealed, 1)
			})
		}
	}
}

// Sealing a document another producer (digitorus/pdfsign) has signed keeps
// that signature valid and covers it.
func TestPAdESAfterAnotherProducer(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	signed, err := pdfsignSign(key, pdftest.Bytes(pdftest.Spec{}))
	if err != nil {
		t.Fatalf("pdfsign: %v", err)
	}
	sealed, _ := signingtest.SealPDF(t, key, signed, pades.Options{Placement: pades.Placement{Page: 1, X: 300, Y: 40, Width: 200, Height: 60}})
	signingtest.CheckIndependently(t, sealed, 2)
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
	key, p := signingtest.SoftHSMSeal(t)
	a := signingtest.NewTSA(t, p)
	sealed, _ := signingtest.SealPDF(t, key, pdftest.Bytes(pdftest.Spec{}), pades.Options{
		Certify: pades.NoChangesAllowed, Level: signing.LevelBLTA, Timestamper: a.SHA256Client,
		Revocation: pades.RevocationOptions{CRLs: [][]byte{caCRL(t, p)}},
	})
	signingtest.CheckIndependently(t, sealed, 2)
	rep, err := verifyPDF(t, sealed, p)
	if err != nil {
		t.Fatalf("VerifyPDF: %v", err)
	}
	if s := rep.Signatures[0]; s.Certification != pades.NoChangesAllowed || s.Level != signing.LevelBLTA || rep.Signatures[1].Type != "documentTimestamp" {
		t.Errorf("signatures: %+v", rep.Signatures)
	}
}

// A new seal field's name is unique among all the form's fields, of any
// type (ISO 32000-1 §12.7.3.2), not only among signature fields.
func TestPAdESFieldNameUnique(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	r, root, cat := signingtest.OpenCatalog(t, doc)
	page, err := r.Page(1)
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
	sealed, res := signingtest.SealPDF(t, key, withText, pades.Options{})
	if res.Field != "Seal2" {
		t.Errorf("field %q, want Seal2 beside the text field seal1", res.Field)
	}
	signingtest.CheckIndependently(t, sealed, 1)
	if _, err := verifyPDF(t, sealed, p); err != nil {
		t.Errorf("VerifyPDF: %v", err)
	}
}
