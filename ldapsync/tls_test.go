package ldapsync

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// TestTLS: with plaintext off, ldap:// URLs are upgraded with StartTLS and
// ldaps:// URLs speak TLS from the start; both verify the server against
// ldap.caFile, and a server the CA did not vouch for is not used.
func TestTLS(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{TLS: true})
	ldif, err := os.ReadFile("testdata/org.ldif")
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(t, string(ldif))
	otherCA := ldaptest.Start(t, ldaptest.Options{TLS: true}).CAFile
	unreadable := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name, url, caFile string
		code              fault.Code
	}{
		{"StartTLS", s.URL, s.CAFile, ""},
		{"ldaps", s.LDAPSURL, s.CAFile, ""},
		{"StartTLS, certificate from another CA", s.URL, otherCA, CodeDirectoryUnavailable},
		{"ldaps, certificate from another CA", s.LDAPSURL, otherCA, CodeDirectoryUnavailable},
		{"ldaps, system roots only", s.LDAPSURL, "", CodeDirectoryUnavailable},
		{"CA file missing", s.LDAPSURL, unreadable, CodeConfigInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, s)
			cfg.Plaintext = false
			cfg.URLs = []string{tc.url}
			cfg.CAFile = tc.caFile
			a, err := NewAuthenticator(cfg, nil)
			if err == nil {
				_, err = a.Authenticate(context.Background(), "ann", "ann-pw")
			}
			if got := fault.CodeOf(err); got != tc.code {
				t.Fatalf("login over %s: %v, want code %q", tc.url, err, tc.code)
			}
		})
	}
}
