package pkcs11_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
)

// newPool starts a pool on cfg, capturing its log, and closes it with the test.
func newPool(t *testing.T, cfg signing.PoolConfig) (*signing.Pool, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	p, err := signing.NewPool(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, &logs
}

// verify checks sig over digest with pub using Go's crypto.
func verify(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(pub, pss.Hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errBadSignature
		}
		return nil
	}
	return errBadSignature
}

var errBadSignature = errors.New("signature does not verify")

func mustKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case "rsa4096":
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPoolSignsWithEveryAlgorithm(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	sum256 := sha256.Sum256([]byte("invoice 2026-0042"))
	sum384 := sha512.Sum384([]byte("invoice 2026-0042"))
	sum512 := sha512.Sum512([]byte("invoice 2026-0042"))
	cases := []struct {
		seal, key string
		digest    []byte
		opts      crypto.SignerOpts
	}{
		{"rsa2048-pkcs1", "rsa2048", sum256[:], crypto.SHA256},
		{"rsa2048-pss-auto", "rsa2048", sum256[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthAuto}},
		{"rsa3072-pss-hashlen", "rsa3072", sum384[:], &rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: rsa.PSSSaltLengthEqualsHash}},
		{"rsa4096-pkcs1-sha512", "rsa4096", sum512[:], crypto.SHA512},
		{"ecdsa-p256", "p256", sum256[:], crypto.SHA256},
		{"ecdsa-p384", "p384", sum384[:], crypto.SHA384},
	}
	var cfgs []signing.PoolConfig
	for _, c := range cases {
		cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: c.seal, Tokens: []string{c.seal}, Key: mustKey(t, c.key), Sessions: 1})
		cfgs = append(cfgs, cfg)
	}
	pool, _ := newPool(t, signingtest.Merge(cfgs...))
	for _, c := range cases {
		t.Run(c.seal, func(t *testing.T) {
			key, err := pool.Key(c.seal)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := key.Sign(rand.Reader, c.digest, c.opts)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if err := verify(key.Chain()[0].PublicKey, c.digest, sig, c.opts); err != nil {
				t.Fatalf("signature made through the pool: %v", err)
			}
		})
	}
}

// card returns the status of the card labelled token.
func card(t *testing.T, p *signing.Pool, token string) signing.CardStatus {
	t.Helper()
	for _, c := range p.Status() {
		if c.Token == token {
			return c
		}
	}
	t.Fatalf("no card %q in the pool's status", token)
	return signing.CardStatus{}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPoolSpreadsLoadAndSurvivesACardPulledOut(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	seal := mustKey(t, "rsa2048")
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "acme", Tokens: []string{"card-a", "card-b"}, PIN: "1234", Key: seal, Sessions: 2})
	pool, logs := newPool(t, cfg)
	key, err := pool.Key("acme")
	if err != nil {
		t.Fatal(err)
	}

	// Parallel load: every signature must succeed and verify with the
	// certificate, whatever happens to the cards.
	ctx, stop := context.WithCancel(context.Background())
	var signed atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				digest := sha256.Sum256(fmt.Appendf(nil, "document %d", n))
				sig, err := signing.SignContext(context.Background(), key, digest[:], crypto.SHA256)
				if err == nil {
					err = verify(key.Chain()[0].PublicKey, digest[:], sig, crypto.SHA256)
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					continue
				}
				signed.Add(1)
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
		if err := failed.Load(); err != nil {
			t.Errorf("a signature was lost or wrong under load: %v\nlog:\n%s", *err, logs)
		}
	}()

	waitFor(t, 30*time.Second, "both cards have signed", func() bool {
		return card(t, pool, "card-a").Signatures > 0 && card(t, pool, "card-b").Signatures > 0
	})
	waitFor(t, 30*time.Second, "the status shows sessions in use", func() bool {
		a, b := card(t, pool, "card-a"), card(t, pool, "card-b")
		return a.SessionsInUse+b.SessionsInUse > 0 && a.Sessions == 2 && b.Sessions == 2
	})

	h.DeleteToken("card-a")
	deleted := time.Now()
	waitFor(t, 30*time.Second, "card-a is out of service", func() bool { return !card(t, pool, "card-a").Healthy })
	if st := card(t, pool, "card-a"); st.LastError == "" || !st.Retrying {
		t.Errorf("card-a out of service: LastError %q, Retrying %v; want a reason and a retry", st.LastError, st.Retrying)
	}
	before := signed.Load()
	// Long enough for two re-probes (after 1 s and 2 s more), each of which
	// re-initialises the library under load while the card is still missing.
	waitFor(t, 30*time.Second, "signing goes on with card-b alone", func() bool {
		return signed.Load() > before+100 && time.Since(deleted) > 3500*time.Millisecond
	})
	if card(t, pool, "card-a").Healthy {
		t.Fatal("card-a is in service while its token is missing")
	}

	// The card comes back with the same key: it rejoins without a restart.
	h.InitToken("card-a", "1234")
	h.ImportKey("card-a", "1234", "seal", "01", seal)
	waitFor(t, 90*time.Second, "card-a is back in service", func() bool { return card(t, pool, "card-a").Healthy })
	if err := pool.Ready(); err != nil {
		t.Errorf("Ready with both cards back: %v", err)
	}
	again := card(t, pool, "card-a").Signatures
	waitFor(t, 30*time.Second, "card-a signs again", func() bool { return card(t, pool, "card-a").Signatures > again })
	t.Logf("signatures: %d in all; card-a %d, card-b %d", signed.Load(), card(t, pool, "card-a").Signatures, card(t, pool, "card-b").Signatures)
}

