package signing

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
)

// Error codes reported by the pool in addition to those in signing.go.
const (
	// CodeConfigInvalid: the "signing" configuration section is inconsistent.
	CodeConfigInvalid fault.Code = "signing_config_invalid"
	// CodeDigestInvalid: a digest does not fit the hash or key it is signed with.
	CodeDigestInvalid fault.Code = "digest_invalid"
	// CodeTokenLoginFailed: a card refused its PIN (or the PIN could not be read).
	CodeTokenLoginFailed fault.Code = "token_login_failed"
)

// DefaultExpiryWarningDays is how long before a seal certificate expires the
// pool starts warning about it.
const DefaultExpiryWarningDays = 30

// PoolConfig is the "signing" section of sealgate.yaml: the PKCS#11 modules,
// the cards (tokens) they serve, and the seals whose keys sit on those cards.
//
//	signing:
//	  modules: [{name: softhsm, path: /usr/lib/softhsm/libsofthsm2.so}]
//	  tokens:
//	    - {module: softhsm, label: seal-1, pin: {env: SEAL1_PIN}, sessions: 4}
//	    - {module: softhsm, label: seal-2, pin: {file: /etc/sealgate/seal-2.pin}}
//	  seals:
//	    - id: acme
//	      certificate: /etc/sealgate/acme-chain.pem
//	      keys: [{token: seal-1, label: seal}, {token: seal-2, label: seal}]
//	    - id: dev
//	      softKey: {key: dev-seal.key, certificate: dev-seal.pem}
type PoolConfig struct {
	// Modules are the PKCS#11 libraries, each loaded once.
	Modules []ModuleConfig `yaml:"modules,omitempty"`
	// Tokens are the cards, found by label in their module.
	Tokens []TokenConfig `yaml:"tokens,omitempty"`
	// Seals are the seals sealgate can apply.
	Seals []SealConfig `yaml:"seals"`
	// ExpiryWarningDays: seal certificates expiring within this many days are
	// warned about at start and flagged in SealStatus. Default 30.
	ExpiryWarningDays int `yaml:"expiryWarningDays,omitempty"`
}

// ModuleConfig names a PKCS#11 library.
type ModuleConfig struct {
	// Name is how tokens refer to the module.
	Name string `yaml:"name"`
	// Path of the shared library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	Path string `yaml:"path"`
}

// TokenConfig is one card (token) in a module, found by its label.
type TokenConfig struct {
	// Module is the name of the module serving the token.
	Module string `yaml:"module"`
	// Label is the token label; slot numbers are not stable and are never used.
	Label string `yaml:"label"`
	// PIN is the user PIN's source (environment variable or file).
	PIN secret.Ref `yaml:"pin"`
	// Sessions is how many sessions stay open on the card (signatures made
	// at the same time). Default runtime.NumCPU().
	Sessions int `yaml:"sessions,omitempty"`
}

// SealConfig is one seal: its certificate chain and the cards holding its key,
// or a development software key.
type SealConfig struct {
	// ID is how requests name the seal.
	ID string `yaml:"id"`
	// Certificate is the PEM chain file, seal certificate first.
	Certificate string `yaml:"certificate,omitempty"`
	// Keys are the copies of the seal key, one per card.
	Keys []KeyRef `yaml:"keys,omitempty"`
	// SoftKey makes a development seal with a software key; it excludes
	// Certificate and Keys.
	SoftKey *SoftKeyConfig `yaml:"softKey,omitempty"`
}

// KeyRef finds a private key on a card by label and/or CKA_ID.
type KeyRef struct {
	// Token is the label of the token holding the key.
	Token string `yaml:"token"`
	// Label is the key's CKA_LABEL.
	Label string `yaml:"label,omitempty"`
	// ID is the key's CKA_ID in hex, e.g. "01".
	ID string `yaml:"id,omitempty"`
}

// SoftKeyConfig is a development seal key held in files.
type SoftKeyConfig struct {
	// Key is the PEM private key file.
	Key string `yaml:"key"`
	// Certificate is the PEM chain file, seal certificate first.
	Certificate string `yaml:"certificate"`
}

// LoadPoolConfig decodes the "signing" section of f, with relative file
// paths taken from the configuration file's directory. It reports whether
// the section is present.
func LoadPoolConfig(f *config.File) (PoolConfig, bool, error) {
	var c PoolConfig
	ok, err := f.Section("signing", &c)
	if err != nil {
		return c, ok, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "signing section of %s", f.Path)
	}
	if ok && f.Path != "" {
		c.ResolvePaths(filepath.Dir(f.Path))
	}
	return c, ok, nil
}

