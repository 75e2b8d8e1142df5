package signing

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"github.com/sealgate/sealgate/fault"
	"io"

	"github.com/sealgate/sealgate/devpki"
)

// SoftKey is a seal key held in a file. It exists for development only: a
// qualified seal's key never leaves its card. Its certificate is marked
// "development — not qualified" when made by devpki.
type SoftKey struct {
	signer crypto.Signer
	chain  []*x509.Certificate
}

// NewSoftKey pairs signer with chain, checking the key matches the first certificate.
func NewSoftKey(signer crypto.Signer, chain []*x509.Certificate) (*SoftKey, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("signing: soft key without certificate")
	}
	if err := CheckKeyMatches(signer.Public(), chain[0]); err != nil {
		return nil, err
	}
	return &SoftKey{signer: signer, chain: chain}, nil
}

// LoadSoftKey reads a PEM private key file and a PEM chain file.
func LoadSoftKey(keyFile, chainFile string) (*SoftKey, error) {
	k, err := devpki.ReadKeyPEM(keyFile)
	if err != nil {
		return nil, fmt.Errorf("signing: soft key: %w", err)
	}
	chain, err := devpki.ReadCertsPEM(chainFile)
	if err != nil {
		return nil, fmt.Errorf("signing: soft key chain %s: %w", chainFile, err)
	}
	return NewSoftKey(k, chain)
}

// Public returns the public key.
func (k *SoftKey) Public() crypto.PublicKey { return k.signer.Public() }

// Sign signs digest with the software key.
func (k *SoftKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.signer.Sign(rand, digest, opts)
}

// Chain returns the certificate chain, seal certificate first.
func (k *SoftKey) Chain() []*x509.Certificate { return k.chain }

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
