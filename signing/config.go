package signing

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
)

// DefaultExpiryWarningDays is how long before a seal certificate expires the
// pool starts warning about it.
const DefaultExpiryWarningDays = 30

// PoolConfig is the "signing" section of sealgate.yaml: the PKCS#11 modules,
// the cards (tokens) they serve, the remote seal credentials at trust
// service providers (CSC API v2), and the seals whose keys sit on them.
//
//	signing:
//	  modules: [{name: softhsm, path: /usr/lib/softhsm/libsofthsm2.so}]
//	  tokens:
//	    - {module: softhsm, label: seal-1, pin: {env: SEAL1_PIN}, sessions: 4}
//	    - {module: softhsm, label: seal-2, pin: {file: /etc/sealgate/seal-2.pin}}
//	  remote:
//	    - name: tsp
//	      url: https://rs.tsp.example/csc/v2
//	      credential: 3f1c0f2e-acme-seal
//	      oauth: {clientId: sealgate, clientSecret: {env: TSP_SECRET}}
//	      pin: {env: TSP_SEAL_PIN}
//	  seals:
//	    - id: acme
//	      certificate: /etc/sealgate/acme-chain.pem
//	      keys: [{token: seal-1, label: seal}, {token: seal-2, label: seal}, {remote: tsp}]
//	    - id: dev
//	      softKey: {key: dev-seal.key, certificate: dev-seal.pem}
type PoolConfig struct {
	// Modules are the PKCS#11 libraries, each loaded once.
	Modules []ModuleConfig `yaml:"modules,omitempty"`
	// Tokens are the cards, found by label in their module.
	Tokens []TokenConfig `yaml:"tokens,omitempty"`
	// Remote are seal credentials at trust service providers, reached
	// through the CSC API v2 (signing/csc); each is a card of the pool.
	Remote []RemoteConfig `yaml:"remote,omitempty"`
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

// RemoteConfig is one remote seal credential: a key a trust service
// provider holds for the company, used through its CSC API v2 endpoint.
type RemoteConfig struct {
	// Name is how seal keys refer to the credential.
	Name string `yaml:"name"`
	// URL is the provider's CSC API base, e.g. https://rs.tsp.example/csc/v2
	// (the methods info, credentials/info, ... are relative to it). https is
	// required except on loopback.
	URL string `yaml:"url"`
	// Credential is the credentialID at the provider.
	Credential string `yaml:"credential"`
	// OAuth is how sealgate obtains its access token.
	OAuth RemoteOAuthConfig `yaml:"oauth"`
	// PIN and OTP answer the credential's authorization objects of those
	// types (credentials/authorize authData); needed only when the
	// credential's auth mode asks for them.
	PIN secret.Ref `yaml:"pin,omitempty"`
	OTP secret.Ref `yaml:"otp,omitempty"`
	// CA is a PEM file of the CA certificates the provider's TLS certificate
	// chains to; default the system roots.
	CA string `yaml:"ca,omitempty"`
	// Sessions is how many requests sealgate has under way at the provider
	// at once. Default 4.
	Sessions int `yaml:"sessions,omitempty"`
	// Timeout bounds each HTTP request to the provider. Default 10s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// SADSignatures is how many signatures one credentials/authorize
	// covers for single signatures on an SCAL1 credential (an SCAL2 SAD is
	// bound to its hashes). Default 100.
	SADSignatures int `yaml:"sadSignatures,omitempty"`
}

// RemoteOAuthConfig is the OAuth 2.0 client sealgate is at the provider.
type RemoteOAuthConfig struct {
	// TokenURL is the token endpoint; default the oauth2 base URI the
	// provider's info method announces, + "/oauth2/token".
	TokenURL string `yaml:"tokenUrl,omitempty"`
	// ClientID and ClientSecret identify sealgate to the provider.
	ClientID     string     `yaml:"clientId"`
	ClientSecret secret.Ref `yaml:"clientSecret"`
	// RefreshToken, when set, selects the authorization-code flow: the
	// refresh token obtained once by an administrator's login at the
	// provider, exchanged for access tokens (grant_type=refresh_token).
	// Without it sealgate uses the client-credentials grant.
	RefreshToken secret.Ref `yaml:"refreshToken,omitempty"`
	// Scope is requested with every token; default "service".
	Scope string `yaml:"scope,omitempty"`
}

// KeyRef finds a private key on a card by label and/or CKA_ID, or names
// a remote credential.
type KeyRef struct {
	// Token is the label of the token holding the key.
	Token string `yaml:"token,omitempty"`
	// Remote is the name of the remote credential holding the key; it
	// excludes Token, Label and ID.
	Remote string `yaml:"remote,omitempty"`
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
	for i := range c.Remote {
		abs(&c.Remote[i].CA)
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
	remotes, err := c.validateRemote()
	if err != nil {
		return err
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
		onRemote := map[string]bool{}
		for _, k := range s.Keys {
			if k.Remote != "" {
				switch {
				case k.Token != "" || k.Label != "" || k.ID != "":
					return bad("seal %q: key on remote credential %q takes no token, label or id", s.ID, k.Remote)
				case !remotes[k.Remote]:
					return bad("seal %q names unknown remote credential %q", s.ID, k.Remote)
				case onRemote[k.Remote]:
					return bad("seal %q lists remote credential %q twice", s.ID, k.Remote)
				}
				onRemote[k.Remote] = true
				continue
			}
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

// validateRemote checks the remote credentials and returns their names.
func (c *PoolConfig) validateRemote() (map[string]bool, error) {
	bad := func(format string, args ...any) error {
		return fault.New(fault.Invalid, CodeConfigInvalid, "signing: remote "+format, args...)
	}
	names := map[string]bool{}
	for _, r := range c.Remote {
		if r.Name == "" {
			return nil, bad("credential at %q has no name", r.URL)
		}
		if names[r.Name] {
			return nil, bad("%q is listed twice", r.Name)
		}
		names[r.Name] = true
		if err := checkRemoteURL(r.URL); err != nil {
			return nil, bad("%q: url: %v", r.Name, err)
		}
		if r.OAuth.TokenURL != "" {
			if err := checkRemoteURL(r.OAuth.TokenURL); err != nil {
				return nil, bad("%q: oauth.tokenUrl: %v", r.Name, err)
			}
		}
		switch {
		case r.Credential == "":
			return nil, bad("%q has no credential id", r.Name)
		case r.OAuth.ClientID == "":
			return nil, bad("%q: oauth.clientId is missing", r.Name)
		case r.OAuth.ClientSecret.IsZero():
			return nil, bad("%q: oauth.clientSecret needs a source (env or file)", r.Name)
		case r.Sessions < 0:
			return nil, bad("%q: sessions %d is negative", r.Name, r.Sessions)
		case r.Timeout < 0:
			return nil, bad("%q: timeout %v is negative", r.Name, r.Timeout)
		case r.SADSignatures < 0:
			return nil, bad("%q: sadSignatures %d is negative", r.Name, r.SADSignatures)
		}
		for field, ref := range map[string]secret.Ref{"oauth.clientSecret": r.OAuth.ClientSecret,
			"oauth.refreshToken": r.OAuth.RefreshToken, "pin": r.PIN, "otp": r.OTP} {
			if ref.Env != "" && ref.File != "" {
				return nil, bad("%q: %s names both env and file; choose one", r.Name, field)
			}
		}
	}
	return names, nil
}

// checkRemoteURL accepts an absolute https URL, or http on a loopback host
// (a provider's test endpoint on this machine): seal authorizations never
// cross a network in clear text.
func checkRemoteURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("missing")
	case err != nil:
		return err
	case u.Host == "":
		return errors.New("not an absolute URL")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
		return errors.New("http is allowed on loopback only; use https")
	}
	return fmt.Errorf("scheme %q is not https", u.Scheme)
}