func TestPoolKeepsServingWhenACardCannotStart(t *testing.T) {
	const goodPIN, cardPIN, wrongPIN = "731946", "402817", "864209"
	cases := []struct {
		name string
		// spoil breaks the configuration of the card "broken" in h.
		spoil func(h *signingtest.SoftHSM, cfg *signing.PoolConfig)
		// reason is what the broken card's status must say.
		reason   string
		retrying bool
	}{
		{"wrong PIN", func(h *signingtest.SoftHSM, cfg *signing.PoolConfig) {
			cfg.Tokens[1].PIN = h.PINFile("wrong", wrongPIN)
		}, `token "broken" refused the PIN from file`, false},
		{"token missing", func(h *signingtest.SoftHSM, cfg *signing.PoolConfig) {
			h.DeleteToken("broken")
		}, `token "broken": token not found`, true},
		{"module path broken", func(h *signingtest.SoftHSM, cfg *signing.PoolConfig) {
			cfg.Modules = append(cfg.Modules, signing.ModuleConfig{Name: "vendor", Path: "/opt/vendor/missing-pkcs11.so"})
			cfg.Tokens[1].Module = "vendor"
		}, "cannot load PKCS#11 library /opt/vendor/missing-pkcs11.so", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := signingtest.NewSoftHSM(t)
			good, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "good", Tokens: []string{"good"}, PIN: goodPIN})
			bad, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "bad", Tokens: []string{"broken"}, PIN: cardPIN})
			cfg := signingtest.Merge(good, bad)
			c.spoil(h, &cfg)

			pool, logs := newPool(t, cfg)

			st := card(t, pool, "broken")
			if st.Healthy || !strings.Contains(st.LastError, c.reason) || st.Retrying != c.retrying {
				t.Errorf("broken card: healthy %v, retrying %v, last error %q; want out of service, retrying %v, because %q",
					st.Healthy, st.Retrying, st.LastError, c.retrying, c.reason)
			}
			logged := strings.ReplaceAll(logs.String(), `\"`, `"`) // slog's text handler escapes quotes
			if !strings.Contains(logged, `token=broken`) || !strings.Contains(logged, c.reason) {
				t.Errorf("the log does not name the broken card and why:\n%s", logs)
			}
			for _, pin := range []string{goodPIN, cardPIN, wrongPIN} {
				if strings.Contains(logs.String(), pin) {
					t.Errorf("a PIN appears in the log:\n%s", logs)
				}
			}

			key, err := pool.Key("good")
			if err != nil {
				t.Fatal(err)
			}
			digest := sha256.Sum256([]byte("still sealing"))
			sig, err := key.Sign(nil, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("seal on the good card: %v", err)
			}
			if err := verify(key.Public(), digest[:], sig, crypto.SHA256); err != nil {
				t.Fatal(err)
			}

			key, err = pool.Key("bad")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := key.Sign(nil, digest[:], crypto.SHA256); fault.CodeOf(err) != signing.CodeTokenUnavailable || fault.As(err).Kind != fault.Unavailable {
				t.Errorf("seal only on the broken card: error %v; want token_unavailable", err)
			}
			if err := pool.Ready(); fault.CodeOf(err) != signing.CodeTokenUnavailable || !strings.Contains(err.Error(), "bad") || strings.Contains(err.Error(), "good") {
				t.Errorf("Ready: %v; want token_unavailable naming seal bad only", err)
			}
			for _, s := range pool.Seals() {
				want := map[string]int{"good": 1, "bad": 0}[s.ID]
				if s.HealthyCards != want {
					t.Errorf("seal %q: %d healthy cards, want %d", s.ID, s.HealthyCards, want)
				}
			}
		})
	}
}

