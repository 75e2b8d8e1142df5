package cms_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/tsa"
)

// cadesCase is one way of sealing a document as CAdES.
type cadesCase struct {
	name  string
	key   signing.Key
	opts  cms.CAdESOptions
	level signing.Level
	// tsHash is the timestamp imprint's hash when it differs from SHA-256.
	tsHash crypto.Hash
}

// checkCAdES holds every CAdES output to the independent verifiers: openssl
// cms verifies it over the document and refuses it over a document with one
// flipped bit, as does VerifyCMS; openssl shows signingCertificateV2 and
// signingTime; a B-T signature's token verifies with openssl ts and tsa.Verify
// over the signature value.
func checkCAdES(t *testing.T, p *signingtest.PKI, ts *signingtest.TSA, tc cadesCase, doc []byte) {
	t.Helper()
	res, err := cms.CAdES(context.Background(), tc.key, bytes.NewReader(doc), tc.opts)
	if err != nil {
		t.Fatalf("CAdES: %v", err)
	}
	wantSHA := sha256.Sum256(doc)
	if !bytes.Equal(res.SHA256, wantSHA[:]) || res.Size != int64(len(doc)) || res.Level != tc.level {
		t.Errorf("result: sha256 %x size %d level %s, want %x %d %s", res.SHA256, res.Size, res.Level, wantSHA, len(doc), tc.level)
	}
	dir := t.TempDir()
	caPath := p.CAFile(t)
	docPath := signingtest.WriteFile(t, dir, "doc", doc)
	if out, err := signingtest.OpenSSLVerifyDetached(t, res.Signature, docPath, caPath); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	tampered := signingtest.FlipByte(doc)
	if out, err := signingtest.OpenSSLVerifyDetached(t, res.Signature, signingtest.WriteFile(t, dir, "tampered", tampered), caPath); err == nil {
		t.Errorf("openssl cms -verify accepted a tampered document:\n%s", out)
	}
	dump := signingtest.OpenSSLPrint(t, res.Signature)
	for _, want := range []string{"signingCertificateV2", "signingTime"} {
		if !strings.Contains(dump, want) {
			t.Errorf("openssl -print does not show %s", want)
		}
	}

	opts := cms.VerifyOptions{Roots: p.Roots}
	report, err := cms.Verify(context.Background(), res.Signature, cms.SignedContent{Reader: bytes.NewReader(doc)}, opts)
	if err != nil {
		t.Fatalf("VerifyCMS: %v", err)
	}
	if !report.Valid || report.Level != tc.level || !report.SigningCertificateV2Matches || report.SigningTime == nil {
		t.Errorf("report: valid %v level %s v2 match %v signing time %v, want valid %s with both", report.Valid, report.Level, report.SigningCertificateV2Matches, report.SigningTime, tc.level)
	}
	if _, err := cms.Verify(context.Background(), res.Signature, cms.SignedContent{Reader: bytes.NewReader(tampered)}, opts); fault.CodeOf(err) != cms.CodeDigestMismatch {
		t.Errorf("VerifyCMS of a tampered document: got %v, want %s", err, cms.CodeDigestMismatch)
	}

	if tc.level != signing.LevelBT {
		return
	}
	value, token := signingtest.SignatureTimestamp(t, res.Signature)
	if out, err := signingtest.RunOpenSSL(t, "ts", "-verify", "-data", signingtest.WriteFile(t, dir, "sigvalue", value), "-in", signingtest.WriteFile(t, dir, "tst.der", token),
		"-token_in", "-CAfile", caPath, "-untrusted", ts.PEM); err != nil || !strings.Contains(out, "Verification: OK") {
		t.Errorf("openssl ts -verify of the signature timestamp: %v\n%s", err, out)
	}
	tsHash := crypto.SHA256
	if tc.tsHash != 0 {
		tsHash = tc.tsHash
	}
	info, err := tsa.Verify(token, digestOf(tsHash, value), tsHash, tsa.VerifyOptions{Roots: p.Roots})
	if err != nil {
		t.Fatalf("tsa.Verify of the signature timestamp: %v", err)
	}
	if report.Timestamp == nil || !report.Timestamp.GenTime.Equal(info.GenTime) || report.Timestamp.SerialNumber != info.SerialNumber {
		t.Errorf("report timestamp %+v, want genTime %v serial %s", report.Timestamp, info.GenTime, info.SerialNumber)
	}
}