// ResolvePaths makes relative file paths (module libraries, certificate and
// key files) relative to dir, normally the configuration file's directory.
func (c *PoolConfig) ResolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Modules {
		abs(&c.Modules[i].Path)
	}
	for i := range c.Seals {
		abs(&c.Seals[i].Certificate)
		if sk := c.Seals[i].SoftKey; sk != nil {
			abs(&sk.Key)
			abs(&sk.Certificate)
		}
	}
}

// Token returns the configuration of the token labelled label.
func (c *PoolConfig) Token(label string) (TokenConfig, bool) {
	for _, t := range c.Tokens {
		if t.Label == label {
			return t, true
		}
	}
	return TokenConfig{}, false
}

// Module returns the configuration of the module named name.
func (c *PoolConfig) Module(name string) (ModuleConfig, bool) {
	for _, m := range c.Modules {
		if m.Name == name {
			return m, true
		}
	}
	return ModuleConfig{}, false
}

// Seal returns the configuration of seal id.
func (c *PoolConfig) Seal(id string) (SealConfig, bool) {
	for _, s := range c.Seals {
		if s.ID == id {
			return s, true
		}
	}
	return SealConfig{}, false
}

// Validate checks the configuration's own consistency (names that refer to
// nothing, duplicates, malformed ids). It touches no card.
func (c *PoolConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fault.New(fault.Invalid, CodeConfigInvalid, "signing: "+format, args...)
	}
	modules := map[string]bool{}
	for _, m := range c.Modules {
		if m.Name == "" || m.Path == "" {
			return bad("module %q needs both name and path", m.Name)
		}
		if modules[m.Name] {
			return bad("module %q is listed twice", m.Name)
		}
		modules[m.Name] = true
	}
	tokens := map[string]bool{}
	for _, t := range c.Tokens {
		switch {
		case t.Label == "":
			return bad("a token of module %q has no label", t.Module)
		case !modules[t.Module]:
			return bad("token %q names unknown module %q", t.Label, t.Module)
		case tokens[t.Label]:
			return bad("token %q is listed twice", t.Label)
		case t.PIN.IsZero():
			return bad("token %q has no pin source (env or file)", t.Label)
		case t.Sessions < 0:
			return bad("token %q: sessions %d is negative", t.Label, t.Sessions)
		}
		tokens[t.Label] = true
	}
	seals := map[string]bool{}
	for _, s := range c.Seals {
		if s.ID == "" {
			return bad("a seal has no id")
		}
		if seals[s.ID] {
			return bad("seal %q is listed twice", s.ID)
		}
		seals[s.ID] = true
		if s.SoftKey != nil {
			if s.Certificate != "" || len(s.Keys) > 0 {
				return bad("seal %q: softKey excludes certificate and keys", s.ID)
			}
			if s.SoftKey.Key == "" || s.SoftKey.Certificate == "" {
				return bad("seal %q: softKey needs key and certificate files", s.ID)
			}
			continue
		}
		if s.Certificate == "" {
			return bad("seal %q has no certificate file", s.ID)
		}
		if len(s.Keys) == 0 {
			return bad("seal %q has no keys", s.ID)
		}
		onToken := map[string]bool{}
		for _, k := range s.Keys {
			if !tokens[k.Token] {
				return bad("seal %q names unknown token %q", s.ID, k.Token)
			}
			if onToken[k.Token] {
				return bad("seal %q lists token %q twice", s.ID, k.Token)
			}
			onToken[k.Token] = true
			if k.Label == "" && k.ID == "" {
				return bad("seal %q: key on token %q needs a label or an id", s.ID, k.Token)
			}
			if _, err := hex.DecodeString(k.ID); err != nil {
				return bad("seal %q: key id %q on token %q is not hex", s.ID, k.ID, k.Token)
			}
		}
	}
	if c.ExpiryWarningDays < 0 {
		return bad("expiryWarningDays %d is negative", c.ExpiryWarningDays)
	}
	return nil
}

