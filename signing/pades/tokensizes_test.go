package pades_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/tsa"
)

// relay passes requests to whichever real authority is current, as a TSA
// that renews its certificate does between two seals.
type relay struct {
	to       atomic.Pointer[tsa.Client]
	requests atomic.Int64
}

func (r *relay) Timestamp(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, error) {
	r.requests.Add(1)
	return r.to.Load().Timestamp(ctx, digest, h)
}

// At B-T the placeholder is sized from the authority's earlier tokens: one
// request per seal after the first. When the authority's tokens grow past
// the placeholder (here: a new RSA-4096 certificate sent with
// cross-certificates), the seal
// still succeeds with one signature, through a document timestamp, reaches
// B-T, and the next seal fits again.
func TestPAdESTokenSizesRemembered(t *testing.T) {
	p := signingtest.SharedPKI(t)
	small := signingtest.NewTSA(t, p).SHA256Client
	bigKey, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	bigCert, err := p.CA.IssueTSA(bigKey.Public(), "Example Manufacturing GmbH", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The renewed authority also sends cross-certificates with its tokens.
	chain := []*x509.Certificate{bigCert, p.CA.Cert}
	for _, org := range []string{"Cross A", "Cross B", "Cross C"} {
		cross, err := devpki.NewCA(org)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, cross.Cert)
	}
	resp, err := tsa.NewResponder(bigKey, chain, tsa.ResponderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(resp)
	t.Cleanup(srv.Close)
	big, err := tsa.NewClient(tsa.ClientConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}

	r := &relay{}
	r.to.Store(small)
	ts := pades.RememberTokenSizes(r)
	doc := pdftest.Bytes(pdftest.Spec{})
	seal := func(name string, wantSignatures int, wantRequests int64) {
		t.Helper()
		r.requests.Store(0)
		ck := &signingtest.CountingKey{Key: p.Keys["rsa-2048"]}
		sealed, res := signingtest.SealPDF(t, ck, doc, pades.Options{Level: signing.LevelBT, Timestamper: ts})
		if n := ck.Signs.Load(); n != 1 {
			t.Errorf("%s: the key signed %d times", name, n)
		}
		if n := r.requests.Load(); n != wantRequests {
			t.Errorf("%s: %d timestamp requests, want %d", name, n, wantRequests)
		}
		signingtest.CheckIndependently(t, sealed, wantSignatures)
		rep, err := verifyPDF(t, sealed, p)
		if err != nil {
			t.Fatalf("%s: VerifyPDF: %v", name, err)
		}
		if s := rep.Signatures[0]; !s.Valid || s.Level != signing.LevelBT || res.Level != signing.LevelBT || len(rep.Signatures) != wantSignatures {
			t.Errorf("%s: result level %s, signatures %+v", name, res.Level, rep.Signatures)
		}
	}
	seal("first seal (sample, then the token)", 1, 2)
	seal("second seal (size known)", 1, 1)
	r.to.Store(big)
	seal("larger token than the placeholder", 2, 2)
	seal("after the larger token", 1, 1)
}
