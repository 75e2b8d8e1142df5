package csc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/csc"
	"github.com/sealgate/sealgate/signing/csc/csctest"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// setup is a seal "acme" whose key a CSC provider on loopback holds on a
// SoftHSM token of its own, and optionally a local SoftHSM card with the
// same key and certificate.
type setup struct {
	pki  *signingtest.PKI
	h    *signingtest.SoftHSM
	tsp  *csctest.Server
	cfg  signing.PoolConfig // sealgate's configuration
	logs *bytes.Buffer
}

type setupOptions struct {
	local  bool                        // also a local card "local-1" holding the seal
	server csctest.Options             // as csctest.StartSeal takes them
	remote func(*signing.RemoteConfig) // adjusts sealgate's remote entry
}

func newSetup(t testing.TB, o setupOptions) *setup {
	t.Helper()
	h := signingtest.NewSoftHSM(t)
	var local []string
	if o.local {
		local = []string{"local-1"}
	}
	tsp, cfg := csctest.StartSeal(t, h, o.server, local...)
	if o.remote != nil {
		o.remote(&cfg.Remote[0])
	}
	return &setup{pki: signingtest.SharedPKI(t), h: h, tsp: tsp, cfg: cfg, logs: &bytes.Buffer{}}
}

// pool opens sealgate's pool over the setup and returns the seal's key.
func (s *setup) pool(t testing.TB) (*signing.Pool, *signing.SealKey) {
	t.Helper()
	pool, err := signing.NewPool(context.Background(), s.cfg, slog.New(slog.NewTextHandler(s.logs, nil)),
		pkcs11.Backend{}, csc.Backend{ProbeFirst: 50 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	key, err := pool.Key("acme")
	if err != nil {
		t.Fatal(err)
	}
	return pool, key.(*signing.SealKey)
}

// cardStatus returns the status of the card whose module is module.
func cardStatus(t testing.TB, pool *signing.Pool, module string) signing.CardStatus {
	t.Helper()
	for _, st := range pool.Status() {
		if st.Module == module {
			return st
		}
	}
	t.Fatalf("no card of module %q in %+v", module, pool.Status())
	return signing.CardStatus{}
}

// PAdES at every level and CAdES made through the provider pass the
// independent validators, and every signature was made at the provider.
func TestRemoteSealFormats(t *testing.T) {
	s := newSetup(t, setupOptions{})
	pool, key := s.pool(t)
	ts := signingtest.NewTSA(t, s.pki)
	crl, err := s.pki.CA.CRL(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st := cardStatus(t, pool, "csc:tsp")
	if !st.Healthy || st.Token != "acme-seal" || st.Sessions != csc.DefaultSessions || st.Serial == "" {
		t.Errorf("remote card status %+v", st)
	}
	for _, tc := range []struct {
		level signing.Level
		sigs  int // signatures pdfsig lists: B-LTA adds a document timestamp
	}{{signing.LevelBB, 1}, {signing.LevelBT, 1}, {signing.LevelBLT, 1}, {signing.LevelBLTA, 2}} {
		t.Run("PAdES "+string(tc.level), func(t *testing.T) {
			ctx, by := signing.WithSignedBy(context.Background())
			var out bytes.Buffer
			in := pdftest.Bytes(pdftest.Spec{})
			_, err := pades.Seal(ctx, key, bytes.NewReader(in), int64(len(in)), &out, pades.Options{
				Level: tc.level, Timestamper: ts.SHA256Client, Revocation: pades.RevocationOptions{CRLs: [][]byte{crl}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if by.Card != "tsp" {
				t.Errorf("signed by %q, want the remote credential tsp", by.Card)
			}
			signingtest.CheckIndependently(t, out.Bytes(), tc.sigs)
		})
	}
	doc := []byte(strings.Repeat("delivery note 4711\n", 500))
	docPath := signingtest.WriteFile(t, t.TempDir(), "doc.txt", doc)
	for _, tc := range []struct {
		name string
		opts cms.CAdESOptions
	}{
		{"CAdES B-B", cms.CAdESOptions{}},
		{"CAdES B-T SHA-384", cms.CAdESOptions{Hash: crypto.SHA384, Timestamper: ts.ClientFor(t, "sha384")}},
		{"CAdES RSASSA-PSS", cms.CAdESOptions{PSS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := cms.CAdES(context.Background(), key, bytes.NewReader(doc), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := signingtest.OpenSSLVerifyDetached(t, res.Signature, docPath, s.pki.CAFile(t)); err != nil {
				t.Errorf("openssl cms -verify: %v\n%s", err, out)
			}
		})
	}
	if got, want := s.tsp.Signed(), 7; got != want {
		t.Errorf("the provider signed %d hashes, want %d (one per seal)", got, want)
	}
	if got := cardStatus(t, pool, "csc:tsp").Signatures; got != 7 {
		t.Errorf("the remote card counts %d signatures, want 7", got)
	}
	// An SCAL2 SAD is bound to its hash: one authorization per single signature.
	if a := s.tsp.Calls("credentials/authorize"); a != 7 {
		t.Errorf("%d authorizations for 7 single SCAL2 signatures", a)
	}
}

// A job of 100 documents sealed through a Batch costs one
// credentials/authorize and ⌈100/multisign⌉ signHash calls; SignBatch
// gives the same for 100 digests, and the signatures verify.
func TestBatchOneAuthorization(t *testing.T) {
	const docs, multisign = 100, 15
	s := newSetup(t, setupOptions{server: csctest.Options{Multisign: multisign}})
	_, key := s.pool(t)
	authorize0, sign0 := s.tsp.Calls("credentials/authorize"), s.tsp.Calls("signatures/signHash")

	if !key.Batches() {
		t.Error("Batches is false for a seal on a remote credential in service")
	}
	batch := key.NewBatch(docs, 10*time.Second)
	sealed := make([][]byte, docs)
	var wg sync.WaitGroup
	errs := make(chan error, docs)
	for i := range docs {
		wg.Go(func() {
			in := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: fmt.Sprintf("invoice %d", i)}}})
			var out bytes.Buffer
			ctx, by := signing.WithSignedBy(context.Background())
			if _, err := pades.Seal(ctx, batch, bytes.NewReader(in), int64(len(in)), &out, pades.Options{}); err != nil {
				errs <- fmt.Errorf("document %d: %w", i, err)
				return
			}
			if by.Card != "tsp" {
				errs <- fmt.Errorf("document %d: signed by %q, want the credential tsp", i, by.Card)
			}
			sealed[i] = out.Bytes()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantSign := (docs + multisign - 1) / multisign
	if a, sh := s.tsp.Calls("credentials/authorize")-authorize0, s.tsp.Calls("signatures/signHash")-sign0; a != 1 || sh != wantSign {
		t.Errorf("%d documents: %d authorize and %d signHash calls, want 1 and %d", docs, a, sh, wantSign)
	}
	for _, i := range []int{0, 41, docs - 1} {
		signingtest.CheckIndependently(t, sealed[i], 1)
	}

	digests := make([][]byte, docs)
	for i := range digests {
		d := sha256.Sum256(fmt.Appendf(nil, "invoice %d", i))
		digests[i] = d[:]
	}
	authorize0, sign0 = s.tsp.Calls("credentials/authorize"), s.tsp.Calls("signatures/signHash")
	sigs, err := key.SignBatch(context.Background(), digests, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for i, sig := range sigs {
		if err := rsa.VerifyPKCS1v15(key.Public().(*rsa.PublicKey), crypto.SHA256, digests[i], sig); err != nil {
			t.Fatalf("signature %d: %v", i, err)
		}
	}
	if a, sh := s.tsp.Calls("credentials/authorize")-authorize0, s.tsp.Calls("signatures/signHash")-sign0; a != 1 || sh != wantSign {
		t.Errorf("SignBatch of %d digests: %d authorize and %d signHash calls, want 1 and %d", docs, a, sh, wantSign)
	}
	if _, err := key.SignBatch(context.Background(), [][]byte{digests[0][:10]}, crypto.SHA256); fault.CodeOf(err) != signing.CodeDigestInvalid {
		t.Errorf("a short digest in a batch: %v, want %s", err, signing.CodeDigestInvalid)
	}
}

// signAll signs n digests from 8 goroutines and returns how many failed
// and which cards signed.
func signAll(key *signing.SealKey, n int) (failed int, byCard map[string]int) {
	var mu sync.Mutex
	byCard = map[string]int{}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				ctx, by := signing.WithSignedBy(context.Background())
				d := sha256.Sum256(fmt.Appendf(nil, "document %d", i))
				_, err := key.SignContext(ctx, d[:], crypto.SHA256)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					byCard[by.Card]++
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return failed, byCard
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// The provider failing (5xx, 429 with Retry-After) or slowing down past
// the timeout: the pool signs on the local card with the same seal and no
// request fails; when the provider recovers its credential is back in
// service and signs again.
func TestFailoverToLocalCard(t *testing.T) {
	s := newSetup(t, setupOptions{local: true, server: csctest.Options{SCAL: "1"}, remote: func(rc *signing.RemoteConfig) {
		rc.Timeout = 300 * time.Millisecond
	}})
	pool, key := s.pool(t)
	for _, tc := range []struct {
		name  string
		fault csctest.Fault
	}{
		{"503", csctest.Fault{Status: 503}},
		{"429 with Retry-After beyond the cap", csctest.Fault{Status: 429, RetryAfter: "30"}},
		{"slow signHash", csctest.Fault{Delay: time.Second, Methods: []string{"signatures/signHash", "credentials/info"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if failed, by := signAll(key, 40); failed != 0 || by["tsp"] == 0 {
				t.Fatalf("healthy provider: %d failed, by card %v", failed, by)
			}
			s.tsp.SetFault(tc.fault)
			failed, by := signAll(key, 60)
			if failed != 0 || by["local-1"] == 0 {
				t.Errorf("provider down: %d of 60 failed, by card %v; want none failed, the local card signing", failed, by)
			}
			digests := make([][]byte, 30)
			for i := range digests {
				d := sha256.Sum256(fmt.Appendf(nil, "batch %d", i))
				digests[i] = d[:]
			}
			sigs, err := key.SignBatch(context.Background(), digests, crypto.SHA256)
			if err != nil {
				t.Errorf("a batch while the provider fails: %v", err)
			}
			for i, sig := range sigs {
				if err := rsa.VerifyPKCS1v15(key.Public().(*rsa.PublicKey), crypto.SHA256, digests[i], sig); err != nil {
					t.Errorf("batch signature %d from the local card: %v", i, err)
				}
			}
			st := cardStatus(t, pool, "csc:tsp")
			if st.Healthy || !st.Retrying || st.LastError == "" {
				t.Errorf("remote card while the provider fails: %+v", st)
			}
			if key.Batches() {
				t.Error("Batches is true with the remote credential out of service: the local card would sign a batch digest by digest")
			}
			if err := pool.Ready(); err != nil {
				t.Errorf("Ready with the local card in service: %v", err)
			}
			s.tsp.SetFault(csctest.Fault{})
			waitFor(t, "the remote credential is back in service", func() bool { return cardStatus(t, pool, "csc:tsp").Healthy })
			if !key.Batches() {
				t.Error("Batches is false with the remote credential back in service")
			}
			before := s.tsp.Signed()
			if failed, by := signAll(key, 40); failed != 0 || by["tsp"] == 0 || s.tsp.Signed() == before {
				t.Errorf("after recovery: %d failed, by card %v", failed, by)
			}
		})
	}
	if strings.Contains(s.logs.String(), "client-secret-1") || strings.Contains(s.logs.String(), "246810") {
		t.Error("a secret is in the log")
	}
}

// An expired SAD, a revoked access token and SADs and tokens that lapse
// on their own are renewed without a failed request; with the remote
// credential as the only card, every signature is still made there.
func TestRenewal(t *testing.T) {
	for _, scal := range []string{"1", "2"} {
		t.Run("SCAL"+scal, func(t *testing.T) {
			s := newSetup(t, setupOptions{server: csctest.Options{SCAL: scal, TokenLifetime: 2 * time.Second, SADLifetime: 2 * time.Second}})
			_, key := s.pool(t)
			if failed, _ := signAll(key, 20); failed != 0 {
				t.Fatalf("%d failed", failed)
			}
			tokens, authorizations := s.tsp.Calls("oauth2/token"), s.tsp.Calls("credentials/authorize")
			s.tsp.ExpireSADs()
			s.tsp.RevokeTokens()
			if failed, _ := signAll(key, 20); failed != 0 {
				t.Errorf("after the SADs expired and the tokens were revoked: %d of 20 failed", failed)
			}
			if s.tsp.Calls("oauth2/token") == tokens {
				t.Error("no new access token after the old one was revoked")
			}
			if s.tsp.Calls("credentials/authorize") == authorizations {
				t.Error("no new SAD after the old one expired")
			}
			// Outlive the token and SAD lifetimes: renewed ahead of expiry.
			tokens = s.tsp.Calls("oauth2/token")
			time.Sleep(2100 * time.Millisecond)
			if failed, _ := signAll(key, 20); failed != 0 {
				t.Errorf("after the lifetimes passed: %d of 20 failed", failed)
			}
			if s.tsp.Calls("oauth2/token") == tokens {
				t.Error("the access token was not renewed")
			}
			if scal == "1" && s.tsp.Calls("credentials/authorize") > 8 {
				t.Errorf("%d authorizations for 60 SCAL1 signatures: the SAD is not shared", s.tsp.Calls("credentials/authorize"))
			}
		})
	}
}

// What the configuration gets wrong fails at start with
// signing_config_invalid; what the provider refuses leaves the credential
// out of service with a stable code, not retried.
func TestConfigAndRefusals(t *testing.T) {
	s := newSetup(t, setupOptions{})
	bad := []struct {
		name string
		edit func(*signing.PoolConfig)
		want string
	}{
		{"no url", func(c *signing.PoolConfig) { c.Remote[0].URL = "" }, "url: missing"},
		{"http off loopback", func(c *signing.PoolConfig) { c.Remote[0].URL = "http://tsp.example/csc/v2" }, "loopback only"},
		{"no credential", func(c *signing.PoolConfig) { c.Remote[0].Credential = "" }, "no credential id"},
		{"no client id", func(c *signing.PoolConfig) { c.Remote[0].OAuth.ClientID = "" }, "clientId"},
		{"no client secret", func(c *signing.PoolConfig) { c.Remote[0].OAuth.ClientSecret.File = "" }, "clientSecret"},
		{"unknown remote", func(c *signing.PoolConfig) { c.Seals[0].Keys[0].Remote = "other" }, "unknown remote credential"},
		{"remote with token", func(c *signing.PoolConfig) { c.Seals[0].Keys[0].Token = "seal-1" }, "takes no token"},
		{"twice", func(c *signing.PoolConfig) { c.Remote = append(c.Remote, c.Remote[0]) }, "listed twice"},
		{"missing CA file", func(c *signing.PoolConfig) { c.Remote[0].CA = "/nonexistent/ca.pem" }, "CA file"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s.cfg
			cfg.Remote = append([]signing.RemoteConfig(nil), s.cfg.Remote...)
			cfg.Seals = []signing.SealConfig{s.cfg.Seals[0]}
			cfg.Seals[0].Keys = append([]signing.KeyRef(nil), s.cfg.Seals[0].Keys...)
			tc.edit(&cfg)
			_, err := signing.NewPool(context.Background(), cfg, nil, csc.Backend{})
			if fault.CodeOf(err) != signing.CodeConfigInvalid || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v; want %s mentioning %q", err, signing.CodeConfigInvalid, tc.want)
			}
		})
	}

	refused := []struct {
		name   string
		server csctest.Options
		remote func(*signing.RemoteConfig)
		want   fault.Code
	}{
		{"wrong client secret", csctest.Options{}, func(rc *signing.RemoteConfig) {
			rc.OAuth.ClientSecret = s.h.PINFile("wrong-secret", "not-the-secret")
		}, signing.CodeTokenLoginFailed},
		{"OTP a person must give", csctest.Options{OTP: "123456"}, nil, csc.CodeAuthorizationRequired},
		{"oauth2code auth mode", csctest.Options{AuthMode: "oauth2code"}, nil, csc.CodeAuthorizationRequired},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			rs := newSetup(t, setupOptions{server: tc.server, remote: tc.remote})
			pool, key := rs.pool(t)
			st := cardStatus(t, pool, "csc:tsp")
			if st.Healthy || st.Retrying || !strings.Contains(st.LastError, string(tc.want)) {
				t.Errorf("card status %+v; want out of service, not retried, with %s", st, tc.want)
			}
			if strings.Contains(st.LastError, "not-the-secret") || strings.Contains(rs.logs.String(), "not-the-secret") {
				t.Error("the client secret is in an error or the log")
			}
			d := sha256.Sum256([]byte("x"))
			if _, err := key.SignContext(context.Background(), d[:], crypto.SHA256); fault.CodeOf(err) != signing.CodeTokenUnavailable {
				t.Errorf("signing: %v, want %s", err, signing.CodeTokenUnavailable)
			}
		})
	}

	t.Run("wrong PIN", func(t *testing.T) {
		rs := newSetup(t, setupOptions{remote: func(rc *signing.RemoteConfig) { rc.PIN = s.h.PINFile("wrong-pin", "999999") }})
		pool, key := rs.pool(t)
		d := sha256.Sum256([]byte("x"))
		if _, err := key.SignContext(context.Background(), d[:], crypto.SHA256); fault.CodeOf(err) != signing.CodeTokenUnavailable {
			t.Errorf("signing: %v, want %s", err, signing.CodeTokenUnavailable)
		}
		st := cardStatus(t, pool, "csc:tsp")
		if st.Healthy || st.Retrying || !strings.Contains(st.LastError, string(signing.CodeTokenLoginFailed)) {
			t.Errorf("card status after a refused PIN %+v; want out of service, not retried, %s", st, signing.CodeTokenLoginFailed)
		}
		if strings.Contains(st.LastError, "999999") {
			t.Error("the PIN is in the error")
		}
	})

	t.Run("refresh token flow", func(t *testing.T) {
		refresh := s.h.PINFile("refresh", "refresh-1")
		rs := newSetup(t, setupOptions{server: csctest.Options{RefreshToken: "refresh-1", TokenLifetime: time.Second}, remote: func(rc *signing.RemoteConfig) {
			rc.OAuth.RefreshToken = refresh
		}})
		_, key := rs.pool(t)
		for range 3 {
			if failed, _ := signAll(key, 5); failed != 0 {
				t.Fatalf("%d failed", failed)
			}
			time.Sleep(time.Second)
		}
		if n := rs.tsp.Calls("oauth2/token"); n < 3 {
			t.Errorf("%d token requests over 3 s with 1 s tokens: the rotated refresh token is not used", n)
		}
		// A restart reads the newest refresh token: the provider revoked the first.
		if v, err := refresh.Value(); err != nil || string(v) == "refresh-1" {
			t.Errorf("refresh token file after rotation: %q, %v; want the rotated token", v, err)
		}
	})
}
