package evidence

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/store"
)

// openLog opens a log on a fresh SQLite file in dir (a t.TempDir()).
func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, db, opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		db.Close()
	})
	return l
}

// testEntry is the i-th entry of a test log; its documents are
// sha256("sealed i") and sha256("original i").
func testEntry(i int) Entry {
	return Entry{
		SealedSHA256:     sha256.Sum256(fmt.Appendf(nil, "sealed %d", i)),
		OriginalSHA256:   sha256.Sum256(fmt.Appendf(nil, "original %d", i)),
		SealID:           "invoices",
		SignerCertSHA256: sha256.Sum256([]byte("seal certificate")),
		Format:           []string{FormatPAdES, FormatCAdES}[i%2],
		Level:            "B-LT",
		Time:             time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		PrincipalHash:    sha256.Sum256(fmt.Appendf(nil, "principal %d", i%7)),
	}
}

func testEntries(from, n int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		es[i] = testEntry(from + i)
	}
	return es
}

// devPKI is a development CA with a seal and a TSA certificate, written as
// PEM files for openssl.
type devPKI struct {
	dir             string
	ca              *devpki.CA
	sealCert        *devpki.CA // certificate and key of the seal
	tsa             *devpki.CA // certificate and key of the TSA
	caFile, tsaFile string
	sealFile        string
}

func newDevPKI(t testing.TB) *devPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := devpki.NewCA("Example GmbH")
	if err != nil {
		t.Fatal(err)
	}
	p := &devPKI{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.pem"), tsaFile: filepath.Join(dir, "tsa.pem"), sealFile: filepath.Join(dir, "seal.pem")}
	sk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sc, err := ca.IssueSeal(sk.Public(), devpki.SealSubject{Organization: "Example GmbH", Country: "DE"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tc, err := ca.IssueTSA(tk.Public(), "Example GmbH", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p.sealCert = &devpki.CA{Cert: sc, Key: sk}
	p.tsa = &devpki.CA{Cert: tc, Key: tk}
	for f, c := range map[string]*devpki.CA{p.caFile: ca, p.tsaFile: p.tsa, p.sealFile: p.sealCert} {
		if err := devpki.WriteCertsPEM(f, c.Cert); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Timestamp issues a real RFC 3161 token from the development TSA
// certificate (signing.Timestamper).
func (p *devPKI) Timestamp(_ context.Context, digest []byte, h crypto.Hash) ([]byte, error) {
	ts := timestamp.Timestamp{HashAlgorithm: h, HashedMessage: digest, Time: time.Now(),
		Policy: []int{1, 3, 6, 1, 4, 1, 99999, 1}, AddTSACertificate: true}
	resp, err := ts.CreateResponseWithOpts(p.tsa.Cert, p.tsa.Key, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	parsed, err := timestamp.ParseResponse(resp)
	if err != nil {
		return nil, err
	}
	return parsed.RawToken, nil
}

// Seal makes a detached CMS signature with the seal certificate (Options.Sealer).
func (p *devPKI) Seal(_ context.Context, content []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(p.sealCert.Cert, p.sealCert.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	sd.Detach()
	return sd.Finish()
}

// opensslSeal verifies a detached CMS signature with `openssl cms -verify`.
func (p *devPKI) opensslSeal(content, p7s []byte) error {
	dir, err := os.MkdirTemp(p.dir, "cms")
	if err != nil {
		return err
	}
	c, s := filepath.Join(dir, "content"), filepath.Join(dir, "sig.p7s")
	os.WriteFile(c, content, 0o600)
	os.WriteFile(s, p7s, 0o600)
	out, err := exec.Command("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", s, "-content", c,
		"-CAfile", p.caFile, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
	if err != nil {
		return fmt.Errorf("openssl cms -verify: %v: %s", err, out)
	}
	return nil
}

// opensslToken verifies a timestamp token's signature and chain with
// `openssl ts -verify`, against the imprint the token states (the caller
// compares the imprint with what it expects).
func (p *devPKI) opensslToken(token []byte) error {
	tst, err := timestamp.Parse(token)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(p.dir, "tst")
	if err != nil {
		return err
	}
	f.Write(token)
	f.Close()
	out, err := exec.Command("openssl", "ts", "-verify", "-digest", hex.EncodeToString(tst.HashedMessage),
		"-in", f.Name(), "-token_in", "-CAfile", p.caFile, "-untrusted", p.tsaFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("openssl ts -verify: %v: %s", err, out)
	}
	return nil
}
