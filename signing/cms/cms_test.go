package cms_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
)

func digestOf(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// A detached SignCMS signature verifies with openssl for every supported key
// type and hash, carries signing-certificate-v2, carries signingTime unless
// told not to (PAdES), and stops verifying when one document bit changes.
func TestSignCMSVerifiesWithOpenSSL(t *testing.T) {
	p := signingtest.SharedPKI(t)
	caPath := p.CAFile(t)
	doc := []byte("Invoice 2026-0042\nTotal: 1,234.56 EUR\n")
	tests := []struct {
		name            string
		key             string
		hash            crypto.Hash
		pss             bool
		omitSigningTime bool
		wantAlg         string // as openssl prints the signatureAlgorithm
	}{
		{"ECDSA P-256 SHA-256", "ecdsa-p256", crypto.SHA256, false, false, "ecdsa-with-SHA256"},
		{"ECDSA P-384 SHA-384", "ecdsa-p384", crypto.SHA384, false, false, "ecdsa-with-SHA384"},
		{"ECDSA P-256 SHA-512", "ecdsa-p256", crypto.SHA512, false, false, "ecdsa-with-SHA512"},
		{"RSA PKCS#1 v1.5 SHA-256", "rsa-2048", crypto.SHA256, false, false, "sha256WithRSAEncryption"},
		{"RSA PKCS#1 v1.5 SHA-384", "rsa-2048", crypto.SHA384, false, false, "sha384WithRSAEncryption"},
		{"RSA PKCS#1 v1.5 SHA-512", "rsa-2048", crypto.SHA512, false, false, "sha512WithRSAEncryption"},
		{"RSA-PSS SHA-256", "rsa-2048", crypto.SHA256, true, false, "rsassaPss"},
		{"RSA-PSS SHA-512", "rsa-2048", crypto.SHA512, true, false, "rsassaPss"},
		{"PAdES baseline: no signing time", "rsa-2048", crypto.SHA256, false, true, "sha256WithRSAEncryption"},
		{"PAdES baseline ECDSA", "ecdsa-p256", crypto.SHA256, false, true, "ecdsa-with-SHA256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			docPath := signingtest.WriteFile(t, dir, "doc", doc)
			sig, err := cms.Sign(context.Background(), p.Keys[tc.key], digestOf(tc.hash, doc), tc.hash,
				cms.Options{PSS: tc.pss, OmitSigningTime: tc.omitSigningTime})
			if err != nil {
				t.Fatalf("SignCMS: %v", err)
			}
			if out, err := signingtest.OpenSSLVerifyDetached(t, sig, docPath, caPath); err != nil {
				t.Fatalf("openssl cms -verify rejected the signature: %v\n%s", err, out)
			}
			tampered := signingtest.WriteFile(t, dir, "tampered", signingtest.FlipByte(doc))
			if out, err := signingtest.OpenSSLVerifyDetached(t, sig, tampered, caPath); err == nil {
				t.Fatalf("openssl cms -verify accepted a tampered document:\n%s", out)
			}
			dump := signingtest.OpenSSLPrint(t, sig)
			for _, want := range []string{"signingCertificateV2", "contentType", "messageDigest", tc.wantAlg} {
				if !strings.Contains(dump, want) {
					t.Errorf("openssl -print does not show %s", want)
				}
			}
			// ESSCertIDv2 opens with the certificate's SHA-256 (the DEFAULT
			// hashAlgorithm is omitted), then issuerSerial: directoryName and serial.
			seal := p.Keys[tc.key].Chain()[0]
			essCertID := regexp.MustCompile(fmt.Sprintf(`d=2 .*SEQUENCE\s*\n.*d=3 .*OCTET STRING\s*\[HEX DUMP\]:%X\n(.*\n)+?.*cont \[ 4 \](.*\n)+?.*INTEGER\s*:%X\n`,
				sha256.Sum256(seal.Raw), seal.SerialNumber.Bytes()))
			if !essCertID.MatchString(dump) {
				t.Errorf("signingCertificateV2 does not hold ESSCertIDv2 {SHA-256 of the seal certificate, issuerSerial}:\n%s", dump)
			}
			if got := strings.Contains(dump, "signingTime"); got == tc.omitSigningTime {
				t.Errorf("signingTime present = %v, want %v", got, !tc.omitSigningTime)
			}
			// openssl dumps RSASSA-PSS-params raw: saltLength is the INTEGER in [2], in hex.
			saltLength := regexp.MustCompile(fmt.Sprintf(`cont \[ 2 \]\s*\n.*INTEGER\s*:%X\n`, tc.hash.Size()))
			if tc.pss && !saltLength.MatchString(dump) {
				t.Errorf("RSASSA-PSS salt length is not the %d-byte hash length:\n%s", tc.hash.Size(), dump)
			}
		})
	}
}

