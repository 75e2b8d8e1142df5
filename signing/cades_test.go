package signing_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/tsa"
)

// cadesCase is one way of sealing a document as CAdES.
type cadesCase struct {
	name  string
	key   signing.Key
	opts  signing.CAdESOptions
	level signing.Level
	// tsHash is the timestamp imprint's hash when it differs from SHA-256.
	tsHash crypto.Hash
}

// checkCAdES holds every CAdES output to the independent verifiers: openssl
// cms verifies it over the document and refuses it over a document with one
// flipped bit, as does VerifyCMS; openssl shows signingCertificateV2 and
// signingTime; a B-T signature's token verifies with openssl ts and tsa.Verify
// over the signature value.
func checkCAdES(t *testing.T, p *testPKI, ts *testTSA, tc cadesCase, doc []byte) {
	t.Helper()
	res, err := signing.CAdES(context.Background(), tc.key, bytes.NewReader(doc), tc.opts)
	if err != nil {
		t.Fatalf("CAdES: %v", err)
	}
	wantSHA := sha256.Sum256(doc)
	if !bytes.Equal(res.SHA256, wantSHA[:]) || res.Size != int64(len(doc)) || res.Level != tc.level {
		t.Errorf("result: sha256 %x size %d level %s, want %x %d %s", res.SHA256, res.Size, res.Level, wantSHA, len(doc), tc.level)
	}
	dir := t.TempDir()
	caPath := p.caFile(t)
	docPath := writeFile(t, dir, "doc", doc)
	if out, err := opensslVerifyDetached(t, res.Signature, docPath, caPath); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	tampered := flipByte(doc)
	if out, err := opensslVerifyDetached(t, res.Signature, writeFile(t, dir, "tampered", tampered), caPath); err == nil {
		t.Errorf("openssl cms -verify accepted a tampered document:\n%s", out)
	}
	dump := opensslPrint(t, res.Signature)
	for _, want := range []string{"signingCertificateV2", "signingTime"} {
		if !strings.Contains(dump, want) {
			t.Errorf("openssl -print does not show %s", want)
		}
	}

	opts := signing.CMSVerifyOptions{Roots: p.roots}
	report, err := signing.VerifyCMS(context.Background(), res.Signature, signing.SignedContent{Reader: bytes.NewReader(doc)}, opts)
	if err != nil {
		t.Fatalf("VerifyCMS: %v", err)
	}
	if !report.Valid || report.Level != tc.level || !report.SigningCertificateV2Matches || report.SigningTime == nil {
		t.Errorf("report: valid %v level %s v2 match %v signing time %v, want valid %s with both", report.Valid, report.Level, report.SigningCertificateV2Matches, report.SigningTime, tc.level)
	}
	if _, err := signing.VerifyCMS(context.Background(), res.Signature, signing.SignedContent{Reader: bytes.NewReader(tampered)}, opts); fault.CodeOf(err) != signing.CodeDigestMismatch {
		t.Errorf("VerifyCMS of a tampered document: got %v, want %s", err, signing.CodeDigestMismatch)
	}

	if tc.level != signing.LevelBT {
		return
	}
	value, token := signatureTimestamp(t, res.Signature)
	if out, err := runOpenSSL(t, "ts", "-verify", "-data", writeFile(t, dir, "sigvalue", value), "-in", writeFile(t, dir, "tst.der", token),
		"-token_in", "-CAfile", caPath, "-untrusted", ts.pem); err != nil || !strings.Contains(out, "Verification: OK") {
		t.Errorf("openssl ts -verify of the signature timestamp: %v\n%s", err, out)
	}
	tsHash := crypto.SHA256
	if tc.tsHash != 0 {
		tsHash = tc.tsHash
	}
	info, err := tsa.Verify(token, digestOf(tsHash, value), tsHash, tsa.VerifyOptions{Roots: p.roots})
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
	p := sharedPKI(t)
	ts := newTestTSA(t, p)
	doc := []byte(strings.Repeat("Invoice line: 1 x widget, 9.99 EUR\n", 2000))
	for _, tc := range []cadesCase{
		{"ECDSA P-256 B-B", p.keys["ecdsa-p256"], signing.CAdESOptions{}, signing.LevelBB, 0},
		{"RSA-2048 PKCS#1 v1.5 B-B", p.keys["rsa-2048"], signing.CAdESOptions{}, signing.LevelBB, 0},
		{"RSA-2048 PSS B-B", p.keys["rsa-2048"], signing.CAdESOptions{PSS: true}, signing.LevelBB, 0},
		{"RSA-2048 SHA-512 B-B", p.keys["rsa-2048"], signing.CAdESOptions{Hash: crypto.SHA512}, signing.LevelBB, 0},
		{"ECDSA P-384 SHA-384 B-B", p.keys["ecdsa-p384"], signing.CAdESOptions{Hash: crypto.SHA384}, signing.LevelBB, 0},
		{"ECDSA P-256 B-T", p.keys["ecdsa-p256"], signing.CAdESOptions{Timestamper: ts.client}, signing.LevelBT, 0},
		{"RSA-2048 PKCS#1 v1.5 B-T", p.keys["rsa-2048"], signing.CAdESOptions{Timestamper: ts.client}, signing.LevelBT, 0},
		{"RSA-2048 PSS B-T", p.keys["rsa-2048"], signing.CAdESOptions{PSS: true, Timestamper: ts.client}, signing.LevelBT, 0},
		{"RSA-2048 SHA-512 B-T, TSA asked for SHA-384", p.keys["rsa-2048"], signing.CAdESOptions{Hash: crypto.SHA512, Timestamper: ts.clientFor(t, "sha384")}, signing.LevelBT, crypto.SHA384},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCAdES(t, p, ts, tc, doc) })
	}
}