func TestPoolUnknownSeal(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "acme"})
	pool, _ := newPool(t, cfg)
	_, err := pool.Key("acme-typo")
	if fault.CodeOf(err) != signing.CodeSealUnknown || fault.As(err).Kind != fault.NotFound || !strings.Contains(err.Error(), `"acme-typo"`) {
		t.Fatalf("Key(acme-typo): %v; want seal_unknown naming the id", err)
	}
}

func TestPoolRejectsBadDigests(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "acme"})
	pool, _ := newPool(t, cfg)
	key, _ := pool.Key("acme")
	cases := []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"digest shorter than the hash", make([]byte, 20), crypto.SHA256},
		{"hash without DigestInfo", make([]byte, 28), crypto.SHA3_224},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := key.Sign(nil, c.digest, c.opts); fault.CodeOf(err) != signing.CodeDigestInvalid {
				t.Fatalf("Sign: %v; want digest_invalid", err)
			}
			if !card(t, pool, "seal-1").Healthy {
				t.Fatal("a bad request took the card out of service")
			}
		})
	}
}

func TestPoolChecksKeyAgainstCertificate(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "acme"})
	// The card now holds a different key under the configured label and id.
	h.DeleteToken("seal-1")
	h.InitToken("seal-1", "1234")
	h.ImportKey("seal-1", "1234", "seal", "01", mustKey(t, "rsa2048"))

	pool, _ := newPool(t, cfg)
	if st := card(t, pool, "seal-1"); st.Healthy || !strings.Contains(st.LastError, string(signing.CodeKeyMismatch)) {
		t.Fatalf("card with another key: healthy %v, last error %q; want out of service with key_certificate_mismatch", st.Healthy, st.LastError)
	}
}

func TestPoolWarnsOfExpiringSeals(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	soon, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "soon", Tokens: []string{"t1"}, Validity: 10 * 24 * time.Hour})
	later, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "later", Tokens: []string{"t2"}, Validity: 90 * 24 * time.Hour})
	cases := []struct {
		days      int
		soon      []string
		logsMatch int
	}{
		{0, []string{"soon"}, 1}, // default: 30 days
		{100, []string{"soon", "later"}, 2},
		{5, nil, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("within %d days", c.days), func(t *testing.T) {
			cfg := signingtest.Merge(soon, later)
			cfg.ExpiryWarningDays = c.days
			pool, logs := newPool(t, cfg)
			var got []string
			for _, s := range pool.Seals() {
				if s.ExpiresSoon {
					got = append(got, s.ID)
				}
			}
			if !slices.Equal(got, c.soon) {
				t.Errorf("seals expiring soon: %v, want %v", got, c.soon)
			}
			if n := strings.Count(logs.String(), "seal certificate expires soon"); n != c.logsMatch {
				t.Errorf("%d expiry warnings logged, want %d:\n%s", n, c.logsMatch, logs)
			}
			pool.Close()
		})
	}
}

