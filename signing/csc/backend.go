package csc

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/signing"
)

// Backend opens the remote credentials of a configuration's "signing"
// section as cards of the pool. It implements signing.Backend.
type Backend struct {
	// ProbeFirst and ProbeMax are the first and the longest pause between
	// probes of a credential out of service; default 1s and 30s.
	ProbeFirst, ProbeMax time.Duration
}

// OpenCards makes a card of every remote credential that a seal key names,
// and checks it at the provider: an access token, credentials/info, the
// key enabled, its certificate matching the seal certificate, an auth mode
// sealgate can answer. A credential that cannot be used now is returned out
// of service and probed in the background, unless the provider refused
// sealgate's OAuth client or wants a person to authorize (not retried).
// Only an unreadable CA file fails.
func (b Backend) OpenCards(ctx context.Context, cfg signing.PoolConfig, chains map[string][]*x509.Certificate, log *slog.Logger) ([]signing.Card, error) {
	var cards []signing.Card
	for _, rc := range cfg.Remote {
		client, err := NewClient(ClientConfig{URL: rc.URL, OAuth: rc.OAuth, CA: rc.CA, Timeout: rc.Timeout, Log: log.With("remote", rc.Name)})
		if err != nil {
			return cards, fault.Wrap(err, fault.Invalid, signing.CodeConfigInvalid, "signing: remote %q", rc.Name)
		}
		if rc.Sessions == 0 {
			rc.Sessions = DefaultSessions
		}
		if rc.SADSignatures == 0 {
			rc.SADSignatures = DefaultSADSignatures
		}
		stopped, stop := context.WithCancel(context.Background())
		c := &card{
			log: log, cfg: rc, client: client, sem: make(chan struct{}, rc.Sessions),
			probeFirst: b.ProbeFirst, probeMax: b.ProbeMax, stopped: stopped, stop: stop,
		}
		if c.probeFirst <= 0 {
			c.probeFirst = time.Second
		}
		if c.probeMax < c.probeFirst {
			c.probeMax = max(30*time.Second, c.probeFirst)
		}
		for _, sc := range cfg.Seals {
			for _, k := range sc.Keys {
				if k.Remote == rc.Name && len(chains[sc.ID]) > 0 {
					c.keys = append(c.keys, &cardKey{card: c, seal: sc.ID, cert: chains[sc.ID][0]})
				}
			}
		}
		if len(c.keys) == 0 {
			stop()
			continue // a credential no seal uses is not worth a connection
		}
		cards = append(cards, c)
		if err := c.connect(ctx); err != nil {
			c.down(err)
		}
	}
	return cards, nil
}

// card is one remote credential.
type card struct {
	log    *slog.Logger
	cfg    signing.RemoteConfig
	client *Client
	keys   []*cardKey

	// sem holds one token per request under way at the provider.
	sem        chan struct{}
	busy       atomic.Int64
	signatures atomic.Uint64
	cred       atomic.Pointer[credential] // nil while out of service

	probeFirst, probeMax time.Duration
	stopped              context.Context
	stop                 context.CancelFunc
	probes               sync.WaitGroup

	// sadMu serialises obtaining the shared SAD, so concurrent single
	// signatures wait for one credentials/authorize instead of each making one.
	sadMu sync.Mutex
	sad   *sharedSAD

	mu      sync.Mutex
	serial  string
	lastErr string
	fatal   bool
	probing bool
	closed  bool
}

// credential is what credentials/info said when the card was put in service.
type credential struct {
	multisign int
	scal2     bool
	// auth maps the ids of the auth objects to answer to their secrets.
	auth []authSecret
}

type authSecret struct {
	id  string
	ref secret.Ref
}

// sharedSAD is an SCAL1 SAD covering several single signatures.
type sharedSAD struct {
	value   string
	left    int
	renewAt time.Time
}

// fatalError is a failure that retrying cannot cure: only a person or a
// configuration change can.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// cardKey is the seal key a remote credential holds.
type cardKey struct {
	card *card
	seal string
	cert *x509.Certificate
}

// SealID implements signing.CardKey.
func (k *cardKey) SealID() string { return k.seal }

// SignContext implements signing.CardKey. On an SCAL1 credential the
// signature uses a SAD shared with other single signatures (one
// credentials/authorize per SADSignatures signatures); on SCAL2 it is
// authorized alone, bound to its hash.
func (k *cardKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sigs, err := k.card.sign(ctx, k, [][]byte{digest}, opts, false)
	if err != nil {
		return nil, err
	}
	return sigs[0], nil
}

