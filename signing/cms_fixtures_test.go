package signing_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/tsa"
	"github.com/sealgate/sealgate/tsa/tsatest"
)

// testPKI is a development CA with seal keys of every supported type, made
// once per test binary because RSA key generation is slow.
type testPKI struct {
	ca   *devpki.CA
	keys map[string]*signing.SoftKey // by name: "ecdsa-p256", "ecdsa-p384", "rsa-2048"
	// signers are the same keys as plain crypto.Signers, for writing PEM files.
	signers map[string]crypto.Signer
	roots   *x509.CertPool
}

var (
	pkiOnce sync.Once
	pki     *testPKI
	pkiErr  error
)

func sharedPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		ca, err := devpki.NewCA("Example Manufacturing GmbH")
		if err != nil {
			pkiErr = err
			return
		}
		p := &testPKI{ca: ca, keys: map[string]*signing.SoftKey{}, signers: map[string]crypto.Signer{}, roots: x509.NewCertPool()}
		p.roots.AddCert(ca.Cert)
		gens := map[string]func() (crypto.Signer, error){
			"ecdsa-p256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
			"ecdsa-p384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
			"rsa-2048":   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		}
		for name, gen := range gens {
			k, err := gen()
			if err != nil {
				pkiErr = err
				return
			}
			cert, err := ca.IssueSeal(k.Public(), devpkiSubject, 24*time.Hour)
			if err != nil {
				pkiErr = err
				return
			}
			p.signers[name] = k
			if p.keys[name], err = signing.NewSoftKey(k, []*x509.Certificate{cert, ca.Cert}); err != nil {
				pkiErr = err
				return
			}
		}
		pki = p
	})
	if pkiErr != nil {
		t.Fatalf("development PKI: %v", pkiErr)
	}
	return pki
}

var devpkiSubject = devpki.SealSubject{Organization: "Example Manufacturing GmbH", Country: "DE"}

// caFile writes the CA certificate for openssl's -CAfile.
func (p *testPKI) caFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := devpki.WriteCertsPEM(path, p.ca.Cert); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingKey counts how often the real key underneath is asked to sign.
type countingKey struct {
	signing.Key
	signs atomic.Int32
}

func (k *countingKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.signs.Add(1)
	return k.Key.Sign(r, digest, opts)
}

// runOpenSSL runs openssl and returns its combined output.
func runOpenSSL(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// opensslVerifyDetached checks a detached CMS signature over the document file with openssl cms.
func opensslVerifyDetached(t testing.TB, sig []byte, docPath, caPath string) (string, error) {
	t.Helper()
	sigPath := writeFile(t, t.TempDir(), "s.p7s", sig)
	return runOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath,
		"-content", docPath, "-CAfile", caPath, "-purpose", "any", "-out", os.DevNull)
}

// opensslPrint returns openssl's dump of a CMS structure.
func opensslPrint(t testing.TB, sig []byte) string {
	t.Helper()
	sigPath := writeFile(t, t.TempDir(), "s.p7s", sig)
	out, err := runOpenSSL(t, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sigPath)
	if err != nil {
		t.Fatalf("openssl cms -cmsout -print: %v\n%s", err, out)
	}
	return out
}

// flipByte returns a copy of b with one bit of its middle byte changed.
func flipByte(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0x01
	return c
}

// testTSA is the development timestamp authority on loopback, certified by
// the shared test CA, and a client for it.
type testTSA struct {
	*tsatest.Authority
	client *tsa.Client // asks for SHA-256 imprints
	cert   *x509.Certificate
	pem    string // the TSA certificate, for openssl's -untrusted
}

// clientFor returns a client asking for imprints made with hash ("sha384", ...).
func (ts *testTSA) clientFor(t testing.TB, hash string) *tsa.Client {
	return ts.Client(t, hash)
}

func newTestTSA(t testing.TB, p *testPKI) *testTSA {
	t.Helper()
	a := tsatest.Start(t, p.ca)
	return &testTSA{Authority: a, client: a.Client(t, "sha256"), cert: a.Chain[0], pem: a.CertFile}
}

// signatureTimestamp extracts, with an independent CMS parser, the
// signature value and its signature-time-stamp token.
func signatureTimestamp(t testing.TB, sig []byte) (value, token []byte) {
	t.Helper()
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		t.Fatalf("pkcs7.Parse: %v", err)
	}
	si := p7.Signers[0]
	for _, a := range si.UnauthenticatedAttributes {
		if a.Type.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}) {
			return si.EncryptedDigest, a.Value.Bytes
		}
	}
	t.Fatalf("no signature-time-stamp attribute")
	return nil, nil
}