func TestPoolConfigValidation(t *testing.T) {
	valid := func() signing.PoolConfig {
		return signing.PoolConfig{
			Modules: []signing.ModuleConfig{{Name: "softhsm", Path: signingtest.ModulePath}},
			Tokens:  []signing.TokenConfig{{Module: "softhsm", Label: "seal-1", PIN: secret.Ref{Env: "SEAL1_PIN"}}},
			Seals:   []signing.SealConfig{{ID: "acme", Certificate: "/etc/sealgate/acme.pem", Keys: []signing.KeyRef{{Token: "seal-1", Label: "seal", ID: "01"}}}},
		}
	}
	cases := []struct {
		name   string
		change func(*signing.PoolConfig)
		want   string
	}{
		{"token of unknown module", func(c *signing.PoolConfig) { c.Tokens[0].Module = "hsm" }, `unknown module "hsm"`},
		{"token without PIN source", func(c *signing.PoolConfig) { c.Tokens[0].PIN = secret.Ref{} }, `token "seal-1" has no pin source`},
		{"token listed twice", func(c *signing.PoolConfig) { c.Tokens = append(c.Tokens, c.Tokens[0]) }, `token "seal-1" is listed twice`},
		{"seal on unknown token", func(c *signing.PoolConfig) { c.Seals[0].Keys[0].Token = "seal-9" }, `unknown token "seal-9"`},
		{"key id not hex", func(c *signing.PoolConfig) { c.Seals[0].Keys[0].ID = "0x1" }, `key id "0x1"`},
		{"seal without keys", func(c *signing.PoolConfig) { c.Seals[0].Keys = nil }, `seal "acme" has no keys`},
		{"seal without id", func(c *signing.PoolConfig) { c.Seals[0].ID = "" }, "a seal has no id"},
		{"soft key with keys", func(c *signing.PoolConfig) { c.Seals[0].SoftKey = &signing.SoftKeyConfig{Key: "k", Certificate: "c"} }, "softKey excludes"},
		{"module without path", func(c *signing.PoolConfig) { c.Modules[0].Path = "" }, `module "softhsm" needs both`},
		{"certificate file missing", func(c *signing.PoolConfig) {}, "/etc/sealgate/acme.pem"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.change(&cfg)
			_, err := signing.NewPool(context.Background(), cfg, nil, pkcs11.Backend{}, softkey.Backend{})
			if fault.CodeOf(err) != signing.CodeConfigInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewPool: %v; want signing_config_invalid mentioning %q", err, c.want)
			}
		})
	}
}

func TestPoolConfigFromYAML(t *testing.T) {
	dir := t.TempDir()
	doc := `
signing:
  expiryWarningDays: 45
  modules:
    - {name: softhsm, path: /usr/lib/softhsm/libsofthsm2.so}
  tokens:
    - {module: softhsm, label: seal-1, pin: {env: SEAL1_PIN}, sessions: 4}
  seals:
    - id: acme
      certificate: acme-chain.pem
      keys: [{token: seal-1, label: seal, id: "01"}]
    - id: dev
      softKey: {key: dev.key, certificate: dev.pem}
`
	path := filepath.Join(dir, "sealgate.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, ok, err := signing.LoadPoolConfig(f)
	if !ok || err != nil {
		t.Fatalf("LoadPoolConfig: %v, %v", ok, err)
	}
	want := signing.PoolConfig{
		ExpiryWarningDays: 45,
		Modules:           []signing.ModuleConfig{{Name: "softhsm", Path: "/usr/lib/softhsm/libsofthsm2.so"}},
		Tokens:            []signing.TokenConfig{{Module: "softhsm", Label: "seal-1", PIN: secret.Ref{Env: "SEAL1_PIN"}, Sessions: 4}},
		Seals: []signing.SealConfig{
			{ID: "acme", Certificate: filepath.Join(dir, "acme-chain.pem"), Keys: []signing.KeyRef{{Token: "seal-1", Label: "seal", ID: "01"}}},
			{ID: "dev", SoftKey: &signing.SoftKeyConfig{Key: filepath.Join(dir, "dev.key"), Certificate: filepath.Join(dir, "dev.pem")}},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	// A configuration written by a program (the development setup) reads back the same.
	out, err := yaml.Marshal(map[string]any{"signing": want})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err = config.Load(path, ""); err != nil {
		t.Fatal(err)
	}
	if again, _, err := signing.LoadPoolConfig(f); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("written and read back:\n%s\n%+v, %v", out, again, err)
	}
}

// TestPoolsShareTheModule is a configuration reload: the new pool starts
// while the old one still serves, on the same cards, and the old one closes.
func TestPoolsShareTheModule(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	cfg, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "acme"})
	digest := sha256.Sum256([]byte("across a reload"))
	sign := func(p *signing.Pool) error {
		k, err := p.Key("acme")
		if err != nil {
			return err
		}
		sig, err := k.Sign(nil, digest[:], crypto.SHA256)
		if err != nil {
			return err
		}
		return verify(k.Public(), digest[:], sig, crypto.SHA256)
	}
	old, _ := newPool(t, cfg)
	if err := sign(old); err != nil {
		t.Fatal(err)
	}
	next, _ := newPool(t, cfg)
	if err := sign(next); err != nil {
		t.Fatalf("second pool on the same card: %v", err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sign(next); err != nil {
		t.Fatalf("after the first pool closed: %v", err)
	}
	if err := sign(old); fault.CodeOf(err) != signing.CodeTokenUnavailable {
		t.Fatalf("closed pool: %v; want token_unavailable", err)
	}
}
