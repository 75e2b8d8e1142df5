// Package tsatest runs a development RFC 3161 timestamp authority on a
// loopback port for tests: a P-256 key, a certificate issued by the test's
// CA (critical timeStamping EKU), and the tsa package's Responder.
package tsatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/tsa"
)

// Authority is a running development TSA.
type Authority struct {
	// URL is where it answers timestamp queries.
	URL string
	// Key and Chain (its certificate, then the CA) sign its tokens.
	Key   *ecdsa.PrivateKey
	Chain []*x509.Certificate
	// CertFile holds its certificate as PEM, for openssl ts -untrusted.
	CertFile string
}

// Start issues the authority's certificate from ca and serves it until the
// test ends.
func Start(t testing.TB, ca *devpki.CA) *Authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueTSA(key.Public(), "Example Manufacturing GmbH", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{cert, ca.Cert}
	r, err := tsa.NewResponder(key, chain, tsa.ResponderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	a := &Authority{URL: srv.URL, Key: key, Chain: chain, CertFile: filepath.Join(t.TempDir(), "tsa.pem")}
	if err := devpki.WriteCertsPEM(a.CertFile, cert); err != nil {
		t.Fatal(err)
	}
	return a
}

// Client returns a client of the authority asking for hash ("" for SHA-256).
func (a *Authority) Client(t testing.TB, hash string) *tsa.Client {
	t.Helper()
	c, err := tsa.NewClient(tsa.ClientConfig{URL: a.URL, Hash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
