// Package access decides who may seal what: users, groups and processes, the
// factors they proved, the rules that grant seals (default deny), and the
// tamper-evident audit trail. seal.Service asks it once per request.
package access

import (
	"net/netip"
	"slices"
	"time"
)

// Kind is the kind of principal.
type Kind string

// Kinds of principal.
const (
	// KindAnonymous is a caller that presented no credentials.
	KindAnonymous Kind = ""
	KindUser      Kind = "user"
	KindProcess   Kind = "process"
)

// Factor is one proof of identity a principal presented for this request.
type Factor string

// Factors.
const (
	FactorPassword     Factor = "password"      // local or directory password
	FactorTOTP         Factor = "totp"          // RFC 6238 code
	FactorClientSecret Factor = "client_secret" // HTTP Basic or OAuth client credentials
	FactorBearer       Factor = "bearer"        // OAuth access token (issued after a client secret)
	FactorClientCert   Factor = "client_cert"   // TLS client certificate on the mTLS listener
)

// Principal is an authenticated caller. Transports build it from what they
// verified; nothing else in sealgate trusts a caller-provided identity.
type Principal struct {
	Kind Kind
	// ID is the stable internal id of the user or process.
	ID int64
	// Name is the login name or process client id.
	Name string
	// Groups are the sealgate group names the principal belongs to now.
	Groups []string
	// Factors are the proofs presented for this request.
	Factors []Factor
	// Source is the caller's network address, when known.
	Source netip.Addr
	// Approval is set when the caller proved a fresh TOTP for this one
	// request or batch (per-batch approval).
	Approval *Approval
	// Roles are administrative roles (admin, auditor).
	Roles []string
}

// Approval records a fresh second factor given for one batch.
type Approval struct {
	// ID is the stored approval; Decide consumes it, so one approval
	// covers one document or one batch.
	ID     int64
	Factor Factor
	At     time.Time
}

// Has reports whether the principal presented factor f.
func (p Principal) Has(f Factor) bool { return slices.Contains(p.Factors, f) }
