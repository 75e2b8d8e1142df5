package cms_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// A detached CMS signature from anyone (a .p7s uploaded for verification,
// a timestamp token): Verify answers with a report or a coded error, never
// a panic; a report never calls a signature over other content valid.
func FuzzVerify(f *testing.F) {
	p := signingtest.SharedPKI(f)
	doc := []byte("order 4711")
	res, err := cms.CAdES(context.Background(), p.Keys["ecdsa-p256"], bytes.NewReader(doc), cms.CAdESOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(res.Signature)
	f.Add(res.Signature[:len(res.Signature)/2])
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	f.Fuzz(func(t *testing.T, sig []byte) {
		for _, content := range [][]byte{doc, []byte("order 4712")} {
			rep, err := cms.Verify(context.Background(), sig, cms.SignedContent{Reader: bytes.NewReader(content)}, cms.VerifyOptions{Roots: roots})
			if err != nil && rep == nil && fault.As(err) == nil {
				t.Fatalf("uncoded error %v", err)
			}
			if rep != nil && rep.Valid && !bytes.Equal(content, doc) {
				t.Fatal("a signature over the document verifies over another")
			}
		}
	})
}
