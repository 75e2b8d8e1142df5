package signing

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
)

// Pool holds the seal keys: it spreads signatures over the cards holding a
// seal, and signs on another card when one fails. The cards themselves
// (from the backends NewPool is given) reconnect in the background.
type Pool struct {
	log   *slog.Logger
	cards []Card
	seals map[string]*seal
	order []string // seal ids in configuration order
	warn  time.Duration

	closeOnce sync.Once
}

// seal is one configured seal and the copies of its key.
type seal struct {
	id    string
	chain []*x509.Certificate
	keys  []heldKey
	next  atomic.Uint32 // rotates the starting card so ties spread evenly
}

// heldKey is one copy of a seal key and the card holding it.
type heldKey struct {
	card Card
	key  CardKey
}

// NewPool reads the certificate of every seal of cfg and opens the cards
// with backends (signing/pkcs11 for cards and HSM slots, signing/csc for
// remote credentials, signing/softkey for development keys). A card that cannot be used (module missing, token
// absent, PIN refused, key missing or not matching) is logged, reported in
// Status as unhealthy and keeps being retried; the pool serves the seals on
// the other cards. Only an invalid configuration, an unreadable certificate
// file or a seal that no backend serves fails NewPool.
func NewPool(ctx context.Context, cfg PoolConfig, log *slog.Logger, backends ...Backend) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	warnDays := cfg.ExpiryWarningDays
	if warnDays == 0 {
		warnDays = DefaultExpiryWarningDays
	}
	p := &Pool{log: log, seals: map[string]*seal{}, warn: time.Duration(warnDays) * 24 * time.Hour}

	chains := map[string][]*x509.Certificate{}
	for _, sc := range cfg.Seals {
		file := sc.Certificate
		if sc.SoftKey != nil {
			file = sc.SoftKey.Certificate
		}
		chain, err := devpki.ReadCertsPEM(file)
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "signing: seal %q: certificate file %s", sc.ID, file)
		}
		if sc.SoftKey == nil {
			if err := CheckSealKeyType(chain[0]); err != nil {
				return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "signing: seal %q: certificate %s", sc.ID, file)
			}
		}
		s := &seal{id: sc.ID, chain: chain}
		chains[sc.ID] = chain
		p.seals[sc.ID] = s
		p.order = append(p.order, sc.ID)
		p.warnExpiry(s)
	}

	for _, b := range backends {
		cards, err := b.OpenCards(ctx, cfg, chains, log)
		p.cards = append(p.cards, cards...)
		if err != nil {
			p.Close()
			return nil, err
		}
	}
	for _, c := range p.cards {
		for _, k := range c.Keys() {
			if s := p.seals[k.SealID()]; s != nil {
				s.keys = append(s.keys, heldKey{card: c, key: k})
			}
		}
	}
	for _, id := range p.order {
		if len(p.seals[id].keys) == 0 {
			p.Close()
			return nil, fault.New(fault.Invalid, CodeConfigInvalid, "signing: seal %q: no key backend serves its keys", id)
		}
	}
	return p, nil
}

// warnExpiry logs a warning when the seal certificate expires within the
// warning period (or has expired).
func (p *Pool) warnExpiry(s *seal) {
	leaf := s.chain[0]
	left := time.Until(leaf.NotAfter)
	switch {
	case left <= 0:
		p.log.Error("seal certificate has expired", "seal", s.id, "subject", leaf.Subject.CommonName, "notAfter", leaf.NotAfter)
	case left < p.warn:
		p.log.Warn("seal certificate expires soon", "seal", s.id, "subject", leaf.Subject.CommonName,
			"notAfter", leaf.NotAfter, "daysLeft", int(left.Hours()/24))
	}
}

// Key returns the signing key of seal id. Unknown ids give seal_unknown. The
// key is returned even when no card holding it is healthy right now; its Sign
// then fails with token_unavailable.
func (p *Pool) Key(id string) (Key, error) {
	s, ok := p.seals[id]
	if !ok {
		return nil, fault.New(fault.NotFound, CodeSealUnknown, "no seal %q is configured", id)
	}
	return &SealKey{seal: s}, nil
}

