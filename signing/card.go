package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// Card is one holder of seal keys that the pool spreads signatures over: a
// PKCS#11 token or HSM slot, or the development software key. A card keeps
// itself healthy: it reconnects in the background after a failure.
type Card interface {
	// Label names the card in logs, status reports and seal events.
	Label() string
	// InService reports whether the card can sign now.
	InService() bool
	// Load is the number of signatures under way or waiting on the card;
	// the pool signs on the least loaded card.
	Load() int64
	// Keys are the copies of seal keys the card holds.
	Keys() []CardKey
	// Status describes the card; the pool fills in Seals.
	Status() CardStatus
	// Close ends the card's sessions and background work.
	Close() error
}

// CardKey is the copy of one seal's key on a card.
type CardKey interface {
	// SealID is the id of the seal whose key this is.
	SealID() string
	// SignContext signs digest (hashed with opts.HashFunc()). ctx bounds the
	// wait for the card. An error wrapping ErrCardOut means the card failed
	// and is out of service: the pool signs the same digest on another card.
	// Any other error is the request's own fault and is returned as it is.
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// BatchCardKey is a CardKey that signs many digests under one
// authorization: a remote credential authorizes the batch once and signs
// several digests per call. SealKey.SignBatch uses it where a card offers it.
type BatchCardKey interface {
	CardKey
	// SignBatch signs every digest (all hashed with opts.HashFunc()) and
	// returns the signatures in the same order. Errors are as SignContext's:
	// one wrapping ErrCardOut means the card failed and none of the
	// signatures counts; the pool signs the batch on another card.
	SignBatch(ctx context.Context, digests [][]byte, opts crypto.SignerOpts) ([][]byte, error)
}

// ErrCardOut marks a failure that takes a card out of service.
var ErrCardOut = errors.New("card out of service")

// Backend opens the cards of one kind that the "signing" section names.
// NewPool calls every backend it is given once.
type Backend interface {
	// OpenCards returns the cards of cfg that this backend serves, holding
	// keys of the seals in chains (seal id → certificate chain, seal
	// certificate first). A card that cannot be used now is returned out of
	// service and keeps retrying; only configuration errors fail.
	OpenCards(ctx context.Context, cfg PoolConfig, chains map[string][]*x509.Certificate, log *slog.Logger) ([]Card, error)
}

// CardKeys returns a card's keys as the pool sees them, for Card.Keys.
func CardKeys[K CardKey](keys []K) []CardKey {
	out := make([]CardKey, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out
}

// Reprobe calls try after first, then after pauses doubling up to max,
// until try reports that it is done or ctx ends: how a card out of service
// is reconnected in the background.
func Reprobe(ctx context.Context, first, max time.Duration, try func() (done bool)) {
	delay := first
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, max)
		if try() {
			return
		}
	}
}

// PSSSaltLength is the salt length opts asks for with key pub, the
// special values of crypto/rsa resolved (Auto is the longest that fits).
func PSSSaltLength(pub *rsa.PublicKey, opts *rsa.PSSOptions) int {
	switch opts.SaltLength {
	case rsa.PSSSaltLengthAuto:
		return (pub.N.BitLen()-1+7)/8 - 2 - opts.HashFunc().Size()
	case rsa.PSSSaltLengthEqualsHash:
		return opts.HashFunc().Size()
	}
	return opts.SaltLength
}

// CheckSealKeyType accepts the key types a seal may have: RSA 2048–4096
// bits, ECDSA P-256 and P-384.
func CheckSealKeyType(cert *x509.Certificate) error {
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < 2048 || n > 4096 {
			return fmt.Errorf("RSA key of %d bits; seals need 2048 to 4096", n)
		}
		return nil
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P256() || pub.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("ECDSA curve %s; seals need P-256 or P-384", pub.Curve.Params().Name)
	}
	return fmt.Errorf("key type %T; seals need RSA or ECDSA", cert.PublicKey)
}

// CheckKeyMatches reports an error with code key_certificate_mismatch unless
// pub is the public key certified by cert.
func CheckKeyMatches(pub crypto.PublicKey, cert *x509.Certificate) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := pub.(equaler)
	if !ok || !e.Equal(cert.PublicKey) {
		return fault.New(fault.Conflict, CodeKeyMismatch,
			"the key does not match certificate %q (serial %x)", cert.Subject.CommonName, cert.SerialNumber)
	}
	return nil
}