// Pool holds the seal keys: it keeps sessions open on every card, spreads
// signatures over the cards holding a seal, and takes failed cards out of
// service until they answer again.
type Pool struct {
	log   *slog.Logger
	cards []*card
	seals map[string]*seal
	order []string // seal ids in configuration order
	warn  time.Duration

	stop    context.CancelFunc
	stopped context.Context
	probes  sync.WaitGroup
	probeMu sync.Mutex // orders probes.Add before Close's Wait
	closed  bool       // guarded by probeMu
}

// addProbe counts a new background probe, unless the pool is closing.
func (p *Pool) addProbe() bool {
	p.probeMu.Lock()
	defer p.probeMu.Unlock()
	if p.closed {
		return false
	}
	p.probes.Add(1)
	return true
}

func (p *Pool) isClosed() bool {
	p.probeMu.Lock()
	defer p.probeMu.Unlock()
	return p.closed
}

// seal is one configured seal and where its key is.
type seal struct {
	id    string
	chain []*x509.Certificate
	soft  *SoftKey
	keys  []*cardKey
	next  atomic.Uint32 // rotates the starting card so ties spread evenly
}

// cardKey is one copy of a seal key: which card and how to find it there.
type cardKey struct {
	seal  *seal
	card  *card
	label string
	id    []byte
}