// Sessions is how many signatures the cards holding seal id can make at
// once: their open sessions (the configured number while a card is out of
// service), and GOMAXPROCS for a software key.
func (p *Pool) Sessions(id string) int {
	s, ok := p.seals[id]
	if !ok {
		return 0
	}
	n := 0
	for _, k := range s.keys {
		st := k.card.Status()
		if st.Software || st.Sessions <= 0 {
			n += runtime.GOMAXPROCS(0)
		} else {
			n += st.Sessions
		}
	}
	return n
}

// SealKey is a pooled seal key; Pool.Key returns it.
type SealKey struct {
	seal *seal
}

// ID returns the seal id.
func (k *SealKey) ID() string { return k.seal.id }

// Public returns the public key certified by the seal certificate.
func (k *SealKey) Public() crypto.PublicKey { return k.seal.chain[0].PublicKey }

// Chain returns the seal certificate first, then its issuers.
func (k *SealKey) Chain() []*x509.Certificate { return k.seal.chain }

// Sign signs digest (already hashed with opts.HashFunc()) on a card holding
// the seal. The card's own random generator is used; rand is ignored.
// *rsa.PSSOptions selects RSA-PSS; other opts give PKCS#1 v1.5 for RSA keys.
// ECDSA signatures are ASN.1 DER, as crypto/ecdsa returns them.
func (k *SealKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), digest, opts)
}

// SignContext is Sign with a context bounding the wait for a free session.
// It tries the least busy healthy card first; when a card fails it is taken
// out of service and the same digest is signed on the next card holding the
// seal. With no healthy card left it fails with token_unavailable.
func (k *SealKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var sig []byte
	err := k.seal.onCards(ctx, func(hk heldKey) error {
		var err error
		sig, err = hk.key.SignContext(ctx, digest, opts)
		return err
	})
	return sig, err
}

