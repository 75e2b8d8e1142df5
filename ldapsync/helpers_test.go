package ldapsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/ldapsync/ldaptest"
	"github.com/sealgate/sealgate/secret"
)

// startOrg starts a slapd holding testdata/org.ldif, added through the
// server (so the memberof overlay maintains memberOf).
func startOrg(t testing.TB) *ldaptest.Server {
	t.Helper()
	s := ldaptest.Start(t, ldaptest.Options{})
	ldif, err := os.ReadFile("testdata/org.ldif")
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(t, string(ldif))
	return s
}

// testConfig is an OpenLDAP configuration for s, the service password in a file.
func testConfig(t testing.TB, s *ldaptest.Server) Config {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "bind.pw")
	if err := os.WriteFile(pw, []byte(ldaptest.ServicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		URLs:         []string{s.URL},
		Plaintext:    true,
		BindDN:       ldaptest.ServiceDN,
		BindPassword: secret.Ref{File: pw},
		Users:        UserMapping{BaseDN: "ou=people," + ldaptest.Suffix},
		Groups:       GroupMapping{BaseDN: "ou=groups," + ldaptest.Suffix},
	}
}

// entryUUID reads login's entryUUID with ldapsearch, independently of the
// code under test.
func entryUUID(t testing.TB, s *ldaptest.Server, login string) string {
	t.Helper()
	out, err := exec.Command("ldapsearch", "-x", "-LLL", "-H", s.URL, "-D", ldaptest.AdminDN, "-w", ldaptest.AdminPassword,
		"-b", ldaptest.Suffix, "(uid="+login+")", "entryUUID").CombinedOutput()
	if err != nil {
		t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "entryUUID: "); ok {
			return v
		}
	}
	t.Fatalf("no entryUUID for %s in %q", login, out)
	return ""
}
