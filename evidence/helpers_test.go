package evidence

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/softkey"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/tsa"
	"github.com/sealgate/sealgate/tsa/tsatest"
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

// devPKI is a development CA with a seal key and a timestamp authority
// (the tsa package's development Responder on a loopback HTTP server),
// its certificates written as PEM files for openssl.
type devPKI struct {
	dir             string
	caFile, tsaFile string
	seal            signing.Key
	// tsa is a real RFC 3161 client of the loopback authority (signing.Timestamper).
	tsa *tsa.Client
}

func newDevPKI(t testing.TB) *devPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := devpki.NewCA("Example GmbH")
	if err != nil {
		t.Fatal(err)
	}
	p := &devPKI{dir: dir, caFile: filepath.Join(dir, "ca.pem"), tsaFile: filepath.Join(dir, "tsa.pem")}
	sk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sc, err := ca.IssueSeal(sk.Public(), devpki.SealSubject{Organization: "Example GmbH", Country: "DE"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.seal, err = softkey.New(sk, []*x509.Certificate{sc, ca.Cert}); err != nil {
		t.Fatal(err)
	}
	authority := tsatest.Start(t, ca)
	p.tsa = authority.Client(t, "")
	tc := authority.Chain[0]
	if err := devpki.WriteCertsPEM(p.caFile, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(p.tsaFile, tc); err != nil {
		t.Fatal(err)
	}
	return p
}

// Seal makes a detached CAdES signature with the seal key (Options.Sealer).
func (p *devPKI) Seal(ctx context.Context, content []byte) ([]byte, error) {
	res, err := cms.CAdES(ctx, p.seal, bytes.NewReader(content), cms.CAdESOptions{})
	if err != nil {
		return nil, err
	}
	return res.Signature, nil
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
