package cms_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// openssl's RSA-PSS signatures verify with the salt length their parameters
// state: OpenSSL 3's default (the maximum, 222 bytes for RSA-2048 and
// SHA-256), the hash length, and 20 (the default, left out of the
// parameters). What crypto/rsa cannot check is refused as unsupported, and
// a stated salt length other than the one used does not verify.
func TestVerifyCMSOpenSSLPSSSaltLengths(t *testing.T) {
	p := signingtest.SharedPKI(t)
	dir := t.TempDir()
	doc := []byte("Salted differently\n")
	docPath := signingtest.WriteFile(t, dir, "doc", doc)
	keyPath, certPath := opensslKeyFiles(t, p, dir)
	sign := func(t *testing.T, md string, keyopts ...string) []byte {
		t.Helper()
		sigPath := filepath.Join(t.TempDir(), "s.p7s")
		args := []string{"cms", "-sign", "-cades", "-binary", "-in", docPath, "-signer", certPath, "-inkey", keyPath,
			"-md", md, "-outform", "DER", "-out", sigPath, "-keyopt", "rsa_padding_mode:pss"}
		for _, o := range keyopts {
			args = append(args, "-keyopt", o)
		}
		if out, err := signingtest.RunOpenSSL(t, args...); err != nil {
			t.Fatalf("openssl cms -sign: %v\n%s", err, out)
		}
		sig, err := os.ReadFile(sigPath)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	verify := func(sig []byte) (*cms.Report, error) {
		return cms.Verify(context.Background(), sig, cms.SignedContent{Reader: bytes.NewReader(doc)}, cms.VerifyOptions{Roots: p.Roots})
	}

	for _, tc := range []struct {
		name    string
		md      string
		keyopts []string
		want    fault.Code
		wantAlg string
	}{
		{"default salt (the maximum)", "sha256", nil, "", "SHA256-RSAPSS"},
		{"maximum salt, SHA-384", "sha384", []string{"rsa_pss_saltlen:max"}, "", "SHA384-RSAPSS"},
		{"salt of the hash length", "sha256", []string{"rsa_pss_saltlen:32"}, "", "SHA256-RSAPSS"},
		{"salt of 20, left out as the default", "sha512", []string{"rsa_pss_saltlen:20"}, "", "SHA512-RSAPSS"},
		{"no salt", "sha256", []string{"rsa_pss_saltlen:0"}, cms.CodeAlgorithmUnsupported, "SHA256-RSAPSS"},
		{"MGF1 with another hash", "sha256", []string{"rsa_mgf1_md:sha512"}, cms.CodeAlgorithmUnsupported, "SHA256-RSAPSS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := verify(sign(t, tc.md, tc.keyopts...))
			if fault.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if tc.want == "" && (!r.Valid || r.Level != signing.LevelBB || r.SignatureAlgorithm != tc.wantAlg) {
				t.Errorf("valid %v level %q algorithm %s, want a valid B-B %s", r.Valid, r.Level, r.SignatureAlgorithm, tc.wantAlg)
			}
		})
	}

	// The parameters are outside what the signature covers: stating a salt
	// of 221 bytes for one of 222 (INTEGER 0x00de) must break verification.
	sig := sign(t, "sha256", "rsa_pss_saltlen:max")
	stated := []byte{0xa2, 0x04, 0x02, 0x02, 0x00, 0xde}
	if bytes.Count(sig, stated) != 1 {
		t.Fatalf("the signature does not state a 222-byte salt once")
	}
	if _, err := verify(bytes.Replace(sig, stated, []byte{0xa2, 0x04, 0x02, 0x02, 0x00, 0xdd}, 1)); fault.CodeOf(err) != cms.CodeSignatureInvalid {
		t.Errorf("salt length changed to 221: got %v, want %s", err, cms.CodeSignatureInvalid)
	}
}
