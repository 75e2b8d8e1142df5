package cms_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
)

// A seal certificate valid for one more hour, and its key.
func shortLivedSeal(t *testing.T, p *signingtest.PKI) signing.Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.CA.IssueSeal(k.Public(), signingtest.SealSubject, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := softkey.New(k, []*x509.Certificate{cert, p.CA.Cert})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// A B-T signature outlives its seal certificate: verified after the
// certificate expired, its chain is checked at the timestamp's genTime,
// while the timestamp authority's chain is checked at the verification
// time. Without a timestamp, or with one that does not verify, the chain is
// checked at the verification time and the expired certificate fails.
func TestVerifyCMSLTVAtTimestampTime(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p) // its certificate lives 24 hours
	key := shortLivedSeal(t, p)
	doc := []byte("Certificate of conformity 2026-311\n")
	sign := func(opts cms.CAdESOptions) []byte {
		t.Helper()
		res, err := cms.CAdES(context.Background(), key, bytes.NewReader(doc), opts)
		if err != nil {
			t.Fatal(err)
		}
		return res.Signature
	}
	bt, bb := sign(cms.CAdESOptions{Timestamper: ts.SHA256Client}), sign(cms.CAdESOptions{})
	stranger, err := devpki.NewCA("Someone Else")
	if err != nil {
		t.Fatal(err)
	}
	later, muchLater := time.Now().Add(2*time.Hour), time.Now().Add(48*time.Hour)

	for _, tc := range []struct {
		name      string
		sig       []byte
		opts      cms.VerifyOptions
		want      []fault.Code // the findings, in order
		atGenTime bool         // the chain is checked at the timestamp's genTime, else at opts.At
	}{
		{"B-T, the seal certificate expired since", bt, cms.VerifyOptions{Roots: p.Roots, At: later}, nil, true},
		{"B-B, the seal certificate expired since", bb, cms.VerifyOptions{Roots: p.Roots, At: later}, []fault.Code{cms.CodeChainUntrusted}, false},
		{"B-T whose timestamp authority is not trusted", bt, cms.VerifyOptions{Roots: p.Roots, TSARoots: poolOf(stranger.Cert), At: later},
			[]fault.Code{cms.CodeChainUntrusted, cms.CodeChainUntrusted}, false},
		{"B-T whose timestamp authority expired too", bt, cms.VerifyOptions{Roots: p.Roots, At: muchLater},
			[]fault.Code{cms.CodeChainUntrusted, cms.CodeChainUntrusted}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := cms.Verify(context.Background(), tc.sig, cms.SignedContent{Reader: bytes.NewReader(doc)}, tc.opts)
			if r == nil {
				t.Fatalf("no report: %v", err)
			}
			var got []fault.Code
			for _, f := range r.Errors {
				got = append(got, f.Code)
			}
			if !slices.Equal(got, tc.want) || (err == nil) != (len(tc.want) == 0) {
				t.Fatalf("findings %+v (error %v), want codes %v", r.Errors, err, tc.want)
			}
			if len(got) == 2 && !strings.Contains(r.Errors[1].Message, ts.Cert.Subject.CommonName) {
				t.Errorf("the second finding %q is not about the timestamp authority", r.Errors[1].Message)
			}
			wantAt := tc.opts.At.UTC()
			if tc.atGenTime {
				if r.Timestamp == nil {
					t.Fatalf("no verified timestamp")
				}
				wantAt = r.Timestamp.GenTime
			}
			if !r.ChainValidatedAt.Equal(wantAt) {
				t.Errorf("chain validated at %v, want %v", r.ChainValidatedAt, wantAt)
			}
			if len(tc.want) == 0 {
				if r.Level != signing.LevelBT || len(r.Chain) != 2 || !r.Chain[0].NotAfter.Before(tc.opts.At) {
					t.Errorf("level %q chain %+v, want a B-T whose seal certificate expired before %v", r.Level, r.Chain, tc.opts.At)
				}
				js, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(js, []byte(`"chainValidatedAt":"`+wantAt.Format(time.RFC3339Nano)+`"`)) {
					t.Errorf("report JSON does not give chainValidatedAt %v: %s", wantAt, js)
				}
			}
		})
	}
}