// softHSMKey is a development seal whose key lives on a SoftHSM token,
// reached through the seal pool as in production.
func softHSMKey(t testing.TB, p *testPKI) signing.Key {
	t.Helper()
	h := signingtest.NewSoftHSM(t)
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{CA: p.ca, Key: p.signers["rsa-2048"]})
	pool, err := signing.NewPool(context.Background(), cfg, slog.New(slog.DiscardHandler))
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

// A seal card (SoftHSM token through the pool) makes CAdES signatures that
// pass the same verifiers, with PKCS#1 v1.5 and with PSS, B-B and B-T.
func TestCAdESWithSoftHSMKey(t *testing.T) {
	p := sharedPKI(t)
	ts := newTestTSA(t, p)
	key := softHSMKey(t, p)
	doc := []byte("Delivery note 7781, sealed on a card\n")
	for _, tc := range []cadesCase{
		{"PKCS#1 v1.5 B-B", key, signing.CAdESOptions{}, signing.LevelBB, 0},
		{"PSS B-B", key, signing.CAdESOptions{PSS: true}, signing.LevelBB, 0},
		{"PKCS#1 v1.5 B-T", key, signing.CAdESOptions{Timestamper: ts.client}, signing.LevelBT, 0},
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
	p := sharedPKI(t)
	ts := newTestTSA(t, p)
	down := httptest.NewServer(nil)
	down.Close()
	unreachable, err := tsa.NewClient(tsa.ClientConfig{URL: down.URL})
	if err != nil {
		t.Fatal(err)
	}
	key := p.keys["ecdsa-p256"]
	tests := []struct {
		name string
		doc  io.Reader
		opts signing.CAdESOptions
		want fault.Code
		kind fault.Kind
	}{
		{"empty document", bytes.NewReader(nil), signing.CAdESOptions{}, signing.CodeDocumentEmpty, fault.Invalid},
		{"reader fails at once", iotest.ErrReader(errors.New("connection reset by peer")), signing.CAdESOptions{}, signing.CodeInputUnreadable, fault.Invalid},
		{"reader fails midway", io.MultiReader(strings.NewReader("half a document"), iotest.ErrReader(errors.New("unexpected EOF"))), signing.CAdESOptions{}, signing.CodeInputUnreadable, fault.Invalid},
		{"timestamp authority unreachable", strings.NewReader("doc"), signing.CAdESOptions{Timestamper: unreachable}, signing.CodeTimestampFailed, fault.Unavailable},
		{"token over other data", strings.NewReader("doc"), signing.CAdESOptions{Timestamper: lyingTimestamper{ts.client}}, signing.CodeTimestampFailed, fault.Unavailable},
		{"MD5", strings.NewReader("doc"), signing.CAdESOptions{Hash: crypto.MD5}, signing.CodeAlgorithmUnsupported, fault.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signing.CAdES(context.Background(), key, tc.doc, tc.opts)
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
	p := sharedPKI(t)
	key := &countingKey{Key: p.keys["ecdsa-p256"]}
	doc := newStreamedDocument(t, gigabyte)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := signing.CAdES(ctx, key, cancellingReader{doc, cancel}, signing.CAdESOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if read := gigabyte - doc.remaining; read > 1<<20 {
		t.Errorf("%d bytes read after the context ended, want the stream abandoned", read)
	}
	if n := key.signs.Load(); n != 0 {
		t.Errorf("key.Sign called %d times after the context ended", n)
	}
}
