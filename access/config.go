package access

import (
	"path/filepath"
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
//	  totpIssuer: Example Corp sealgate
//	  password: {memoryKiB: 65536, time: 2, threads: 2}
//	  passwordChecks: {concurrency: 2, queue: 8, maxWait: 2s}   # default concurrency: GOMAXPROCS
//	  lockout: {accountFailures: 5, sourceFailures: 20, baseLock: 1m, maxLock: 1h, window: 1h, ipv6Prefix: 64}
//	  secretsKey: {file: /etc/sealgate/secrets.key}   # default <data>/secrets.key, created on first start
type fileOptions struct {
	TokenTTL       time.Duration      `yaml:"tokenTTL"`
	SessionTTL     time.Duration      `yaml:"sessionTTL"`
	TOTPIssuer     string             `yaml:"totpIssuer"`
	Password       PasswordParams     `yaml:"password"`
	PasswordChecks limit.GateSettings `yaml:"passwordChecks"`
	Lockout        LockoutPolicy      `yaml:"lockout"`
	SecretsKey     secret.Ref         `yaml:"secretsKey"`
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
	for name, d := range map[string]time.Duration{"tokenTTL": c.TokenTTL, "sessionTTL": c.SessionTTL,
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
	return Options{TokenTTL: c.TokenTTL, SessionTTL: c.SessionTTL, TOTPIssuer: c.TOTPIssuer, Password: c.Password,
		PasswordChecks: c.PasswordChecks, Lockout: c.Lockout,
		SecretsKey: c.SecretsKey, SecretsKeyFile: filepath.Join(f.Data, "secrets.key")}, nil
}