// NewPool opens every module and card of cfg and checks every seal key
// against its certificate. A card that cannot be used (module missing, token
// absent, PIN refused, key missing or not matching) is logged, reported in
// Status as unhealthy and left out; the pool serves the seals on the other
// cards. Only an invalid configuration or an unreadable certificate file fails
// NewPool.
func NewPool(ctx context.Context, cfg PoolConfig, log *slog.Logger) (*Pool, error) {
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
	stopped, stop := context.WithCancel(context.WithoutCancel(ctx))
	p := &Pool{log: log, seals: map[string]*seal{}, warn: time.Duration(warnDays) * 24 * time.Hour, stop: stop, stopped: stopped}

	for _, sc := range cfg.Seals {
		s := &seal{id: sc.ID}
		if sc.SoftKey != nil {
			sk, err := LoadSoftKey(sc.SoftKey.Key, sc.SoftKey.Certificate)
			if err != nil {
				stop()
				return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "signing: seal %q: development key %s", sc.ID, sc.SoftKey.Key)
			}
			s.soft, s.chain = sk, sk.Chain()
			log.Warn("seal uses a software key: development — not qualified", "seal", sc.ID, "key", sc.SoftKey.Key)
		} else {
			chain, err := devpki.ReadCertsPEM(sc.Certificate)
			if err != nil {
				stop()
				return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "signing: seal %q: certificate file %s", sc.ID, sc.Certificate)
			}
			if err := checkSealKeyType(chain[0]); err != nil {
				stop()
				return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "signing: seal %q: certificate %s", sc.ID, sc.Certificate)
			}
			s.chain = chain
		}
		p.seals[sc.ID] = s
		p.order = append(p.order, sc.ID)
		p.warnExpiry(s)
	}

	modulePaths := map[string]string{}
	for _, m := range cfg.Modules {
		modulePaths[m.Name] = m.Path
	}
	loaded := map[string]*module{}
	loadErr := map[string]error{}
	for _, tc := range cfg.Tokens {
		c := &card{pool: p, moduleName: tc.Module, cfg: tc}
		if c.cfg.Sessions == 0 {
			c.cfg.Sessions = runtime.NumCPU()
		}
		p.cards = append(p.cards, c)
		for _, sc := range cfg.Seals {
			for _, k := range sc.Keys {
				if k.Token == tc.Label {
					id, _ := hex.DecodeString(k.ID) // checked by Validate
					ck := &cardKey{seal: p.seals[sc.ID], card: c, label: k.Label, id: id}
					c.keys = append(c.keys, ck)
					ck.seal.keys = append(ck.seal.keys, ck)
				}
			}
		}
		m, seen := loaded[tc.Module]
		if !seen && loadErr[tc.Module] == nil {
			var err error
			if m, err = openModule(modulePaths[tc.Module]); err != nil {
				loadErr[tc.Module] = err
			} else {
				loaded[tc.Module] = m
			}
		}
		if err := loadErr[tc.Module]; err != nil {
			c.down(fatalError{fmt.Errorf("module %s not loaded: %w", tc.Module, err)})
			continue
		}
		c.module = m
		m.attach(c)
	}
	for _, c := range p.cards {
		if c.module == nil {
			continue
		}
		c.module.op.RLock()
		err := c.connect()
		c.module.op.RUnlock()
		if err != nil {
			c.down(err)
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
	s := k.seal
	if s.soft != nil {
		reportCard(ctx, "software key")
		return s.soft.Sign(rand.Reader, digest, opts)
	}
	if err := checkDigest(s.chain[0].PublicKey, digest, opts); err != nil {
		return nil, err
	}
	var tried []*cardKey
	var lastErr error
	for {
		ck := s.pick(tried)
		if ck == nil {
			break
		}
		sig, err := ck.card.sign(ctx, ck, digest, opts)
		if err == nil {
			reportCard(ctx, ck.card.cfg.Label)
			return sig, nil
		}
		if !errors.Is(err, errCardOut) {
			return nil, err
		}
		tried = append(tried, ck)
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("no card holding the seal is in service")
	}
	return nil, fault.Wrap(lastErr, fault.Unavailable, CodeTokenUnavailable, "no card holding seal %q is available", s.id)
}

// pick returns the least busy card copy of the key that is in service and not
// in tried, or nil.
func (s *seal) pick(tried []*cardKey) *cardKey {
	var best *cardKey
	var bestLoad int64
	n := len(s.keys)
	start := int(s.next.Add(1)) % n
	for i := range n {
		ck := s.keys[(start+i)%n]
		if slices.Contains(tried, ck) || !ck.card.inService() {
			continue
		}
		if l := ck.card.load.Load(); best == nil || l < bestLoad {
			best, bestLoad = ck, l
		}
	}
	return best
}

// SignContext signs with key, bounded by ctx when key supports it (pooled
// keys do; a SoftKey does not wait for anything).
func SignContext(ctx context.Context, key crypto.Signer, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if cs, ok := key.(interface {
		SignContext(context.Context, []byte, crypto.SignerOpts) ([]byte, error)
	}); ok {
		return cs.SignContext(ctx, digest, opts)
	}
	return key.Sign(rand.Reader, digest, opts)
}

// SignedBy receives the label of the card that made a signature, for the
// seal event record. WithSignedBy puts one in a context.
type SignedBy struct{ Card string }

type signedByKey struct{}

// WithSignedBy returns a context in which a pooled key reports the card it
// signed on into the returned SignedBy.
func WithSignedBy(ctx context.Context) (context.Context, *SignedBy) {
	sb := &SignedBy{}
	return context.WithValue(ctx, signedByKey{}, sb), sb
}

func reportCard(ctx context.Context, label string) {
	if sb, ok := ctx.Value(signedByKey{}).(*SignedBy); ok {
		sb.Card = label
	}
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
}

// Status reports every configured card.
func (p *Pool) Status() []CardStatus {
	out := make([]CardStatus, 0, len(p.cards))
	for _, c := range p.cards {
		c.mu.Lock()
		st := CardStatus{
			Module:     c.moduleName,
			Token:      c.cfg.Label,
			Serial:     c.serial,
			LastError:  c.lastErr,
			Retrying:   !c.fatal && !p.isClosed(),
			Sessions:   c.cfg.Sessions,
			Signatures: c.signatures.Load(),
		}
		c.mu.Unlock()
		if cn := c.conn.Load(); cn != nil {
			st.Healthy = true
			st.Retrying = false
			st.Sessions = cap(cn.sessions)
			st.SessionsInUse = st.Sessions - len(cn.sessions)
		}
		for _, k := range c.keys {
			st.Seals = append(st.Seals, k.seal.id)
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
			Software:    s.soft != nil,
		}
		if s.soft != nil {
			st.HealthyCards = 1
		}
		for _, k := range s.keys {
			st.Cards = append(st.Cards, k.card.cfg.Label)
			if k.card.inService() {
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

// Close stops retrying failed cards, closes every session and releases the
// modules (a module is finalized when no pool in the process uses it).
func (p *Pool) Close() error {
	p.probeMu.Lock()
	was := p.closed
	p.closed = true
	p.probeMu.Unlock()
	if was {
		return nil
	}
	p.stop()
	p.probes.Wait()
	for _, c := range p.cards {
		if c.module == nil {
			continue
		}
		c.module.detach(c)
		c.module.op.RLock()
		if cn := c.conn.Swap(nil); cn != nil {
			cn.kill(c.module.ctx)
		}
		c.module.op.RUnlock()
	}
	released := map[*module]bool{}
	for _, c := range p.cards {
		if c.module != nil && !released[c.module] {
			released[c.module] = true
			c.module.release()
		}
	}
	return nil
}