// SignBatch implements signing.BatchCardKey: one credentials/authorize for
// all digests (bound to their hashes), then signatures/signHash with as
// many hashes per call as the credential's multisign allows.
func (k *cardKey) SignBatch(ctx context.Context, digests [][]byte, opts crypto.SignerOpts) ([][]byte, error) {
	return k.card.sign(ctx, k, digests, opts, true)
}

// sign signs digests with ck. batch asks for a SAD of their own; else an
// SCAL1 credential uses the shared SAD.
func (c *card) sign(ctx context.Context, ck *cardKey, digests [][]byte, opts crypto.SignerOpts, batch bool) ([][]byte, error) {
	alg, err := algorithmFor(ck.cert.PublicKey, opts)
	if err != nil {
		return nil, err
	}
	for _, d := range digests {
		if len(d) != opts.HashFunc().Size() {
			return nil, fault.New(fault.Invalid, signing.CodeDigestInvalid, "digest is %d bytes; %v needs %d", len(d), opts.HashFunc(), opts.HashFunc().Size())
		}
	}
	cred := c.cred.Load()
	if cred == nil {
		return nil, fmt.Errorf("remote credential %q: %w", c.cfg.Name, signing.ErrCardOut)
	}
	c.busy.Add(int64(len(digests)))
	defer c.busy.Add(-int64(len(digests)))
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fault.New(fault.Unavailable, signing.CodeTokenUnavailable, "no free request slot at remote credential %q for seal %q in time", c.cfg.Name, ck.seal)
	}
	defer func() { <-c.sem }()

	hashes := make([]string, len(digests))
	for i, d := range digests {
		hashes[i] = base64.StdEncoding.EncodeToString(d)
	}
	sigs := make([][]byte, 0, len(digests))
	shared := !batch && !cred.scal2
	sad, renewals := "", 0
	for len(sigs) < len(digests) {
		rest := hashes[len(sigs):]
		if sad == "" {
			if shared {
				sad, err = c.takeSAD(ctx, cred)
			} else {
				var s SAD
				s, err = c.authorize(ctx, cred, len(rest), rest, alg.hashOID)
				sad = s.Value
			}
			if err != nil {
				return nil, c.failed(ctx, ck, err)
			}
		}
		chunk := rest[:min(len(rest), cred.multisign)]
		out, err := c.client.SignHash(ctx, SignHashRequest{
			CredentialID: c.cfg.Credential, SAD: sad, Hashes: chunk, HashAlgorithm: alg.hashOID,
			SignAlgo: alg.signAlgo, SignAlgoParam: alg.params, OperationMode: "S",
		})
		if sadRejected(err) && renewals < 2 {
			// Expired or used up early at the provider: a new SAD for the rest.
			renewals++
			c.dropSAD(sad)
			sad = ""
			continue
		}
		if err != nil {
			return nil, c.failed(ctx, ck, err)
		}
		for i, sig := range out {
			d := digests[len(sigs)]
			if sig, err = alg.check(ck.cert.PublicKey, d, sig); err != nil {
				return nil, c.failed(ctx, ck, fmt.Errorf("signature %d of signatures/signHash: %w", i, err))
			}
			sigs = append(sigs, sig)
		}
	}
	c.signatures.Add(uint64(len(sigs)))
	return sigs, nil
}

// sadRejected reports a signHash refused because of its SAD (expired,
// used up, revoked): CSC answers 400 invalid_request naming the SAD.
func sadRejected(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 400 && strings.Contains(strings.ToUpper(e.Description+" "+e.Code), "SAD")
}

// failed turns a failure while signing into the error the pool acts on.
// When the caller gave up it is the caller's timeout; anything else takes
// the card out of service so the pool signs on another card.
func (c *card) failed(ctx context.Context, ck *cardKey, err error) error {
	if ctx.Err() != nil {
		return fault.Wrap(err, fault.Unavailable, signing.CodeTokenUnavailable, "remote credential %q did not sign for seal %q in time", c.cfg.Name, ck.seal)
	}
	c.takeOut(fmt.Errorf("signing for seal %q: %w", ck.seal, err))
	return fmt.Errorf("remote credential %q: %w: %w", c.cfg.Name, signing.ErrCardOut, err)
}

