// Package softkey is the development seal key: a private key held in a file
// instead of on a card. It exists so that sealgate runs out of the box; a
// qualified seal's key never leaves its card. Certificates made for it by
// devpki are marked "development — not qualified".
package softkey

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// Key is a seal key held in a file; it implements signing.Key.
type Key struct {
	signer crypto.Signer
	chain  []*x509.Certificate
}

// New pairs signer with chain, checking the key matches the first certificate.
func New(signer crypto.Signer, chain []*x509.Certificate) (*Key, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("softkey: key without certificate")
	}
	if err := signing.CheckKeyMatches(signer.Public(), chain[0]); err != nil {
		return nil, err
	}
	return &Key{signer: signer, chain: chain}, nil
}

// Load reads a PEM private key file and a PEM chain file.
func Load(keyFile, chainFile string) (*Key, error) {
	k, err := devpki.ReadKeyPEM(keyFile)
	if err != nil {
		return nil, fmt.Errorf("softkey: %w", err)
	}
	chain, err := devpki.ReadCertsPEM(chainFile)
	if err != nil {
		return nil, fmt.Errorf("softkey: chain %s: %w", chainFile, err)
	}
	return New(k, chain)
}

// Public returns the public key.
func (k *Key) Public() crypto.PublicKey { return k.signer.Public() }

// Sign signs digest with the software key.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.signer.Sign(rand, digest, opts)
}

// Chain returns the certificate chain, seal certificate first.
func (k *Key) Chain() []*x509.Certificate { return k.chain }

// Backend opens the seals of a configuration that name a softKey, each as a
// card of its own that is always in service.
type Backend struct{}

// OpenCards implements signing.Backend.
func (Backend) OpenCards(_ context.Context, cfg signing.PoolConfig, _ map[string][]*x509.Certificate, log *slog.Logger) ([]signing.Card, error) {
	var cards []signing.Card
	for _, sc := range cfg.Seals {
		if sc.SoftKey == nil {
			continue
		}
		k, err := Load(sc.SoftKey.Key, sc.SoftKey.Certificate)
		if err != nil {
			return cards, fault.Wrap(err, fault.Invalid, signing.CodeConfigInvalid, "signing: seal %q: development key %s", sc.ID, sc.SoftKey.Key)
		}
		log.Warn("seal uses a software key: development — not qualified", "seal", sc.ID, "key", sc.SoftKey.Key)
		cards = append(cards, &card{seal: sc.ID, key: k})
	}
	return cards, nil
}

// card is a software key seen by the pool: one key, always in service.
type card struct {
	seal string
	key  *Key
}

func (c *card) Label() string           { return "software key" }
func (c *card) InService() bool         { return true }
func (c *card) Load() int64             { return 0 }
func (c *card) Keys() []signing.CardKey { return []signing.CardKey{c} }
func (c *card) Status() signing.CardStatus {
	return signing.CardStatus{Token: c.Label(), Healthy: true, Software: true}
}
func (c *card) Close() error   { return nil }
func (c *card) SealID() string { return c.seal }

func (c *card) SignContext(_ context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return c.key.Sign(rand.Reader, digest, opts)
}