// SignBatch signs every digest (each hashed with opts.HashFunc(), all with
// the same opts) and returns the signatures in the order of digests. The
// whole batch goes to the least busy healthy card: one that implements
// BatchCardKey (a remote credential) signs it under one authorization,
// any other card signs the digests one by one. When a card fails, the
// digests it has not signed go to the next card holding the seal. With no
// healthy card left it fails with token_unavailable and returns no
// signature; any other error (a digest that does not fit opts) is returned
// as the card gave it.
func (k *SealKey) SignBatch(ctx context.Context, digests [][]byte, opts crypto.SignerOpts) ([][]byte, error) {
	sigs := make([][]byte, len(digests))
	done := 0 // digests[:done] are signed
	err := k.seal.onCards(ctx, func(hk heldKey) error {
		if bk, ok := hk.key.(BatchCardKey); ok {
			out, err := bk.SignBatch(ctx, digests[done:], opts)
			if err != nil {
				return err
			}
			done += copy(sigs[done:], out)
			return nil
		}
		for ; done < len(digests); done++ {
			sig, err := hk.key.SignContext(ctx, digests[done], opts)
			if err != nil {
				return err
			}
			sigs[done] = sig
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sigs, nil
}

// Batches reports whether a card in service holding the seal signs
// batches of digests under one authorization (BatchCardKey): only then is
// gathering concurrent signatures into a Batch worth their wait; other
// cards sign digest by digest, each as soon as it is asked.
func (k *SealKey) Batches() bool {
	for _, hk := range k.seal.keys {
		if _, ok := hk.key.(BatchCardKey); ok && hk.card.InService() {
			return true
		}
	}
	return false
}

// onCards runs sign on the least busy healthy card holding the seal, and
// again on the next one each time a card fails with ErrCardOut. sign keeps
// whatever progress it made before failing.
func (s *seal) onCards(ctx context.Context, sign func(heldKey) error) error {
	var tried []CardKey
	var lastErr error
	for {
		hk, ok := s.pick(tried)
		if !ok {
			break
		}
		err := sign(hk)
		if err == nil {
			reportCard(ctx, hk.card.Label())
			return nil
		}
		if !errors.Is(err, ErrCardOut) {
			return err
		}
		tried = append(tried, hk.key)
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("no card holding the seal is in service")
	}
	return fault.Wrap(lastErr, fault.Unavailable, CodeTokenUnavailable, "no card holding seal %q is available", s.id)
}

// pick returns the least busy copy of the key whose card is in service and
// that is not in tried.
func (s *seal) pick(tried []CardKey) (heldKey, bool) {
	var best heldKey
	var bestLoad int64
	found := false
	n := len(s.keys)
	start := int(s.next.Add(1)) % n
	for i := range n {
		hk := s.keys[(start+i)%n]
		if slices.Contains(tried, hk.key) || !hk.card.InService() {
			continue
		}
		if l := hk.card.Load(); !found || l < bestLoad {
			best, bestLoad, found = hk, l, true
		}
	}
	return best, found
}

// CardStatus describes one card for `sealgate token list` and /readyz.
type CardStatus struct {
	// Module is the configured module name.
	Module string `json:"module"`
	// Token is the token label.
	Token string `json:"token"`
	// Serial is the token's serial number, when the card was ever reached.
	Serial string `json:"serial,omitempty"`
	// Healthy is set while the card is in service.
	Healthy bool `json:"healthy"`
	// LastError is why the card is (or last was) out of service; never a PIN.
	LastError string `json:"lastError,omitempty"`
	// Retrying is false when the card will not be retried without a restart
	// (PIN refused, module not loaded).
	Retrying bool `json:"retrying"`
	// SessionsInUse of Sessions are signing right now. Sessions is the
	// number open (the configured number while out of service).
	SessionsInUse int `json:"sessionsInUse"`
	Sessions      int `json:"sessions"`
	// Signatures is how many signatures the card made since the pool started.
	Signatures uint64 `json:"signatures"`
	// Seals are the ids of the seals whose key the card holds.
	Seals []string `json:"seals"`
	// Software is set for a development software key, which Pool.Status
	// does not list as a card.
	Software bool `json:"-"`
}

// Status reports every configured card (development software keys are not
// cards; Seals reports them).
func (p *Pool) Status() []CardStatus {
	out := make([]CardStatus, 0, len(p.cards))
	for _, c := range p.cards {
		st := c.Status()
		if st.Software {
			continue
		}
		for _, k := range c.Keys() {
			st.Seals = append(st.Seals, k.SealID())
		}
		out = append(out, st)
	}
	return out
}

// SealStatus describes one seal.
type SealStatus struct {
	// ID is the seal id.
	ID string `json:"id"`
	// Chain is the seal certificate, then its issuers.
	Chain []*x509.Certificate `json:"-"`
	// Subject and NotAfter are those of the seal certificate.
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
	// ExpiresSoon is set within the expiry warning period and after expiry.
	ExpiresSoon bool `json:"expiresSoon"`
	// Software is set for a development seal with a software key; such a
	// seal counts as one healthy card.
	Software bool `json:"software"`
	// Cards are the labels of the tokens holding the key.
	Cards []string `json:"cards"`
	// HealthyCards is how many of Cards are in service.
	HealthyCards int `json:"healthyCards"`
}

// Seals reports every configured seal, in configuration order.
func (p *Pool) Seals() []SealStatus {
	out := make([]SealStatus, 0, len(p.order))
	for _, id := range p.order {
		s := p.seals[id]
		leaf := s.chain[0]
		st := SealStatus{
			ID: id, Chain: s.chain, Subject: leaf.Subject.String(), NotAfter: leaf.NotAfter,
			ExpiresSoon: time.Until(leaf.NotAfter) < p.warn,
		}
		for _, k := range s.keys {
			if k.card.Status().Software {
				st.Software = true
			} else {
				st.Cards = append(st.Cards, k.card.Label())
			}
			if k.card.InService() {
				st.HealthyCards++
			}
		}
		out = append(out, st)
	}
	return out
}

// Ready returns nil when every seal can sign now (a card holding it is in
// service, or it has a software key), else a token_unavailable error naming
// the seals that cannot.
func (p *Pool) Ready() error {
	var down []string
	for _, s := range p.Seals() {
		if s.HealthyCards == 0 {
			down = append(down, s.ID)
		}
	}
	if len(down) > 0 {
		return fault.New(fault.Unavailable, CodeTokenUnavailable, "no card in service for seal(s) %s", strings.Join(down, ", "))
	}
	return nil
}

// Close closes every card: background retries stop and sessions end.
func (p *Pool) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		for _, c := range p.cards {
			errs = append(errs, c.Close())
		}
	})
	return errors.Join(errs...)
}