// CAdES B-B and B-T signatures from software keys of every kind pass the
// independent verifiers.
func TestCAdESVerifiesWithOpenSSL(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p)
	doc := []byte(strings.Repeat("Invoice line: 1 x widget, 9.99 EUR\n", 2000))
	for _, tc := range []cadesCase{
		{"ECDSA P-256 B-B", p.Keys["ecdsa-p256"], cms.CAdESOptions{}, signing.LevelBB, 0},
		{"RSA-2048 PKCS#1 v1.5 B-B", p.Keys["rsa-2048"], cms.CAdESOptions{}, signing.LevelBB, 0},
		{"RSA-2048 PSS B-B", p.Keys["rsa-2048"], cms.CAdESOptions{PSS: true}, signing.LevelBB, 0},
		{"RSA-2048 SHA-512 B-B", p.Keys["rsa-2048"], cms.CAdESOptions{Hash: crypto.SHA512}, signing.LevelBB, 0},
		{"ECDSA P-384 SHA-384 B-B", p.Keys["ecdsa-p384"], cms.CAdESOptions{Hash: crypto.SHA384}, signing.LevelBB, 0},
		{"ECDSA P-256 B-T", p.Keys["ecdsa-p256"], cms.CAdESOptions{Timestamper: ts.SHA256Client}, signing.LevelBT, 0},
		{"RSA-2048 PKCS#1 v1.5 B-T", p.Keys["rsa-2048"], cms.CAdESOptions{Timestamper: ts.SHA256Client}, signing.LevelBT, 0},
		{"RSA-2048 PSS B-T", p.Keys["rsa-2048"], cms.CAdESOptions{PSS: true, Timestamper: ts.SHA256Client}, signing.LevelBT, 0},
		{"RSA-2048 SHA-512 B-T, TSA asked for SHA-384", p.Keys["rsa-2048"], cms.CAdESOptions{Hash: crypto.SHA512, Timestamper: ts.ClientFor(t, "sha384")}, signing.LevelBT, crypto.SHA384},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCAdES(t, p, ts, tc, doc) })
	}
}

// A seal card (SoftHSM token through the pool) makes CAdES signatures that
// pass the same verifiers, with PKCS#1 v1.5 and with PSS, B-B and B-T.
func TestCAdESWithSoftHSMKey(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p)
	key := signingtest.SoftHSMKey(t, p)
	doc := []byte("Delivery note 7781, sealed on a card\n")
	for _, tc := range []cadesCase{
		{"PKCS#1 v1.5 B-B", key, cms.CAdESOptions{}, signing.LevelBB, 0},
		{"PSS B-B", key, cms.CAdESOptions{PSS: true}, signing.LevelBB, 0},
		{"PKCS#1 v1.5 B-T", key, cms.CAdESOptions{Timestamper: ts.SHA256Client}, signing.LevelBT, 0},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCAdES(t, p, ts, tc, doc) })
	}
}

// lyingTimestamper obtains a real token, but over other data.
type lyingTimestamper struct{ real signing.Timestamper }

func (l lyingTimestamper) Timestamp(ctx context.Context, digest []byte, hash crypto.Hash) ([]byte, error) {
	return l.real.Timestamp(ctx, digestOf(hash, []byte("something else")), hash)
}

// Inputs and failures CAdES cannot seal around give stable codes.
func TestCAdESFailures(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p)
	down := httptest.NewServer(nil)
	down.Close()
	unreachable, err := tsa.NewClient(tsa.ClientConfig{URL: down.URL})
	if err != nil {
		t.Fatal(err)
	}
	key := p.Keys["ecdsa-p256"]
	tests := []struct {
		name string
		doc  io.Reader
		opts cms.CAdESOptions
		want fault.Code
		kind fault.Kind
	}{
		{"empty document", bytes.NewReader(nil), cms.CAdESOptions{}, cms.CodeDocumentEmpty, fault.Invalid},
		{"reader fails at once", iotest.ErrReader(errors.New("connection reset by peer")), cms.CAdESOptions{}, signing.CodeInputUnreadable, fault.Invalid},
		{"reader fails midway", io.MultiReader(strings.NewReader("half a document"), iotest.ErrReader(errors.New("unexpected EOF"))), cms.CAdESOptions{}, signing.CodeInputUnreadable, fault.Invalid},
		{"timestamp authority unreachable", strings.NewReader("doc"), cms.CAdESOptions{Timestamper: unreachable}, signing.CodeTimestampFailed, fault.Unavailable},
		{"token over other data", strings.NewReader("doc"), cms.CAdESOptions{Timestamper: lyingTimestamper{ts.SHA256Client}}, signing.CodeTimestampFailed, fault.Unavailable},
		{"MD5", strings.NewReader("doc"), cms.CAdESOptions{Hash: crypto.MD5}, cms.CodeAlgorithmUnsupported, fault.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cms.CAdES(context.Background(), key, tc.doc, tc.opts)
			e := fault.As(err)
			if e == nil || e.Code != tc.want || e.Kind != tc.kind {
				t.Fatalf("got %v, want code %s kind %d", err, tc.want, tc.kind)
			}
		})
	}
}

// cancellingReader cancels its context once it has handed out its first chunk.
type cancellingReader struct {
	doc    *streamedDocument
	cancel context.CancelFunc
}

func (r cancellingReader) Read(p []byte) (int, error) {
	defer r.cancel()
	return r.doc.Read(p)
}

// A caller that gives up stops the stream: the rest of the document is not
// read and the key is never asked to sign.
func TestCAdESStopsWhenContextEnds(t *testing.T) {
	p := signingtest.SharedPKI(t)
	key := &signingtest.CountingKey{Key: p.Keys["ecdsa-p256"]}
	doc := newStreamedDocument(t, gigabyte)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := cms.CAdES(ctx, key, cancellingReader{doc, cancel}, cms.CAdESOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if read := gigabyte - doc.remaining; read > 1<<20 {
		t.Errorf("%d bytes read after the context ended, want the stream abandoned", read)
	}
	if n := key.Signs.Load(); n != 0 {
		t.Errorf("key.Sign called %d times after the context ended", n)
	}
}
