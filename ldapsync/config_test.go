package ldapsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
)

// loadYAML writes body as sealgate.yaml and loads its ldap section with defaults.
func loadYAML(t *testing.T, body string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sealgate.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	c, ok, err := LoadConfig(f)
	if err != nil {
		return c, err
	}
	if !ok {
		t.Fatal("ldap section not found")
	}
	return c.WithDefaults()
}

// TestConfigFlavors: the flavor fills the mapping an administrator would
// otherwise have to spell out, and explicit settings win over the preset.
func TestConfigFlavors(t *testing.T) {
	ad, err := loadYAML(t, `ldap:
  flavor: ad
  urls: [ldaps://dc1.corp.test, ldaps://dc2.corp.test]
  bindDN: CN=sealgate,OU=Services,DC=corp,DC=test
  bindPassword: {env: SEALGATE_LDAP_PASSWORD}
  requestTimeout: 10s
  users: {baseDN: "OU=Staff,DC=corp,DC=test"}
  groups: {baseDN: "OU=Groups,DC=corp,DC=test", onlyMapped: true, map: {"CN=Sealers,OU=Groups,DC=corp,DC=test": sealers}}
`)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Users.Login != "sAMAccountName" || ad.Users.ID != "objectGUID" || ad.Users.IDFormat != IDGUID ||
		ad.Users.Disabled != (DisabledRule{Attribute: "userAccountControl", Bit: 2}) || ad.Users.Changed != "uSNChanged" ||
		ad.Groups.Nested != NestedInChain || ad.Groups.Membership != MembershipMember {
		t.Fatalf("ad preset not applied: %+v", ad)
	}
	if ad.RequestTimeout != 10*time.Second || ad.DialTimeout != 5*time.Second || ad.PageSize != 1000 || ad.MaxRemovalPercent != 20 ||
		ad.BindPassword != (secret.Ref{Env: "SEALGATE_LDAP_PASSWORD"}) || len(ad.URLs) != 2 || !ad.Groups.OnlyMapped {
		t.Fatalf("explicit settings or defaults wrong: %+v", ad)
	}

	ol, err := loadYAML(t, `ldap:
  urls: [ldap://ldap.corp.test]
  users: {baseDN: "ou=people,dc=corp,dc=test", login: mail, disabled: {attribute: employeeType, value: inactive}}
  groups: {baseDN: "ou=groups,dc=corp,dc=test", membership: memberUid}
`)
	if err != nil {
		t.Fatal(err)
	}
	if ol.Flavor != FlavorOpenLDAP || ol.Users.Login != "mail" || ol.Users.ID != "entryUUID" || ol.Users.Changed != "modifyTimestamp" ||
		ol.Users.Disabled != (DisabledRule{Attribute: "employeeType", Value: "inactive"}) || ol.Groups.Nested != NestedNone || ol.Source != "ldap" {
		t.Fatalf("openldap preset with overrides: %+v", ol)
	}
}

// TestConfigRejects: each mistake is refused with ldap_config_invalid and a
// message naming the setting, without repeating a secret.
func TestConfigRejects(t *testing.T) {
	// section builds an ldap section from its top-level lines, users and groups.
	section := func(top, users, groups string) string {
		return "ldap:\n" + top + "  users: {baseDN: \"ou=people,dc=corp,dc=test\"" + users + "}\n" +
			"  groups: {baseDN: \"ou=groups,dc=corp,dc=test\"" + groups + "}\n"
	}
	const url = "  urls: [ldap://ldap.corp.test]\n"
	tests := []struct {
		name, yaml, mention string
	}{
		{"no URL", section("", "", ""), "ldap.urls"},
		{"http URL", section("  urls: [http://ldap.corp.test]\n", "", ""), "http://ldap.corp.test"},
		{"unknown flavor", section(url+"  flavor: novell\n", "", ""), "novell"},
		{"no user base", "ldap:\n" + url, "ldap.users.baseDN"},
		{"unknown id format", section(url, ", idFormat: hex", ""), "hex"},
		{"unknown membership", section(url, "", ", membership: owner"), "owner"},
		{"unknown nesting", section(url, "", ", nested: deep"), "deep"},
		{"removal share above 100", section(url+"  maxRemovalPercent: 150\n", "", ""), "ldap.maxRemovalPercent"},
		{"bind DN without password", section(url+"  bindDN: cn=sealgate,dc=corp,dc=test\n", "", ""), "ldap.bindPassword"},
		{"password in the file", section(url+"  bindDN: cn=sealgate,dc=corp,dc=test\n  bindPassword: hunter2\n", "", ""), "ldap.bindPassword"},
		{"filter without parentheses", section(url, "", ", filter: objectClass=group"), "ldap.groups.filter"},
		{"misspelt setting", section(url+"  pagesize: 10\n", "", ""), "pagesize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.yaml)
			if fault.CodeOf(err) != CodeConfigInvalid || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %v, want %s mentioning %q", err, CodeConfigInvalid, tc.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error repeats a secret: %v", err)
			}
		})
	}
}
