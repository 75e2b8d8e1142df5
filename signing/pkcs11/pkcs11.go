// Package pkcs11 is the seal-card backend: seal cards and HSM slots reached
// through a PKCS#11 library (PKCS#11 v2.40, with github.com/miekg/pkcs11).
// Tokens are found by label, keep several logged-in sessions, sign
// precomputed digests (CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS,
// CKM_ECDSA), and are re-probed in the background after a failure. It also
// opens a single key for card administration: certificate requests and
// importing the issued chain.
package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// Reprobe backoff for a card out of service.
const (
	probeFirst = time.Second
	probeMax   = 30 * time.Second
)

// module is one loaded PKCS#11 library. C_Initialize is process-wide (a
// second call fails with CKR_CRYPTOKI_ALREADY_INITIALIZED), so every pool in
// the process shares one module per library, counted by refs.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int // guarded by modulesMu

	// op is held for reading around every PKCS#11 call and for writing while
	// the library is re-initialised, so no call runs across C_Finalize.
	op  sync.RWMutex
	gen uint64 // re-initialisations so far; guarded by op

	cardsMu sync.Mutex
	cards   map[*card]struct{} // cards of every pool using this module
}

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}
)

// openModule loads and initialises the library at path, or shares the one
// already loaded.
func openModule(path string) (*module, error) {
	key := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		key = p
	}
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[key]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("cannot load PKCS#11 library %s", path)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("PKCS#11 library %s: C_Initialize: %w", path, err)
	}
	m := &module{path: key, ctx: ctx, refs: 1, cards: map[*card]struct{}{}}
	modules[key] = m
	return m, nil
}

// release drops one reference; the last one finalizes and unloads the library.
func (m *module) release() {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules, m.path)
	m.op.Lock()
	defer m.op.Unlock()
	m.ctx.Finalize()
	m.ctx.Destroy()
}

func (m *module) attach(c *card) {
	m.cardsMu.Lock()
	m.cards[c] = struct{}{}
	m.cardsMu.Unlock()
}

func (m *module) detach(c *card) {
	m.cardsMu.Lock()
	delete(m.cards, c)
	m.cardsMu.Unlock()
}

// reload re-initialises the library so that it rescans its tokens. SoftHSM
// (2.6) and several HSM client libraries discover tokens only in
// C_Initialize: a card that was removed and put back stays invisible to
// C_GetSlotList until then. Re-initialising ends every session of the
// process on this library, so it waits for calls in flight, then reconnects
// every card on it; signers meanwhile wait instead of failing. seen is the
// generation the caller looked at: when another card has re-initialised the
// library since, there is nothing to do.
func (m *module) reload(seen uint64) {
	m.op.Lock()
	defer m.op.Unlock()
	if m.gen != seen {
		return
	}
	m.cardsMu.Lock()
	cards := make([]*card, 0, len(m.cards))
	for c := range m.cards {
		cards = append(cards, c)
	}
	m.cardsMu.Unlock()
	// Dead conns stay in place until replaced, so signers choosing a card
	// meanwhile still count it in service and wait for the new conn.
	for _, c := range cards {
		if cn := c.conn.Load(); cn != nil {
			cn.kill(m.ctx)
		}
	}
	m.ctx.Finalize()
	initErr := m.ctx.Initialize()
	m.gen++
	if initErr != nil {
		initErr = fmt.Errorf("re-initialising PKCS#11 library %s: %w", m.path, initErr)
	}
	for _, c := range cards {
		if c.isFatal() {
			continue
		}
		err := initErr
		if err == nil {
			err = c.connect()
		}
		if err != nil {
			c.conn.Store(nil)
			c.down(err)
		}
	}
}

// card is one configured token and its sessions.
type card struct {
	log        *slog.Logger
	module     *module // nil when the library could not be loaded
	moduleName string
	cfg        signing.TokenConfig
	keys       []*cardKey

	// stopped ends the background re-probe when the card is closed.
	stopped context.Context
	stop    context.CancelFunc
	probes  sync.WaitGroup

	conn       atomic.Pointer[conn] // nil while out of service
	busy       atomic.Int64         // signatures under way or waiting
	signatures atomic.Uint64

	mu      sync.Mutex
	serial  string
	lastErr string
	fatal   bool // not retried: PIN refused or library missing
	probing bool
	closed  bool // Close was called; no new probe starts
	out     bool // out of service since it was last in service
	wasUp   bool // has been in service at least once
}

