package cms_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// A B-T seal yields a report naming the signer, its chain, the signing
// time, signing-certificate-v2 and the timestamp, in camelCase JSON.
func TestVerifyCMSReport(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p)
	doc := []byte("Contract 2026/17, page 1 of 1\n")
	signedAt := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	res, err := cms.CAdES(context.Background(), p.Keys["rsa-2048"], bytes.NewReader(doc),
		cms.CAdESOptions{Timestamper: ts.SHA256Client, SigningTime: signedAt})
	if err != nil {
		t.Fatal(err)
	}
	r, err := cms.Verify(context.Background(), res.Signature, cms.SignedContent{Digest: res.Digest, Hash: res.Hash},
		cms.VerifyOptions{Roots: p.Roots})
	if err != nil {
		t.Fatalf("VerifyCMS: %v", err)
	}
	seal := p.Keys["rsa-2048"].Chain()[0]
	switch {
	case !r.Valid || r.Level != signing.LevelBT:
		t.Errorf("valid %v level %s, want a valid B-T", r.Valid, r.Level)
	case !r.SignerCertificate.Equal(seal) || r.Signer != seal.Subject.String():
		t.Errorf("signer %q, want %q", r.Signer, seal.Subject)
	case len(r.Chain) != 2 || r.Chain[1].Subject != p.CA.Cert.Subject.String():
		t.Errorf("chain %+v, want the seal and the development CA", r.Chain)
	case r.SigningTime == nil || !r.SigningTime.Equal(signedAt):
		t.Errorf("signing time %v, want %v", r.SigningTime, signedAt)
	case r.DigestAlgorithm != "SHA-256" || r.SignatureAlgorithm != "SHA256-RSA" || r.ContentType != "1.2.840.113549.1.7.1":
		t.Errorf("algorithms %s / %s, content type %s", r.DigestAlgorithm, r.SignatureAlgorithm, r.ContentType)
	case r.Timestamp == nil || !r.Timestamp.Certificate.Equal(ts.Cert) || time.Since(r.Timestamp.GenTime) > time.Minute:
		t.Errorf("timestamp %+v, want a fresh token from the test TSA", r.Timestamp)
	}

	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"valid", "level", "signer", "chain", "signingTime", "signingCertificateV2", "signingCertificateV2Matches", "timestamp", "digestAlgorithm"} {
		if _, ok := fields[key]; !ok {
			t.Errorf("report JSON lacks %q: %s", key, js)
		}
	}
	if tsFields, _ := fields["timestamp"].(map[string]any); tsFields["genTime"] == nil || tsFields["tsa"] == nil {
		t.Errorf("timestamp JSON lacks genTime or tsa: %s", js)
	}
}

// A signature whose claimed signing time lies after its own timestamp is
// refused: one of the two times is false.
func TestVerifyCMSTimestampOrder(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p)
	doc := []byte("Backdated? No: postdated.\n")
	for _, tc := range []struct {
		name        string
		signingTime time.Time
		want        fault.Code
	}{
		{"signing time before the timestamp", time.Now().Add(-time.Minute), ""},
		{"signing time an hour after the timestamp", time.Now().Add(time.Hour), cms.CodeTimestampBeforeSigningTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := cms.CAdES(context.Background(), p.Keys["ecdsa-p256"], bytes.NewReader(doc),
				cms.CAdESOptions{Timestamper: ts.SHA256Client, SigningTime: tc.signingTime})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cms.Verify(context.Background(), res.Signature, cms.SignedContent{Reader: bytes.NewReader(doc)},
				cms.VerifyOptions{Roots: p.Roots})
			if fault.CodeOf(err) != tc.want {
				t.Errorf("got %v, want code %q", err, tc.want)
			}
		})
	}
}

