package pades_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// nssSign signs file with poppler's pdfsig through an NSS database holding
// a certificate of the test CA (and trusting the CA), as another producer would: NSS writes the
// CMS in BER, with indefinite lengths.
func nssSign(t *testing.T, p *signingtest.PKI, file []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	key := p.Signers["rsa-2048"]
	cert, err := p.CA.IssueSeal(key.Public(), devpki.SealSubject{Organization: "Other Producer GmbH", Country: "DE"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, certPEM := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if err := devpki.WriteKeyPEM(keyPEM, key); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(certPEM, cert, p.CA.Cert); err != nil {
		t.Fatal(err)
	}
	db := nssTrustDB(t, p.CA.Cert)
	in, out := signingtest.WriteTemp(t, "in.pdf", file), filepath.Join(dir, "out.pdf")
	runCommands(t, [][]string{
		{"openssl", "pkcs12", "-export", "-inkey", keyPEM, "-in", certPEM, "-name", "other", "-passout", "pass:pw", "-out", filepath.Join(dir, "x.p12")},
		{"pk12util", "-i", filepath.Join(dir, "x.p12"), "-d", db, "-W", "pw"},
		{"pdfsig", "-add-signature", "-nssdir", db, "-nick", "other", "-new-signature-field-name", "Other", in, out},
	})
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// A signature poppler/NSS made (BER-encoded CMS) verifies, alone and with a
// sealgate seal after it, and before it.
func TestVerifyPDFSignedByNSS(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	signed := nssSign(t, p, doc)
	// The point of the test: NSS writes the CMS in BER (indefinite lengths).
	if !bytes.Contains(bytes.ToLower(signed), []byte("/contents <3080")) {
		t.Fatal("the NSS signature's /Contents does not start with an indefinite-length SEQUENCE")
	}
	rep, err := verifyPDF(t, signed, p)
	if err != nil || len(rep.Signatures) != 1 || !rep.Signatures[0].Valid {
		t.Fatalf("VerifyPDF of the NSS signature: %v, %+v", err, rep)
	}
	sealed, _ := signingtest.SealPDF(t, key, signed, pades.Options{})
	f := signingtest.WriteTemp(t, "sealed.pdf", sealed)
	if out, err := exec.Command("pdfsig", "-nocert", f).CombinedOutput(); err != nil || bytes.Count(out, []byte("Signature is Valid.")) != 2 {
		t.Errorf("pdfsig: %v\n%s", err, out)
	}
	if out, err := exec.Command("qpdf", "--check", f).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
	if rep, err := verifyPDF(t, sealed, p); err != nil || len(rep.Signatures) != 2 {
		t.Errorf("VerifyPDF after a seal on the NSS signature: %v", err)
	}
	sealedFirst, _ := signingtest.SealPDF(t, key, doc, pades.Options{})
	both := nssSign(t, p, sealedFirst)
	if rep, err := verifyPDF(t, both, p); err != nil || len(rep.Signatures) != 2 {
		t.Errorf("VerifyPDF of an NSS signature after a seal: %v", err)
	}
}

// nssTrustDB makes an NSS database in which the first certificate is a
// trusted CA and the others are known, untrusted certificates.
func nssTrustDB(t *testing.T, ca *x509.Certificate, known ...*x509.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "nss")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	cmds := [][]string{{"certutil", "-N", "-d", "sql:" + db, "--empty-password"}}
	for i, c := range append([]*x509.Certificate{ca}, known...) {
		pem := filepath.Join(dir, fmt.Sprintf("cert%d.pem", i))
		if err := devpki.WriteCertsPEM(pem, c); err != nil {
			t.Fatal(err)
		}
		trust := ",,"
		if i == 0 {
			trust = "CT,C,C"
		}
		cmds = append(cmds, []string{"certutil", "-A", "-d", "sql:" + db, "-n", fmt.Sprintf("cert%d", i), "-t", trust, "-i", pem})
	}
	runCommands(t, cmds)
	return "sql:" + db
}

// runCommands runs each command in turn; the first that fails ends the test.
func runCommands(t *testing.T, cmds [][]string) {
	t.Helper()
	for _, cmd := range cmds {
		if msg, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, msg)
		}
	}
}

// pdfsig, validating certificates through NSS, trusts every one of
// repeated B-LT seals of a document when its database knows the seal
// certificate. (Without it, poppler 22.12 reports the second and later
// seals of one certificate as "Unknown issue with Certificate or
// corrupted data": it compares the certificate with the first
// signature's copy after freeing that, see the README.)
func TestPDFSigTrustsRepeatedSeals(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	a := signingtest.NewTSA(t, p)
	opts := pades.Options{Level: signing.LevelBLT, Timestamper: a.SHA256Client, Revocation: pades.RevocationOptions{CRLs: [][]byte{caCRL(t, p)}}}
	doc := pdftest.Bytes(pdftest.Spec{})
	const seals = 3
	for range seals {
		doc, _ = signingtest.SealPDF(t, key, doc, opts)
	}
	f := signingtest.WriteTemp(t, "sealed.pdf", doc)
	out, err := exec.Command("pdfsig", "-nssdir", nssTrustDB(t, p.CA.Cert, key.Chain()[0]), f).CombinedOutput()
	if err != nil || bytes.Count(out, []byte("Signature is Valid.")) != seals || bytes.Count(out, []byte("Certificate is Trusted.")) != seals {
		t.Errorf("pdfsig: want %d valid and trusted seals: %v\n%s", seals, err, out)
	}
}
