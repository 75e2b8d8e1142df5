package access

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/secret"
)

func TestLoadOptions(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Options
		err  string // part of the error, "" for none
	}{
		{"no section", "listen: 127.0.0.1:9000\n", Options{}, ""},
		{"all settings", `access:
  tokenTTL: 5m
  sessionTTL: 1h
  totpIssuer: Example sealgate
  password: {memoryKiB: 32768, time: 3, threads: 1}
  passwordChecks: {concurrency: 3, queue: 6, maxWait: 500ms}
  lockout: {accountFailures: 3, baseLock: 30s, ipv6Prefix: 56}
  secretsKey: {env: SEALGATE_SECRETS_KEY}
  sessionIdleTimeout: 15m
  trustedProxies: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32"]
  forwardedHeader: forwarded
  clientCertHeader: x-client-cert
  clientCertVerified: true
`, Options{TokenTTL: 5 * time.Minute, SessionTTL: time.Hour, SessionIdleTimeout: 15 * time.Minute, TOTPIssuer: "Example sealgate",
			Password: PasswordParams{MemoryKiB: 32768, Time: 3, Threads: 1}, PasswordChecks: limit.GateSettings{Concurrency: 3, Queue: 6, MaxWait: 500 * time.Millisecond},
			Lockout:    LockoutPolicy{AccountFailures: 3, BaseLock: 30 * time.Second, IPv6Prefix: 56},
			SecretsKey: secret.Ref{Env: "SEALGATE_SECRETS_KEY"},
			Proxy: ProxySettings{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")},
				ForwardedHeader: HeaderForwarded, ClientCertHeader: "X-Client-Cert", ClientCertVerified: true}}, ""},
		{"bad proxy network", "access:\n  trustedProxies: [10.0.0.0/33]\n", Options{}, `"10.0.0.0/33" is neither a CIDR nor an address`},
		{"unknown forwarding header", "access:\n  forwardedHeader: X-Real-IP\n", Options{}, "must be X-Forwarded-For or Forwarded"},
		{"certificate header without proxies", "access:\n  clientCertHeader: X-Client-Cert\n", Options{}, "needs access.trustedProxies"},
		{"negative idle timeout", "access:\n  sessionIdleTimeout: -1m\n", Options{}, "sessionIdleTimeout"},
		{"weak argon2id", "access:\n  password: {memoryKiB: 1024, time: 1, threads: 1}\n", Options{}, "memoryKiB >= 19456"},
		{"typo", "access:\n  tokenTtl: 5m\n", Options{}, "tokenTtl"},
		{"negative password checks", "access:\n  passwordChecks: {queue: -1}\n", Options{}, "passwordChecks"},
		{"negative duration", "access:\n  sessionTTL: -1h\n", Options{}, "sessionTTL"},
		{"IPv6 prefix too short", "access:\n  lockout: {ipv6Prefix: 32}\n", Options{}, "ipv6Prefix"},
		{"IPv6 prefix too long", "access:\n  lockout: {ipv6Prefix: 129}\n", Options{}, "between 48 and 128 (got 129)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sealgate.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := config.Load(path, "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := LoadOptions(f)
			if tt.err != "" {
				if fault.CodeOf(err) != CodeConfigInvalid || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want %s naming %q", err, CodeConfigInvalid, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.Proxy.ForwardedHeader == "" {
				tt.want.Proxy.ForwardedHeader = HeaderXForwardedFor
			}
			if got.TokenTTL != tt.want.TokenTTL || got.SessionTTL != tt.want.SessionTTL || got.SessionIdleTimeout != tt.want.SessionIdleTimeout ||
				got.TOTPIssuer != tt.want.TOTPIssuer || got.Password != tt.want.Password || got.PasswordChecks != tt.want.PasswordChecks || got.Lockout != tt.want.Lockout ||
				got.SecretsKey != tt.want.SecretsKey || !reflect.DeepEqual(got.Proxy, tt.want.Proxy) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if want := filepath.Join(f.Data, "secrets.key"); got.SecretsKeyFile != want {
				t.Fatalf("secrets key file %q, want %q", got.SecretsKeyFile, want)
			}
		})
	}
}
