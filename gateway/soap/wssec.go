package soap

import (
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
)

// Codes of WS-Security UsernameToken checks.
const (
	// CodeWSSecurityMalformed: the wsse:Security header cannot be used as it is.
	CodeWSSecurityMalformed fault.Code = "wsse_malformed"
	// CodeCreatedStale: the token's Created lies outside the freshness
	// window (or too far ahead of sealgate's clock).
	CodeCreatedStale fault.Code = "wsse_created_stale"
	// CodeNonceReplayed: the token's Nonce was seen within the freshness window.
	CodeNonceReplayed fault.Code = "wsse_nonce_replayed"
	// CodeDigestUnsupported: a PasswordDigest, which needs the cleartext
	// password on the server; sealgate keeps only one-way hashes.
	CodeDigestUnsupported fault.Code = "wsse_password_digest_unsupported"
	// CodeNoncesFull: more tokens with nonces arrive within the freshness
	// window than sealgate remembers; retry later.
	CodeNoncesFull fault.Code = "wsse_busy"
)

// Password types of the UsernameToken profile 1.0.
const (
	passwordText   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
	passwordDigest = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
	base64Binary   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// security is the wsse:Security header; sealgate reads its UsernameToken.
type security struct {
	Token *usernameToken `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd UsernameToken"`
}

type usernameToken struct {
	Username string `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Username"`
	Password struct {
		Type  string `xml:"Type,attr"`
		Value string `xml:",chardata"`
	} `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Password"`
	Nonce *struct {
		EncodingType string `xml:"EncodingType,attr"`
		Value        string `xml:",chardata"`
	} `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Nonce"`
	Created string `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd Created"`
}

// WSSecuritySettings bound UsernameTokens: the soap section's wsSecurity.
type WSSecuritySettings struct {
	// Freshness is how long after its Created a token is accepted, and how
	// long its Nonce is remembered to refuse replays. Default 5m.
	Freshness time.Duration `yaml:"freshness"`
	// ClockSkew is how far a caller's clock may be ahead of or behind
	// sealgate's. Default 1m.
	ClockSkew time.Duration `yaml:"clockSkew"`
	// MaxNonces bounds the nonces remembered at once. Default 100,000.
	MaxNonces int `yaml:"maxNonces"`
}

func (s WSSecuritySettings) withDefaults() WSSecuritySettings {
	if s.Freshness <= 0 {
		s.Freshness = 5 * time.Minute
	}
	if s.ClockSkew <= 0 {
		s.ClockSkew = time.Minute
	}
	if s.MaxNonces <= 0 {
		s.MaxNonces = 100000
	}
	return s
}

// nonces remembers the nonces of the freshness window, each until its
// token could no longer be accepted anyway.
type nonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
	max  int
}

// add records key until then, or says it was seen already.
func (n *nonces) add(key string, until, now time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.seen[key]; ok && t.After(now) {
		return fault.New(fault.Unauthenticated, CodeNonceReplayed, "this UsernameToken's Nonce was used already: every request needs a fresh one")
	}
	if len(n.seen) >= n.max {
		for k, t := range n.seen {
			if !t.After(now) {
				delete(n.seen, k)
			}
		}
		if len(n.seen) >= n.max {
			return fault.New(fault.TooMany, CodeNoncesFull, "too many WS-Security nonces within the freshness window; try again shortly").Retry(time.Second)
		}
	}
	n.seen[key] = until
	return nil
}

// usernameToken authenticates the caller of r by the UsernameToken in
// sec: a process's client id and secret or a user's login and password as
// PasswordText, with the lockouts and audit of HTTP Basic. Created, when
// given, must lie within the freshness window; a Nonce needs Created and
// is refused when seen before within the window.
func (e *Endpoint) usernameToken(r *http.Request, sec *security) (access.Principal, error) {
	tok := sec.Token
	if tok == nil {
		return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "wsse:Security carries no UsernameToken, the one token sealgate accepts")
	}
	name := strings.TrimSpace(tok.Username)
	if name == "" {
		return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "the UsernameToken has no Username")
	}
	s, now := e.wss, e.now()
	if tok.Created != "" {
		created, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(tok.Created))
		if err != nil {
			return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "the UsernameToken's Created %q is not an xs:dateTime with a time zone", tok.Created)
		}
		switch {
		case created.After(now.Add(s.ClockSkew)):
			return access.Principal{}, fault.New(fault.Unauthenticated, CodeCreatedStale, "the UsernameToken's Created lies %s ahead of sealgate's clock (at most %s allowed)", created.Sub(now).Round(time.Second), s.ClockSkew)
		case created.Before(now.Add(-s.Freshness - s.ClockSkew)):
			return access.Principal{}, fault.New(fault.Unauthenticated, CodeCreatedStale, "the UsernameToken was created %s ago; it is accepted for %s", now.Sub(created).Round(time.Second), s.Freshness)
		}
		if tok.Nonce != nil {
			if enc := tok.Nonce.EncodingType; enc != "" && enc != base64Binary {
				return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "the Nonce's EncodingType %q is not supported (use Base64Binary)", enc)
			}
			nonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok.Nonce.Value))
			if err != nil || len(nonce) < 8 || len(nonce) > 256 {
				return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "the Nonce must be 8 to 256 random bytes in base64")
			}
			if err := e.nonces.add(name+"\x00"+string(nonce), created.Add(s.Freshness+s.ClockSkew), now); err != nil {
				return access.Principal{}, err
			}
		}
	} else if tok.Nonce != nil {
		return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "a UsernameToken with a Nonce needs Created: replays are refused within the freshness window after it")
	}
	switch strings.TrimSpace(tok.Password.Type) {
	case "", passwordText:
	case passwordDigest:
		return access.Principal{}, fault.New(fault.Unauthenticated, CodeDigestUnsupported,
			"PasswordDigest is not supported: it needs the cleartext password on the server, and sealgate keeps only one-way hashes of passwords and client secrets; send PasswordText over TLS, or use HTTP Basic, a bearer token or a client certificate")
	default:
		return access.Principal{}, fault.New(fault.Invalid, CodeWSSecurityMalformed, "the Password Type %q is not one of the UsernameToken profile's", tok.Password.Type)
	}
	return e.Auth.AuthenticatePassword(r, name, tok.Password.Value)
}
