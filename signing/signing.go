// Package signing is the seal pool: it holds the seals sealgate can apply,
// spreads their signatures over the cards that hold copies of each seal key,
// takes failed cards out of service and signs on the next one. It defines
// what every key backend implements (Card, CardKey, Backend) and what every
// signature format uses (Key, Timestamper); it knows no signature format and
// nothing of users, HTTP or SOAP.
//
// The backends live in their own packages: signing/pkcs11 (seal cards and
// HSM slots), signing/csc (remote seals at a trust service provider, CSC
// API v2) and signing/softkey (the development software key). The formats
// build on Key: signing/cms (CMS and CAdES), signing/pades (PAdES) with
// signing/stamp (the visible stamp), over signing/pdf.
package signing

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"

	"github.com/sealgate/sealgate/fault"
)

// Key is a seal's private key together with its certificate chain.
// Implementations: a pooled seal (Pool.Key) and softkey.Key.
type Key interface {
	crypto.Signer
	// Chain returns the seal certificate first, then its issuers.
	Chain() []*x509.Certificate
}

// Timestamper obtains RFC 3161 timestamp tokens for a digest. The tsa
// package's Client implements it.
type Timestamper interface {
	// Timestamp returns the DER TimeStampToken (a CMS ContentInfo) over
	// digest, which was computed with hash.
	Timestamp(ctx context.Context, digest []byte, hash crypto.Hash) ([]byte, error)
}

// Error codes reported by the signing packages (the format packages add
// their own).
const (
	CodeSealUnknown      fault.Code = "seal_unknown"
	CodeTokenUnavailable fault.Code = "token_unavailable"
	CodeKeyMismatch      fault.Code = "key_certificate_mismatch"
	CodeTimestampFailed  fault.Code = "timestamp_failed"
	CodePDFEncrypted     fault.Code = "pdf_encrypted"
	CodePDFMalformed     fault.Code = "pdf_malformed"
	CodeInputUnreadable  fault.Code = "input_unreadable"
	// CodePAdESOptionInvalid: a PAdES or stamp option is out of range.
	CodePAdESOptionInvalid fault.Code = "pades_option_invalid"
	// CodeConfigInvalid: the "signing" configuration section is inconsistent.
	CodeConfigInvalid fault.Code = "signing_config_invalid"
	// CodeDigestInvalid: a digest does not fit the hash or key it is signed with.
	CodeDigestInvalid fault.Code = "digest_invalid"
	// CodeTokenLoginFailed: a card refused its PIN (or the PIN could not be read).
	CodeTokenLoginFailed fault.Code = "token_login_failed"
)

// SignContext signs with key, bounded by ctx when key supports it (pooled
// keys do; a software key does not wait for anything).
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