// conn is one period of service of a card: its logged-in sessions and key
// handles. It dies on the first card failure; a new conn replaces it.
type conn struct {
	sessions chan pkcs11.SessionHandle
	keys     map[*cardKey]pkcs11.ObjectHandle

	mu   sync.Mutex
	dead bool
	down chan struct{} // closed when dead
}

// release gives a session back, or closes it when the conn has died.
func (cn *conn) release(p *pkcs11.Ctx, s pkcs11.SessionHandle) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.dead {
		p.CloseSession(s)
		return
	}
	cn.sessions <- s
}

func (cn *conn) isDead() bool {
	select {
	case <-cn.down:
		return true
	default:
		return false
	}
}

// kill ends the conn: idle sessions are closed now, busy ones when released.
// Sessions are closed one by one, never with C_CloseAllSessions or C_Logout,
// because another pool in the process may use the same token.
func (cn *conn) kill(p *pkcs11.Ctx) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.dead {
		return
	}
	cn.dead = true
	close(cn.down)
	for {
		select {
		case s := <-cn.sessions:
			p.CloseSession(s)
		default:
			return
		}
	}
}

// fatalError is a card failure that retrying cannot cure.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

var errTokenNotFound = errors.New("token not found")

func (c *card) isFatal() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// sign signs digest with the card's copy of ck.
func (c *card) sign(ctx context.Context, ck *cardKey, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(ck.cert.PublicKey, digest, opts); err != nil {
		return nil, err
	}
	m := c.module
	m.op.RLock()
	defer m.op.RUnlock()
	cn := c.conn.Load()
	if cn == nil {
		return nil, fmt.Errorf("card %q: %w", c.cfg.Label, signing.ErrCardOut)
	}
	c.busy.Add(1)
	defer c.busy.Add(-1)
	var s pkcs11.SessionHandle
	select {
	case s = <-cn.sessions:
	case <-cn.down:
		return nil, fmt.Errorf("card %q: %w", c.cfg.Label, signing.ErrCardOut)
	case <-ctx.Done():
		return nil, fault.New(fault.Unavailable, signing.CodeTokenUnavailable, "no free session on card %q for seal %q in time", c.cfg.Label, ck.seal)
	}
	sig, err := signDigest(m.ctx, s, cn.keys[ck], ck.cert.PublicKey, digest, opts)
	cn.release(m.ctx, s)
	if err != nil {
		if !isCardFailure(err) {
			return nil, fault.Wrap(err, fault.Invalid, signing.CodeDigestInvalid, "card %q refused to sign the digest for seal %q", c.cfg.Label, ck.seal)
		}
		c.fail(cn, fmt.Errorf("signing for seal %q: %w", ck.seal, err))
		return nil, fmt.Errorf("card %q: %w: %w", c.cfg.Label, signing.ErrCardOut, err)
	}
	c.signatures.Add(1)
	return sig, nil
}

// fail takes the card out of service after cn failed, unless cn was already
// replaced.
func (c *card) fail(cn *conn, err error) {
	if c.conn.CompareAndSwap(cn, nil) {
		cn.kill(c.module.ctx)
		c.down(err)
	}
}

// down records why the card is out of service and, unless the cause is
// fatal, starts re-probing it.
func (c *card) down(err error) {
	var fe fatalError
	fatal := errors.As(err, &fe)
	c.mu.Lock()
	c.lastErr = err.Error()
	c.out = true
	if fatal {
		c.fatal = true
	}
	c.mu.Unlock()
	if fatal {
		c.log.Error("seal card out of service until restart", "module", c.moduleName, "token", c.cfg.Label, "err", err)
		return
	}
	c.log.Error("seal card out of service; retrying in the background", "module", c.moduleName, "token", c.cfg.Label, "err", err)
	c.startProbe()
}

// startProbe starts the background re-probe unless one is running.
func (c *card) startProbe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probing || c.fatal || c.closed {
		return
	}
	c.probes.Add(1)
	c.probing = true
	go c.probe()
}