// takeOut puts the card out of service (once per period of service).
func (c *card) takeOut(err error) {
	if c.cred.Swap(nil) != nil {
		c.down(err)
	}
}

// authorize obtains a SAD for n signatures (of hashes, when given),
// answering the credential's auth objects from their secret references.
func (c *card) authorize(ctx context.Context, cred *credential, n int, hashes []string, hashOID string) (SAD, error) {
	req := AuthorizeRequest{CredentialID: c.cfg.Credential, NumSignatures: n, Hashes: hashes, Description: "sealgate seal"}
	if len(hashes) > 0 {
		req.HashAlgorithm = hashOID
	}
	for _, a := range cred.auth {
		v, err := a.ref.Value()
		if err != nil {
			return SAD{}, fatalError{fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed,
				"remote credential %q: cannot read %s for auth object %q", c.cfg.Name, a.ref, a.id)}
		}
		req.AuthData = append(req.AuthData, AuthData{ID: a.id, Value: string(v)})
	}
	sad, err := c.client.Authorize(ctx, req)
	var e *Error
	if errors.As(err, &e) && !e.transient() && e.Status != 401 {
		text := strings.ToUpper(e.Code + " " + e.Description)
		switch {
		case strings.Contains(text, "PIN") || strings.Contains(text, "OTP") || strings.Contains(text, "PASSWORD"):
			// Retrying a refused PIN would lock the credential.
			return SAD{}, fatalError{fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed,
				"remote credential %q: the provider refused the authorization data", c.cfg.Name)}
		case e.Status == 403 || e.Code == "access_denied" || e.Code == "authorization_pending":
			return SAD{}, fatalError{fault.Wrap(err, fault.Unavailable, CodeAuthorizationRequired,
				"remote credential %q: the provider wants a person to authorize its use", c.cfg.Name)}
		}
	}
	return sad, err
}

// takeSAD returns the shared SAD, obtaining a new one when it is used up
// or close to expiry.
func (c *card) takeSAD(ctx context.Context, cred *credential) (string, error) {
	c.sadMu.Lock()
	defer c.sadMu.Unlock()
	if s := c.sad; s != nil && s.left > 0 && time.Now().Before(s.renewAt) {
		s.left--
		return s.value, nil
	}
	c.sad = nil
	sad, err := c.authorize(ctx, cred, c.cfg.SADSignatures, nil, "")
	if err != nil {
		return "", err
	}
	c.sad = &sharedSAD{value: sad.Value, left: c.cfg.SADSignatures - 1, renewAt: time.Now().Add(sad.ExpiresIn - renewAhead(sad.ExpiresIn))}
	return sad.Value, nil
}

// dropSAD forgets the shared SAD if it is value.
func (c *card) dropSAD(value string) {
	c.sadMu.Lock()
	if c.sad != nil && c.sad.value == value {
		c.sad = nil
	}
	c.sadMu.Unlock()
}

