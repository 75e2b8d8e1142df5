package pkcs11

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/sealgate/sealgate/signing"
)

// Backend opens the tokens of a configuration's "signing" section as the
// pool's cards. It implements signing.Backend.
type Backend struct{}

// OpenCards loads every configured module (once per library in the
// process), finds every token by label, logs in, finds each seal key on it
// and checks the key against the seal certificate. A token that cannot be
// used is returned out of service: it is re-probed in the background unless
// the failure is fatal (PIN refused, library missing).
func (Backend) OpenCards(_ context.Context, cfg signing.PoolConfig, chains map[string][]*x509.Certificate, log *slog.Logger) ([]signing.Card, error) {
	modulePaths := map[string]string{}
	for _, m := range cfg.Modules {
		modulePaths[m.Name] = m.Path
	}
	var cards []*card
	for _, tc := range cfg.Tokens {
		stopped, stop := context.WithCancel(context.Background())
		c := &card{log: log, moduleName: tc.Module, cfg: tc, stopped: stopped, stop: stop}
		if c.cfg.Sessions == 0 {
			c.cfg.Sessions = runtime.NumCPU()
		}
		cards = append(cards, c)
		for _, sc := range cfg.Seals {
			for _, k := range sc.Keys {
				if k.Token == tc.Label && len(chains[sc.ID]) > 0 {
					id, _ := hex.DecodeString(k.ID) // checked by Validate
					c.keys = append(c.keys, &cardKey{card: c, seal: sc.ID, cert: chains[sc.ID][0], label: k.Label, id: id})
				}
			}
		}
		m, err := openModule(modulePaths[tc.Module])
		if err != nil {
			c.down(fatalError{fmt.Errorf("module %s not loaded: %w", tc.Module, err)})
			continue
		}
		c.module = m
		m.attach(c)
	}
	out := make([]signing.Card, 0, len(cards))
	for _, c := range cards {
		out = append(out, c)
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
	return out, nil
}

// cardKey is one copy of a seal key on a card: how to find it there, and
// the certificate it must match.
type cardKey struct {
	card  *card
	seal  string
	cert  *x509.Certificate
	label string
	id    []byte
}

// SealID implements signing.CardKey.
func (k *cardKey) SealID() string { return k.seal }

// SignContext implements signing.CardKey: it waits (bounded by ctx) for a
// free session on the card and signs there.
func (k *cardKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.card.sign(ctx, k, digest, opts)
}

// Label implements signing.Card: the token label.
func (c *card) Label() string { return c.cfg.Label }

// InService implements signing.Card.
func (c *card) InService() bool { return c.conn.Load() != nil }

// Load implements signing.Card.
func (c *card) Load() int64 { return c.busy.Load() }

// Keys implements signing.Card.
func (c *card) Keys() []signing.CardKey { return signing.CardKeys(c.keys) }

// Status implements signing.Card.
func (c *card) Status() signing.CardStatus {
	c.mu.Lock()
	st := signing.CardStatus{
		Module:     c.moduleName,
		Token:      c.cfg.Label,
		Serial:     c.serial,
		LastError:  c.lastErr,
		Retrying:   !c.fatal && !c.closed,
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
	return st
}

// Close implements signing.Card: it stops re-probing, closes the card's
// sessions and releases its module (finalized when no card in the process
// uses it).
func (c *card) Close() error {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if was {
		return nil
	}
	c.stop()
	c.probes.Wait()
	if c.module == nil {
		return nil
	}
	c.module.detach(c)
	c.module.op.RLock()
	if cn := c.conn.Swap(nil); cn != nil {
		cn.kill(c.module.ctx)
	}
	c.module.op.RUnlock()
	c.module.release()
	return nil
}
