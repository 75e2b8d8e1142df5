// Package signing makes seals: it pools the seal keys (PKCS#11 cards and HSM
// slots, or a development software key), builds CMS signatures (CAdES) and
// PDF signatures (PAdES), and validates them. It knows nothing of users,
// HTTP or SOAP.
package signing

import (
	"context"
	"crypto"
	"crypto/x509"

	"github.com/sealgate/sealgate/fault"
)

// Key is a seal's private key together with its certificate chain.
// Implementations: a pooled PKCS#11 seal (Pool.Key) and SoftKey.
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

// Error codes reported by this package.
const (
	CodeSealUnknown      fault.Code = "seal_unknown"
	CodeTokenUnavailable fault.Code = "token_unavailable"
	CodeKeyMismatch      fault.Code = "key_certificate_mismatch"
	CodeTimestampFailed  fault.Code = "timestamp_failed"
	CodePDFEncrypted     fault.Code = "pdf_encrypted"
	CodePDFMalformed     fault.Code = "pdf_malformed"
	CodeInputUnreadable  fault.Code = "input_unreadable"
)
