package csctest

import (
	"context"
	"testing"
	"time"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// StartSeal makes seal "acme" with the shared test PKI's RSA-2048 key and
// starts a service whose credential holds that key on a SoftHSM token of
// its own ("tsp-hsm", reached through a seal pool as a provider's HSM
// would be). It returns the service and sealgate's configuration: the
// seal's key on the remote credential "tsp" (OAuth secret and PIN in
// files) and on a local SoftHSM card for each of localTokens, all with
// the same key and certificate. opts.Key and opts.CA are filled in.
func StartSeal(t testing.TB, h *signingtest.SoftHSM, opts Options, localTokens ...string) (*Server, signing.PoolConfig) {
	t.Helper()
	p := signingtest.SharedPKI(t)
	all, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{
		ID: "acme", Tokens: append([]string{"tsp-hsm"}, localTokens...), CA: p.CA, Key: p.Signers["rsa-2048"],
	})
	chain, keys := all.Seals[0].Certificate, all.Seals[0].Keys
	provider := signing.PoolConfig{Modules: all.Modules, Tokens: all.Tokens[:1],
		Seals: []signing.SealConfig{{ID: "acme", Certificate: chain, Keys: keys[:1]}}}
	pool, err := signing.NewPool(context.Background(), provider, nil, pkcs11.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	if opts.Key, err = pool.Key("acme"); err != nil {
		t.Fatal(err)
	}
	opts.CA = p.CA
	s := Start(t, opts)
	cfg := signing.PoolConfig{
		Modules: all.Modules, Tokens: all.Tokens[1:],
		Remote: []signing.RemoteConfig{{
			Name: "tsp", URL: s.URL, Credential: s.opts.Credential, CA: s.CAFile, Timeout: 2 * time.Second,
			OAuth: signing.RemoteOAuthConfig{ClientID: s.opts.ClientID, ClientSecret: h.PINFile("tsp-oauth-client", s.opts.ClientSecret)},
			PIN:   h.PINFile("tsp-pin", s.opts.PIN),
		}},
		Seals: []signing.SealConfig{{ID: "acme", Certificate: chain, Keys: append([]signing.KeyRef{{Remote: "tsp"}}, keys[1:]...)}},
	}
	if len(localTokens) == 0 {
		cfg.Modules = nil
	}
	return s, cfg
}