// Each way a signature can be wrong is reported with its own code, and a
// report is still returned for signatures that could be decoded.
func TestVerifyCMSFindings(t *testing.T) {
	p := signingtest.SharedPKI(t)
	doc := []byte("Purchase order 5512\n")
	sig, err := cms.Sign(context.Background(), p.Keys["ecdsa-p256"], digestOf(crypto.SHA256, doc), crypto.SHA256, cms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := devpki.NewCA("Someone Else")
	if err != nil {
		t.Fatal(err)
	}
	strangerRoots := x509.NewCertPool()
	strangerRoots.AddCert(stranger.Cert)
	// The ECDSA signature value is the last OCTET STRING: its final byte is
	// the last byte of the ContentInfo (no unsigned attributes).
	badValue := append([]byte(nil), sig...)
	badValue[len(badValue)-1] ^= 0x01
	// Renaming the content-type attribute (1.2.840.113549.1.9.3) to
	// message-digest (…9.4) makes two message-digest attributes.
	contentTypeOID := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03}
	twoDigests := bytes.Replace(sig, contentTypeOID, append(contentTypeOID[:10:10], 0x04), 1)

	tests := []struct {
		name       string
		sig        []byte
		content    cms.SignedContent
		roots      *x509.CertPool
		at         time.Time
		want       fault.Code
		wantReport bool
	}{
		{"tampered document", sig, cms.SignedContent{Reader: bytes.NewReader(signingtest.FlipByte(doc))}, p.Roots, time.Time{}, cms.CodeDigestMismatch, true},
		{"digest made with another hash", sig, cms.SignedContent{Digest: digestOf(crypto.SHA512, doc), Hash: crypto.SHA512}, p.Roots, time.Time{}, cms.CodeDigestMismatch, false},
		{"tampered signature value", badValue, cms.SignedContent{Reader: bytes.NewReader(doc)}, p.Roots, time.Time{}, cms.CodeSignatureInvalid, true},
		{"unknown root", sig, cms.SignedContent{Reader: bytes.NewReader(doc)}, strangerRoots, time.Time{}, cms.CodeChainUntrusted, true},
		{"after the seal certificate expired", sig, cms.SignedContent{Reader: bytes.NewReader(doc)}, p.Roots, time.Now().AddDate(0, 0, 3), cms.CodeChainUntrusted, true},
		{"message-digest attribute twice", twoDigests, cms.SignedContent{Reader: bytes.NewReader(doc)}, p.Roots, time.Time{}, cms.CodeMalformed, false},
		{"not CMS", []byte("-----BEGIN PKCS7-----"), cms.SignedContent{Reader: bytes.NewReader(doc)}, p.Roots, time.Time{}, cms.CodeMalformed, false},
		{"truncated", sig[:len(sig)/2], cms.SignedContent{Reader: bytes.NewReader(doc)}, p.Roots, time.Time{}, cms.CodeMalformed, false},
		{"detached without document", sig, cms.SignedContent{}, p.Roots, time.Time{}, signing.CodeInputUnreadable, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := cms.Verify(context.Background(), tc.sig, tc.content, cms.VerifyOptions{Roots: tc.roots, At: tc.at})
			if fault.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if (r != nil) != tc.wantReport {
				t.Fatalf("report returned = %v, want %v", r != nil, tc.wantReport)
			}
			if r != nil && (r.Valid || r.Level != "" || len(r.Errors) == 0 || r.Errors[0].Code != tc.want) {
				t.Errorf("report valid %v level %q errors %+v, want invalid with %s first", r.Valid, r.Level, r.Errors, tc.want)
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cms.Verify(ctx, sig, cms.SignedContent{Reader: bytes.NewReader(doc)}, cms.VerifyOptions{Roots: p.Roots}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
}

// opensslKeyFiles writes the shared RSA-2048 test key and its certificate
// as PEM files in dir, for openssl to sign with.
func opensslKeyFiles(t testing.TB, p *signingtest.PKI, dir string) (keyPath, certPath string) {
	t.Helper()
	keyPath, certPath = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if err := devpki.WriteKeyPEM(keyPath, p.Signers["rsa-2048"]); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(certPath, p.Keys["rsa-2048"].Chain()[0]); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

// Signatures made by another implementation verify too: openssl's CAdES
// (-cades adds signing-certificate-v2) reaches B-B, a plain openssl CMS
// signature is valid but names no baseline level, and openssl's RSA-PSS
// signature with its own parameter encoding verifies.
func TestVerifyCMSAcceptsOpenSSLSignatures(t *testing.T) {
	p := signingtest.SharedPKI(t)
	dir := t.TempDir()
	doc := []byte("Signed elsewhere\n")
	docPath := signingtest.WriteFile(t, dir, "doc", doc)
	keyPath, certPath := opensslKeyFiles(t, p, dir)
	for _, tc := range []struct {
		name  string
		args  []string
		level signing.Level
	}{
		{"CAdES", []string{"-cades"}, signing.LevelBB},
		{"plain CMS", nil, ""},
		{"CAdES RSA-PSS", []string{"-cades", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:32"}, signing.LevelBB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigPath := filepath.Join(dir, "s.p7s")
			args := append([]string{"cms", "-sign", "-binary", "-in", docPath, "-signer", certPath, "-inkey", keyPath,
				"-md", "sha256", "-outform", "DER", "-out", sigPath}, tc.args...)
			if out, err := signingtest.RunOpenSSL(t, args...); err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, out)
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				t.Fatal(err)
			}
			r, err := cms.Verify(context.Background(), sig, cms.SignedContent{Reader: bytes.NewReader(doc)},
				cms.VerifyOptions{Roots: p.Roots, Intermediates: poolOf(p.CA.Cert)})
			if err != nil {
				t.Fatalf("VerifyCMS: %v", err)
			}
			if !r.Valid || r.Level != tc.level {
				t.Errorf("valid %v level %q, want valid %q", r.Valid, r.Level, tc.level)
			}
			if strings.Contains(strings.Join(tc.args, " "), "pss") && !strings.Contains(r.SignatureAlgorithm, "PSS") {
				t.Errorf("signature algorithm %s, want RSASSA-PSS", r.SignatureAlgorithm)
			}
		})
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
