package signingtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"io"
	"log/slog"
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
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/softkey"
	"github.com/sealgate/sealgate/tsa"
	"github.com/sealgate/sealgate/tsa/tsatest"
)

var (
	pkiOnce sync.Once
	pki     *PKI
	pkiErr  error
)

// PKI is a development CA with seal keys of every supported type, made
// once per test binary because RSA key generation is slow.
type PKI struct {
	CA   *devpki.CA
	Keys map[string]*softkey.Key // by name: "ecdsa-p256", "ecdsa-p384", "rsa-2048"
	// Signers are the same keys as plain crypto.Signers, for writing PEM files.
	Signers map[string]crypto.Signer
	Roots   *x509.CertPool
}

func SharedPKI(t testing.TB) *PKI {
	t.Helper()
	pkiOnce.Do(func() {
		ca, err := devpki.NewCA("Example Manufacturing GmbH")
		if err != nil {
			pkiErr = err
			return
		}
		p := &PKI{CA: ca, Keys: map[string]*softkey.Key{}, Signers: map[string]crypto.Signer{}, Roots: x509.NewCertPool()}
		p.Roots.AddCert(ca.Cert)
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
			cert, err := ca.IssueSeal(k.Public(), SealSubject, 24*time.Hour)
			if err != nil {
				pkiErr = err
				return
			}
			p.Signers[name] = k
			if p.Keys[name], err = softkey.New(k, []*x509.Certificate{cert, ca.Cert}); err != nil {
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

var SealSubject = devpki.SealSubject{Organization: "Example Manufacturing GmbH", Country: "DE"}

// CAFile writes the CA certificate for openssl's -CAfile.
func (p *PKI) CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := devpki.WriteCertsPEM(path, p.CA.Cert); err != nil {
		t.Fatal(err)
	}
	return path
}

// CountingKey counts how often the real key underneath is asked to sign.
type CountingKey struct {
	signing.Key
	Signs atomic.Int32
}

func (k *CountingKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.Signs.Add(1)
	return k.Key.Sign(r, digest, opts)
}

// RunOpenSSL runs openssl and returns its combined output.
func RunOpenSSL(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// WriteFile writes b to a new file in dir and returns its path.
func WriteFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// OpenSSLVerifyDetached checks a detached CMS signature over the document file with openssl cms.
func OpenSSLVerifyDetached(t testing.TB, sig []byte, docPath, caPath string) (string, error) {
	t.Helper()
	sigPath := WriteFile(t, t.TempDir(), "s.p7s", sig)
	return RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath,
		"-content", docPath, "-CAfile", caPath, "-purpose", "any", "-out", os.DevNull)
}

// OpenSSLPrint returns openssl's dump of a CMS structure.
func OpenSSLPrint(t testing.TB, sig []byte) string {
	t.Helper()
	sigPath := WriteFile(t, t.TempDir(), "s.p7s", sig)
	out, err := RunOpenSSL(t, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sigPath)
	if err != nil {
		t.Fatalf("openssl cms -cmsout -print: %v\n%s", err, out)
	}
	return out
}

// FlipByte returns a copy of b with one bit of its middle byte changed.
func FlipByte(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)/2] ^= 0x01
	return c
}

// TSA is the development timestamp authority on loopback, certified by
// the shared test CA, and a client for it.
type TSA struct {
	*tsatest.Authority
	SHA256Client *tsa.Client // asks for SHA-256 imprints
	Cert         *x509.Certificate
	PEM          string // the TSA certificate, for openssl's -untrusted
}

// ClientFor returns a client asking for imprints made with hash ("sha384", ...).
func (ts *TSA) ClientFor(t testing.TB, hash string) *tsa.Client {
	return ts.Client(t, hash)
}

func NewTSA(t testing.TB, p *PKI) *TSA {
	t.Helper()
	a := tsatest.Start(t, p.CA)
	return &TSA{Authority: a, SHA256Client: a.Client(t, "sha256"), Cert: a.Chain[0], PEM: a.CertFile}
}

// SignatureTimestamp extracts, with an independent CMS parser, the
// signature value and its signature-time-stamp token.
func SignatureTimestamp(t testing.TB, sig []byte) (value, token []byte) {
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

// SoftHSMKey is a development seal whose key lives on a SoftHSM token,
// reached through the seal pool as in production.
func SoftHSMKey(t testing.TB, p *PKI) signing.Key {
	t.Helper()
	h := NewSoftHSM(t)
	cfg, _ := DevSeal(t, h, DevSealOptions{CA: p.CA, Key: p.Signers["rsa-2048"]})
	pool, err := signing.NewPool(context.Background(), cfg, slog.New(slog.DiscardHandler), pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	key, err := pool.Key("dev")
	if err != nil {
		t.Fatal(err)
	}
	return key
}
