package access

import (
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/secret"
)

// CodeConfigInvalid reports a wrong access section in sealgate.yaml.
const CodeConfigInvalid fault.Code = "access_config_invalid"

// fileOptions is the access section of sealgate.yaml:
//
//	access:
//	  tokenTTL: 10m
//	  sessionTTL: 8h
//	  sessionIdleTimeout: 30m
//	  totpIssuer: Example Corp sealgate
//	  password: {memoryKiB: 65536, time: 2, threads: 2}
//	  passwordChecks: {concurrency: 2, queue: 8, maxWait: 2s}   # default concurrency: GOMAXPROCS
//	  lockout: {pairFailures: 5, accountFailures: 50, sourceFailures: 20, baseLock: 1m, maxLock: 1h, window: 1h, ipv6Prefix: 64}
//	  secretsKey: {file: /etc/sealgate/secrets.key}   # default <data>/secrets.key, created on first start
//	  trustedProxies: [10.0.0.5/32]
//	  forwardedHeader: X-Forwarded-For                # or Forwarded (RFC 7239)
//	  clientCertHeader: X-Client-Cert                 # optional
//	  clientCertVerified: true                        # the proxy verifies client certificates
type fileOptions struct {
	TokenTTL           time.Duration      `yaml:"tokenTTL"`
	SessionTTL         time.Duration      `yaml:"sessionTTL"`
	SessionIdleTimeout time.Duration      `yaml:"sessionIdleTimeout"`
	TOTPIssuer         string             `yaml:"totpIssuer"`
	Password           PasswordParams     `yaml:"password"`
	PasswordChecks     limit.GateSettings `yaml:"passwordChecks"`
	Lockout            LockoutPolicy      `yaml:"lockout"`
	SecretsKey         secret.Ref         `yaml:"secretsKey"`
	TrustedProxies     []string           `yaml:"trustedProxies"`
	ForwardedHeader    string             `yaml:"forwardedHeader"`
	ClientCertHeader   string             `yaml:"clientCertHeader"`
	ClientCertVerified bool               `yaml:"clientCertVerified"`
}

// Forwarding headers a proxy may name the client in.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// ProxySettings name the reverse proxies sealgate sits behind. access
// reads no requests: the HTTP transports (gateway/httpauth) apply these, so
// that lockouts, rules' source networks and the audit trail see the
// client's address instead of the proxy's.
type ProxySettings struct {
	// TrustedProxies are the peers whose forwarding headers are believed;
	// from anyone else those headers are ignored.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the one header the proxies name the client in:
	// HeaderXForwardedFor (default) or HeaderForwarded. Only one is read,
	// since a proxy passes the other on as the client sent it.
	ForwardedHeader string
	// ClientCertHeader, when set, names the header in which the proxies
	// pass the client's TLS certificate (URL-encoded PEM, as nginx's
	// $ssl_client_escaped_cert).
	ClientCertHeader string
	// ClientCertVerified says the proxies verify client certificates
	// against the client CA, so subject mappings apply to them; otherwise
	// only pinned fingerprints match.
	ClientCertVerified bool
}

// loadProxySettings checks the proxy keys of the access section.
func loadProxySettings(c fileOptions, path string) (ProxySettings, error) {
	ps := ProxySettings{ClientCertHeader: http.CanonicalHeaderKey(c.ClientCertHeader), ClientCertVerified: c.ClientCertVerified}
	for _, v := range c.TrustedProxies {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return ProxySettings{}, fault.New(fault.Invalid, CodeConfigInvalid, "access.trustedProxies in %s: %q is neither a CIDR nor an address", path, v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		ps.TrustedProxies = append(ps.TrustedProxies, p.Masked())
	}
	switch {
	case c.ForwardedHeader == "" || strings.EqualFold(c.ForwardedHeader, HeaderXForwardedFor):
		ps.ForwardedHeader = HeaderXForwardedFor
	case strings.EqualFold(c.ForwardedHeader, HeaderForwarded):
		ps.ForwardedHeader = HeaderForwarded
	default:
		return ProxySettings{}, fault.New(fault.Invalid, CodeConfigInvalid, "access.forwardedHeader in %s must be %s or %s (got %q)",
			path, HeaderXForwardedFor, HeaderForwarded, c.ForwardedHeader)
	}
	if c.ClientCertHeader != "" {
		if strings.ContainsFunc(c.ClientCertHeader, func(r rune) bool {
			return !(r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
		}) {
			return ProxySettings{}, fault.New(fault.Invalid, CodeConfigInvalid, "access.clientCertHeader in %s: %q is not a header name", path, c.ClientCertHeader)
		}
		if len(ps.TrustedProxies) == 0 {
			return ProxySettings{}, fault.New(fault.Invalid, CodeConfigInvalid, "access.clientCertHeader in %s needs access.trustedProxies: the header is read only from them", path)
		}
	}
	return ps, nil
}

// minPasswordMemoryKiB is OWASP's floor for argon2id (19 MiB); less would
// make stolen hashes cheap to attack.
const minPasswordMemoryKiB = 19 * 1024

// LoadOptions reads the access section of f into Options (Logger, Now,
// Directories and OnAuditHead are the caller's to set). A missing section
// gives the defaults; without secretsKey, the secrets key is kept in
// <data>/secrets.key.
func LoadOptions(f *config.File) (Options, error) {
	var c fileOptions
	if _, err := f.Section("access", &c); err != nil {
		return Options{}, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "the access section of %s is invalid", f.Path)
	}
	p := c.Password
	if p != (PasswordParams{}) && (p.MemoryKiB < minPasswordMemoryKiB || p.Time < 1 || p.Threads < 1) {
		return Options{}, fault.New(fault.Invalid, CodeConfigInvalid,
			"access.password in %s needs memoryKiB >= %d, time >= 1 and threads >= 1 (got %d, %d, %d)", f.Path, minPasswordMemoryKiB, p.MemoryKiB, p.Time, p.Threads)
	}
	for name, d := range map[string]time.Duration{"tokenTTL": c.TokenTTL, "sessionTTL": c.SessionTTL, "sessionIdleTimeout": c.SessionIdleTimeout,
		"lockout.baseLock": c.Lockout.BaseLock, "lockout.maxLock": c.Lockout.MaxLock, "lockout.window": c.Lockout.Window} {
		if d < 0 {
			return Options{}, fault.New(fault.Invalid, CodeConfigInvalid, "access.%s in %s is negative (%s)", name, f.Path, d)
		}
	}
	if pc := c.PasswordChecks; pc.Concurrency < 0 || pc.Queue < 0 || pc.MaxWait < 0 {
		return Options{}, fault.New(fault.Invalid, CodeConfigInvalid, "access.passwordChecks in %s must not be negative", f.Path)
	}
	if err := checkIPv6Prefix(c.Lockout.IPv6Prefix, " in "+f.Path); err != nil {
		return Options{}, err
	}
	proxy, err := loadProxySettings(c, f.Path)
	if err != nil {
		return Options{}, err
	}
	return Options{TokenTTL: c.TokenTTL, SessionTTL: c.SessionTTL, SessionIdleTimeout: c.SessionIdleTimeout, TOTPIssuer: c.TOTPIssuer,
		Password: c.Password, PasswordChecks: c.PasswordChecks, Lockout: c.Lockout, SecretsKey: c.SecretsKey, SecretsKeyFile: filepath.Join(f.Data, "secrets.key"), Proxy: proxy}, nil
}