// The encapsulated variant carries the content and its content type, as an
// RFC 3161 token carries its TSTInfo; openssl verifies it without -content
// and hands back the content unchanged.
func TestSignCMSEncapsulatesContent(t *testing.T) {
	p := signingtest.SharedPKI(t)
	content := []byte("content that travels inside the signature")
	sig, err := cms.Sign(context.Background(), p.Keys["ecdsa-p256"], nil, crypto.SHA256,
		cms.Options{Content: content, ContentType: cms.OIDTSTInfo})
	if err != nil {
		t.Fatalf("SignCMS: %v", err)
	}
	dir := t.TempDir()
	sigPath := signingtest.WriteFile(t, dir, "s.p7s", sig)
	outPath := filepath.Join(dir, "content")
	if out, err := signingtest.RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath,
		"-CAfile", p.CAFile(t), "-purpose", "any", "-out", outPath); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	got, err := os.ReadFile(outPath)
	if err != nil || string(got) != string(content) {
		t.Fatalf("openssl extracted %q (%v), want %q", got, err, content)
	}
	if dump := signingtest.OpenSSLPrint(t, sig); !strings.Contains(dump, "id-smime-ct-TSTInfo") {
		t.Errorf("eContentType is not id-ct-TSTInfo:\n%s", dump)
	}

	if _, err := cms.Sign(context.Background(), p.Keys["ecdsa-p256"], digestOf(crypto.SHA256, []byte("other")), crypto.SHA256,
		cms.Options{Content: content}); fault.CodeOf(err) != cms.CodeDigestMismatch {
		t.Errorf("a digest that does not match the content: got %v, want %s", err, cms.CodeDigestMismatch)
	}
}

// The key is asked to sign exactly once per signature, and not at all when
// the context is already done: a seal card's slot is precious.
func TestSignCMSSignsOnceAndHonoursContext(t *testing.T) {
	p := signingtest.SharedPKI(t)
	doc := digestOf(crypto.SHA256, []byte("doc"))
	for _, name := range []string{"rsa-2048", "ecdsa-p256"} {
		key := &signingtest.CountingKey{Key: p.Keys[name]}
		if _, err := cms.Sign(context.Background(), key, doc, crypto.SHA256, cms.Options{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := key.Signs.Load(); n != 1 {
			t.Errorf("%s: key.Sign called %d times, want 1", name, n)
		}
	}

	key := &signingtest.CountingKey{Key: p.Keys["ecdsa-p256"]}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cms.Sign(ctx, key, doc, crypto.SHA256, cms.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
	if n := key.Signs.Load(); n != 0 {
		t.Errorf("cancelled context: key.Sign called %d times, want 0", n)
	}
}

// Inputs SignCMS cannot turn into a signature are refused with stable codes.
func TestSignCMSRefusesUnsupportedInput(t *testing.T) {
	p := signingtest.SharedPKI(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edCert, err := p.CA.IssueSeal(edKey.Public(), signingtest.SealSubject, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := softkey.New(edKey, []*x509.Certificate{edCert})
	if err != nil {
		t.Fatal(err)
	}
	d256 := digestOf(crypto.SHA256, []byte("doc"))
	tests := []struct {
		name   string
		key    signing.Key
		digest []byte
		hash   crypto.Hash
		opts   cms.Options
		want   fault.Code
	}{
		{"Ed25519 key", ed, d256, crypto.SHA256, cms.Options{}, cms.CodeAlgorithmUnsupported},
		{"PSS with an ECDSA key", p.Keys["ecdsa-p256"], d256, crypto.SHA256, cms.Options{PSS: true}, cms.CodeAlgorithmUnsupported},
		{"SHA-1", p.Keys["rsa-2048"], digestOf(crypto.SHA1, []byte("doc")), crypto.SHA1, cms.Options{}, cms.CodeAlgorithmUnsupported},
		{"digest of the wrong length", p.Keys["rsa-2048"], d256[:20], crypto.SHA256, cms.Options{}, cms.CodeDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cms.Sign(context.Background(), tc.key, tc.digest, tc.hash, tc.opts)
			if fault.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want code %s", err, tc.want)
			}
		})
	}
}