// probe reconnects the card with growing pauses until it is back in service,
// the failure turns out fatal or the pool closes.
func (c *card) probe() {
	defer c.probes.Done()
	signing.Reprobe(c.stopped, probeFirst, probeMax, func() bool {
		m := c.module
		m.op.RLock()
		gen := m.gen
		err := c.connect()
		m.op.RUnlock()
		if errors.Is(err, errTokenNotFound) {
			m.reload(gen)
		} else if err != nil {
			c.mu.Lock()
			c.lastErr = err.Error()
			c.fatal = c.fatal || errors.As(err, new(fatalError))
			c.mu.Unlock()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		// Cleared under the lock that down checks, so a failure from now on starts a new probe.
		done := c.conn.Load() != nil || c.fatal
		if done {
			c.probing = false
		}
		return done
	})
}

// connect finds the token, opens its sessions, logs in, finds every seal key
// and checks each against its certificate, then puts the card in service.
// The caller holds c.module.op.
func (c *card) connect() error {
	if cn := c.conn.Load(); cn != nil && !cn.isDead() {
		return nil
	}
	p := c.module.ctx
	slot, info, err := findToken(p, c.cfg.Label)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.serial = strings.TrimSpace(info.SerialNumber)
	c.mu.Unlock()
	sessions := make([]pkcs11.SessionHandle, 0, c.cfg.Sessions)
	closeAll := func() {
		for _, s := range sessions {
			p.CloseSession(s)
		}
	}
	for range c.cfg.Sessions {
		s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		var pe pkcs11.Error
		if len(sessions) > 0 && errors.As(err, &pe) && pe == pkcs11.CKR_SESSION_COUNT {
			// Smart cards often allow only a few sessions: serve with those.
			c.log.Warn("seal card allows fewer sessions than configured", "module", c.moduleName,
				"token", c.cfg.Label, "configured", c.cfg.Sessions, "opened", len(sessions))
			break
		}
		if err != nil {
			closeAll()
			return fmt.Errorf("token %q: opening a session: %w", c.cfg.Label, err)
		}
		sessions = append(sessions, s)
	}
	if err := login(p, sessions[0], c.cfg); err != nil {
		closeAll()
		return err
	}
	keys := make(map[*cardKey]pkcs11.ObjectHandle, len(c.keys))
	for _, ck := range c.keys {
		h, err := findPrivateKey(p, sessions[0], ck.label, ck.id)
		if err != nil {
			closeAll()
			return fmt.Errorf("token %q, seal %q: %w", c.cfg.Label, ck.seal, err)
		}
		if err := probeKey(func(d []byte, o crypto.SignerOpts) ([]byte, error) {
			return signDigest(p, sessions[0], h, ck.cert.PublicKey, d, o)
		}, ck.cert); err != nil {
			closeAll()
			return fmt.Errorf("token %q, seal %q: %w", c.cfg.Label, ck.seal, err)
		}
		keys[ck] = h
	}
	cn := &conn{sessions: make(chan pkcs11.SessionHandle, len(sessions)), keys: keys, down: make(chan struct{})}
	for _, s := range sessions {
		cn.sessions <- s
	}
	c.conn.Store(cn)
	c.mu.Lock()
	level := slog.LevelInfo
	if c.wasUp && !c.out {
		level = slog.LevelDebug // reconnected only because the library was re-initialised for another card
	}
	c.out, c.wasUp = false, true
	c.mu.Unlock()
	c.log.Log(context.Background(), level, "seal card in service", "module", c.moduleName, "token", c.cfg.Label,
		"serial", info.SerialNumber, "sessions", len(sessions), "seals", len(keys))
	return nil
}

// login logs the user in. Login state is per token and application, shared
// by all its sessions, so one login serves every session (and a second pool
// on the same token finds the user already logged in). A refused PIN is
// fatal: retrying it would lock the card.
func login(p *pkcs11.Ctx, s pkcs11.SessionHandle, tc signing.TokenConfig) error {
	pin, err := tc.PIN.Value()
	if err != nil {
		return fatalError{fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed, "token %q: cannot read the PIN from %s", tc.Label, tc.PIN)}
	}
	err = p.Login(s, pkcs11.CKU_USER, string(pin))
	var pe pkcs11.Error
	switch {
	case err == nil, errors.As(err, &pe) && pe == pkcs11.CKR_USER_ALREADY_LOGGED_IN:
		return nil
	case errors.As(err, &pe) && (pe == pkcs11.CKR_PIN_INCORRECT || pe == pkcs11.CKR_PIN_INVALID ||
		pe == pkcs11.CKR_PIN_LEN_RANGE || pe == pkcs11.CKR_PIN_EXPIRED || pe == pkcs11.CKR_PIN_LOCKED):
		return fatalError{fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed, "token %q refused the PIN from %s", tc.Label, tc.PIN)}
	}
	return fmt.Errorf("token %q: login: %w", tc.Label, err)
}

