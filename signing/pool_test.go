package signing_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/softkey"
)

// devSealConfig writes a development seal (key and chain files) and returns
// a configuration naming it as seal "dev".
func devSealConfig(t *testing.T) signing.PoolConfig {
	t.Helper()
	ca, err := devpki.NewCA("Example Manufacturing GmbH")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueSeal(k.Public(), devpki.SealSubject{Organization: "Example Manufacturing GmbH", Country: "DE"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, chainFile := filepath.Join(dir, "dev.key"), filepath.Join(dir, "dev.pem")
	if err := devpki.WriteKeyPEM(keyFile, k); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(chainFile, cert, ca.Cert); err != nil {
		t.Fatal(err)
	}
	return signing.PoolConfig{Seals: []signing.SealConfig{{ID: "dev", SoftKey: &signing.SoftKeyConfig{Key: keyFile, Certificate: chainFile}}}}
}

// The pool serves a seal through whichever backend opens its keys, reports
// the card that signed, and refuses a seal no backend it was given serves.
func TestPoolOverBackends(t *testing.T) {
	cfg := devSealConfig(t)
	var logs bytes.Buffer
	pool, err := signing.NewPool(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), softkey.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if !strings.Contains(logs.String(), "development — not qualified") {
		t.Errorf("no warning that the seal is not qualified:\n%s", logs.String())
	}
	key, err := pool.Key("dev")
	if err != nil {
		t.Fatal(err)
	}
	ctx, by := signing.WithSignedBy(context.Background())
	digest := sha256.Sum256([]byte("delivery note 4711"))
	sig, err := signing.SignContext(ctx, key, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(key.Chain()[0].PublicKey.(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("the signature does not verify with the seal certificate")
	}
	if by.Card != "software key" {
		t.Errorf("signed by %q, want the software key", by.Card)
	}
	if st := pool.Seals(); len(st) != 1 || !st[0].Software || st[0].HealthyCards != 1 || len(st[0].Cards) != 0 {
		t.Errorf("seal status %+v; want one software seal, healthy, on no card", st)
	}
	if cards := pool.Status(); len(cards) != 0 {
		t.Errorf("a software key is listed as a card: %+v", cards)
	}
	if err := pool.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if _, err := pool.Key("other"); fault.CodeOf(err) != signing.CodeSealUnknown {
		t.Errorf("unknown seal: %v, want %s", err, signing.CodeSealUnknown)
	}

	if _, err := signing.NewPool(context.Background(), cfg, nil); fault.CodeOf(err) != signing.CodeConfigInvalid {
		t.Errorf("a seal without a backend: %v, want %s", err, signing.CodeConfigInvalid)
	}
}

// On a card without batch signing, SignBatch signs digest by digest, and a
// Batch gathers concurrent signers into it; a run that leaves does not
// hold up the others.
func TestSignBatchOnPlainCard(t *testing.T) {
	pool, err := signing.NewPool(context.Background(), devSealConfig(t), nil, softkey.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	k, err := pool.Key("dev")
	if err != nil {
		t.Fatal(err)
	}
	key := k.(*signing.SealKey)
	if key.Batches() {
		t.Error("Batches is true for a seal without a card that signs batches")
	}
	pub := key.Public().(*ecdsa.PublicKey)
	digests := make([][]byte, 10)
	for i := range digests {
		d := sha256.Sum256([]byte{byte(i)})
		digests[i] = d[:]
	}
	sigs, err := key.SignBatch(context.Background(), digests, crypto.SHA256)
	if err != nil || len(sigs) != len(digests) {
		t.Fatalf("SignBatch: %d signatures, %v", len(sigs), err)
	}
	for i, sig := range sigs {
		if !ecdsa.VerifyASN1(pub, digests[i], sig) {
			t.Errorf("signature %d does not verify", i)
		}
	}

	batch := key.NewBatch(len(digests)+1, time.Minute)
	batch.Leave() // one run failed before signing
	start := time.Now()
	errs := make(chan error, len(digests))
	for i := range digests {
		go func() {
			sig, err := signing.SignContext(context.Background(), batch, digests[i], crypto.SHA256)
			if err == nil && !ecdsa.VerifyASN1(pub, digests[i], sig) {
				err = fmt.Errorf("signature %d does not verify", i)
			}
			errs <- err
		}()
	}
	for range digests {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if time.Since(start) > 10*time.Second {
		t.Error("the batch waited for the run that left")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := key.NewBatch(2, time.Minute).SignContext(ctx, digests[0], crypto.SHA256); err != context.DeadlineExceeded {
		t.Errorf("a run waiting for a batch that never fills: %v, want its own deadline", err)
	}
}