// connect checks the credential at the provider and puts the card in
// service.
func (c *card) connect(ctx context.Context) error {
	ci, err := c.client.CredentialInfo(ctx, c.cfg.Credential)
	if err != nil {
		return fmt.Errorf("credentials/info: %w", err)
	}
	if ci.Key.Status != "" && ci.Key.Status != "enabled" {
		return fmt.Errorf("the provider reports the key %s", ci.Key.Status)
	}
	if ci.Cert.Status != "" && ci.Cert.Status != "valid" {
		return fmt.Errorf("the provider reports the certificate %s", ci.Cert.Status)
	}
	chain, err := ci.Chain()
	if err != nil || len(chain) == 0 {
		return fmt.Errorf("credentials/info gave no usable certificate: %v", err)
	}
	for _, ck := range c.keys {
		if err := signing.CheckKeyMatches(chain[0].PublicKey, ck.cert); err != nil {
			return fmt.Errorf("seal %q: the credential's certificate: %w", ck.seal, err)
		}
	}
	cred := &credential{multisign: max(ci.Multisign, 1), scal2: ci.SCAL == "2"}
	switch ci.Auth.Mode {
	case "", "implicit":
	case "explicit":
		for _, o := range ci.Auth.Objects {
			ref := c.cfg.PIN
			if o.Type == "OTP" {
				ref = c.cfg.OTP
			} else if o.Type != "Password" {
				return fatalError{fault.New(fault.Unavailable, CodeAuthorizationRequired,
					"remote credential %q asks for %q authorization (%s); only a PIN and an OTP can be configured", c.cfg.Name, o.Type, o.ID)}
			}
			if ref.IsZero() {
				field := map[bool]string{true: "otp", false: "pin"}[o.Type == "OTP"]
				return fatalError{fault.New(fault.Unavailable, CodeAuthorizationRequired,
					"remote credential %q asks for %s %q (%s), which a person must give: configure remote %s as a secret reference", c.cfg.Name, o.Type, o.ID, o.Label, field)}
			}
			cred.auth = append(cred.auth, authSecret{id: o.ID, ref: ref})
		}
	case "oauth2code":
		return fatalError{fault.New(fault.Unavailable, CodeAuthorizationRequired,
			"remote credential %q is authorized by a person's OAuth login for each use (auth mode oauth2code)", c.cfg.Name)}
	default:
		return fatalError{fault.New(fault.Unavailable, CodeAuthorizationRequired, "remote credential %q has auth mode %q", c.cfg.Name, ci.Auth.Mode)}
	}
	c.mu.Lock()
	c.serial = fmt.Sprintf("%x", chain[0].SerialNumber)
	c.mu.Unlock()
	c.cred.Store(cred)
	c.log.Info("remote seal credential in service", "remote", c.cfg.Name, "credential", c.cfg.Credential,
		"multisign", cred.multisign, "scal", ci.SCAL, "authMode", ci.Auth.Mode)
	return nil
}

// isFatal tells failures only a person can cure: a refused OAuth client or
// PIN, an authorization a person must give, a provider without OAuth server.
func isFatal(err error) bool {
	code := fault.CodeOf(err)
	return errors.As(err, new(fatalError)) || code == signing.CodeTokenLoginFailed || code == signing.CodeConfigInvalid
}

// down records why the card is out of service and, unless the cause is
// fatal, starts probing it.
func (c *card) down(err error) {
	fatal := isFatal(err)
	c.mu.Lock()
	c.lastErr = err.Error()
	c.fatal = c.fatal || fatal
	c.mu.Unlock()
	if fatal {
		c.log.Error("remote seal credential out of service until restart", "remote", c.cfg.Name, "err", err)
		return
	}
	c.log.Error("remote seal credential out of service; probing in the background", "remote", c.cfg.Name, "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probing || c.closed {
		return
	}
	c.probing = true
	c.probes.Add(1)
	go c.probe()
}

// probe reconnects with growing pauses until the card is in service, the
// failure turns out fatal or the pool closes.
func (c *card) probe() {
	defer c.probes.Done()
	signing.Reprobe(c.stopped, c.probeFirst, c.probeMax, func() bool {
		err := c.connect(c.stopped)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.lastErr = err.Error()
			c.fatal = c.fatal || isFatal(err)
		}
		// Cleared under the lock that down checks, so a failure from now on starts a new probe.
		done := err == nil || c.fatal
		if done {
			c.probing = false
		}
		return done
	})
}

// Label implements signing.Card: the remote credential's name.
func (c *card) Label() string { return c.cfg.Name }

// InService implements signing.Card.
func (c *card) InService() bool { return c.cred.Load() != nil }

// Load implements signing.Card: signatures under way or waiting.
func (c *card) Load() int64 { return c.busy.Load() }

// Keys implements signing.Card.
func (c *card) Keys() []signing.CardKey { return signing.CardKeys(c.keys) }

// Status implements signing.Card: Module is "csc:" and the credential's
// name, Token its credential id, Serial its certificate's serial number
// and Sessions the requests it may have under way at the provider.
func (c *card) Status() signing.CardStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := signing.CardStatus{
		Module: "csc:" + c.cfg.Name, Token: c.cfg.Credential, Serial: c.serial,
		Healthy: c.cred.Load() != nil, LastError: c.lastErr, Retrying: !c.fatal && !c.closed,
		SessionsInUse: len(c.sem), Sessions: cap(c.sem), Signatures: c.signatures.Load(),
	}
	if st.Healthy {
		st.Retrying = false
	}
	return st
}

// Close implements signing.Card: it stops probing.
func (c *card) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.probes.Wait()
	c.cred.Store(nil)
	return nil
}