// findToken returns the slot holding the token labelled label. Slot ids are
// not stable (SoftHSM makes them up), so labels are the only way to find a card.
func findToken(p *pkcs11.Ctx, label string) (uint, pkcs11.TokenInfo, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		// Counted as not found, so a re-probe re-initialises the library
		// (which may be what failed).
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("token %q: %w: listing slots: %w", label, errTokenNotFound, err)
	}
	for _, slot := range slots {
		info, err := p.GetTokenInfo(slot)
		if err != nil {
			continue // a token going away answers CKR_GENERAL_ERROR or similar
		}
		if strings.TrimSpace(info.Label) == label {
			return slot, info, nil
		}
	}
	return 0, pkcs11.TokenInfo{}, fmt.Errorf("token %q: %w", label, errTokenNotFound)
}

// findObject returns the single object of class with the given label and
// CKA_ID (either may be empty).
func findObject(p *pkcs11.Ctx, s pkcs11.SessionHandle, class uint, label string, id []byte) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	if len(id) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	if err := p.FindObjectsInit(s, tmpl); err != nil {
		return 0, fmt.Errorf("searching objects: %w", err)
	}
	objs, _, err := p.FindObjects(s, 2)
	p.FindObjectsFinal(s)
	if err != nil {
		return 0, fmt.Errorf("searching objects: %w", err)
	}
	switch len(objs) {
	case 0:
		return 0, fault.New(fault.NotFound, signing.CodeSealUnknown, "no object with label %q and id %x", label, id)
	case 1:
		return objs[0], nil
	}
	return 0, fault.New(fault.Conflict, signing.CodeConfigInvalid, "several objects match label %q and id %x; give both", label, id)
}

func findPrivateKey(p *pkcs11.Ctx, s pkcs11.SessionHandle, label string, id []byte) (pkcs11.ObjectHandle, error) {
	h, err := findObject(p, s, pkcs11.CKO_PRIVATE_KEY, label, id)
	if err != nil {
		return 0, fmt.Errorf("private key: %w", err)
	}
	return h, nil
}

// isCardFailure tells card failures (device removed, session or login lost,
// key gone, anything unexpected) from refusals of the request itself, which
// another card would refuse too.
func isCardFailure(err error) bool {
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		switch pe {
		case pkcs11.CKR_DATA_LEN_RANGE, pkcs11.CKR_DATA_INVALID, pkcs11.CKR_MECHANISM_INVALID,
			pkcs11.CKR_MECHANISM_PARAM_INVALID, pkcs11.CKR_ARGUMENTS_BAD:
			return false
		}
	}
	return true
}

// hashes maps the hashes a seal may use to their PKCS#11 mechanisms (for
// PSS) and DER DigestInfo prefixes (RFC 8017 §9.2 note 1, for PKCS#1 v1.5).
var hashes = map[crypto.Hash]struct {
	mech, mgf uint
	prefix    []byte
}{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224, []byte{0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c}},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384, []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512, []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
}

// checkDigest rejects digests that do not fit opts or the key, before any
// card sees them.
func checkDigest(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) error {
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return fault.New(fault.Invalid, signing.CodeDigestInvalid, "digest is %d bytes; %v needs %d", len(digest), h, h.Size())
	}
	if _, ok := pub.(*rsa.PublicKey); !ok {
		return nil
	}
	if _, pss := opts.(*rsa.PSSOptions); pss || h != 0 {
		if _, ok := hashes[h]; !ok {
			return fault.New(fault.Invalid, signing.CodeDigestInvalid, "hash %v is not supported for RSA seals", h)
		}
	}
	return nil
}

// signDigest makes one signature on session s with private key h, whose
// public key is pub: CKM_RSA_PKCS over DigestInfo, CKM_RSA_PKCS_PSS, or
// CKM_ECDSA with the raw r||s turned into ASN.1 DER.
func signDigest(p *pkcs11.Ctx, s pkcs11.SessionHandle, h pkcs11.ObjectHandle, pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var mech *pkcs11.Mechanism
	data := digest
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		hash := opts.HashFunc()
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := signing.PSSSaltLength(pub, pss)
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(hashes[hash].mech, hashes[hash].mgf, uint(salt)))
		} else {
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
			if hash != 0 {
				data = append(append(make([]byte, 0, len(hashes[hash].prefix)+len(digest)), hashes[hash].prefix...), digest...)
			}
		}
	case *ecdsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
	default:
		return nil, fmt.Errorf("key type %T cannot sign", pub)
	}
	if err := p.SignInit(s, []*pkcs11.Mechanism{mech}, h); err != nil {
		return nil, err
	}
	sig, err := p.Sign(s, data)
	if err != nil {
		return nil, err
	}
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		return ecdsaDER(sig)
	}
	return sig, nil
}

// ecdsaDER converts PKCS#11's r||s (PKCS#11 v2.40 §2.3.1) to the
// ECDSA-Sig-Value DER of RFC 3279 that crypto/ecdsa produces.
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("ECDSA signature of odd length %d from the card", len(raw))
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
}

// probeKey proves the private key behind sign belongs to cert: it signs a
// fixed digest and verifies the signature with the certificate's public key.
func probeKey(sign func([]byte, crypto.SignerOpts) ([]byte, error), cert *x509.Certificate) error {
	digest := sha256.Sum256([]byte("sealgate key probe"))
	sig, err := sign(digest[:], crypto.SHA256)
	if err != nil {
		return fmt.Errorf("probe signature: %w", err)
	}
	ok := false
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest[:], sig)
	}
	if !ok {
		return fault.New(fault.Conflict, signing.CodeKeyMismatch,
			"the key does not match certificate %q (serial %x)", cert.Subject.CommonName, cert.SerialNumber)
	}
	return nil
}

// publicKey reads the public key belonging to private key h: from the
// CKO_PUBLIC_KEY object with the same CKA_ID, else (RSA) from the private
// key's own modulus and exponent, else from a certificate with that CKA_ID.
func publicKey(p *pkcs11.Ctx, s pkcs11.SessionHandle, h pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	attrs, err := p.GetAttributeValue(s, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil), pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
	if err != nil {
		return nil, fmt.Errorf("reading the private key: %w", err)
	}
	keyType, id := attrUint(attrs[0].Value), attrs[1].Value
	if pubH, err := findObject(p, s, pkcs11.CKO_PUBLIC_KEY, "", id); err == nil {
		if pub, err := readPublicKey(p, s, pubH, keyType); err == nil {
			return pub, nil
		}
	}
	if keyType == pkcs11.CKK_RSA {
		if pub, err := readPublicKey(p, s, h, keyType); err == nil {
			return pub, nil
		}
	}
	if certH, err := findObject(p, s, pkcs11.CKO_CERTIFICATE, "", id); err == nil {
		a, err := p.GetAttributeValue(s, certH, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err == nil {
			if cert, err := x509.ParseCertificate(a[0].Value); err == nil {
				return cert.PublicKey, nil
			}
		}
	}
	return nil, fault.New(fault.NotFound, signing.CodeSealUnknown, "no public key or certificate with id %x next to the private key", id)
}

func readPublicKey(p *pkcs11.Ctx, s pkcs11.SessionHandle, h pkcs11.ObjectHandle, keyType uint) (crypto.PublicKey, error) {
	switch keyType {
	case pkcs11.CKK_RSA:
		a, err := p.GetAttributeValue(s, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil)})
		if err != nil {
			return nil, err
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if len(a[0].Value) == 0 || !e.IsInt64() {
			return nil, errors.New("RSA public key attributes missing")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}, nil
	case pkcs11.CKK_EC:
		a, err := p.GetAttributeValue(s, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			return nil, err
		}
		var curve elliptic.Curve
		switch {
		case bytes.Equal(a[0].Value, oidP256):
			curve = elliptic.P256()
		case bytes.Equal(a[0].Value, oidP384):
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("EC parameters %x: only P-256 and P-384", a[0].Value)
		}
		point := a[1].Value
		var inner []byte // CKA_EC_POINT is a DER OCTET STRING; some modules omit the wrapping
		if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
			point = inner
		}
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	}
	return nil, fmt.Errorf("key type %#x is not RSA or EC", keyType)
}

// DER-encoded named-curve OIDs as CKA_EC_PARAMS holds them.
var (
	oidP256 = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384 = []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}
)

// attrUint decodes a CK_ULONG attribute, which the module writes in the
// host's byte order and size.
func attrUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}
