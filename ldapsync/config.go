// Package ldapsync keeps sealgate's users and groups in step with the
// company directory (OpenLDAP or Active Directory) and checks directory
// passwords at login.
//
// The directory is the source of who works at the company: a sync reads users
// and groups with paged searches, computes the difference to what the access
// package knows under this source, and hands it to access in one transaction.
// Users who left or were disabled are deprovisioned there. A guard refuses
// runs that would remove an implausible share of users, so a wrong base DN or
// a half-empty directory never wipes sealgate's users.
package ldapsync

import (
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
)

// Error codes.
const (
	// CodeConfigInvalid: the ldap section of sealgate.yaml is wrong.
	CodeConfigInvalid fault.Code = "ldap_config_invalid"
	// CodeDirectoryUnavailable: no configured directory server answered.
	CodeDirectoryUnavailable fault.Code = "directory_unavailable"
	// CodeDirectoryError: the directory answered, but not as expected
	// (bad filter, missing rights, malformed entry).
	CodeDirectoryError fault.Code = "directory_error"
	// CodeGuardTripped: a sync would remove or disable too many users, or
	// the directory returned none; nothing was applied.
	CodeGuardTripped fault.Code = "ldap_sync_guard_tripped"
	// CodeSyncBusy: another sync of this source is running.
	CodeSyncBusy fault.Code = "ldap_sync_busy"
	// CodeUnauthenticated: directory login refused. One code and one
	// message for unknown users, wrong and empty passwords and disabled
	// accounts, so a caller cannot probe which logins exist.
	CodeUnauthenticated fault.Code = "unauthenticated"
)

// Flavors of directory; each fills different defaults.
const (
	FlavorOpenLDAP = "openldap"
	FlavorAD       = "ad"
)

// Membership attributes: where a group's members are listed.
const (
	MembershipMember       = "member"       // group lists member DNs (groupOfNames, AD)
	MembershipUniqueMember = "uniqueMember" // group lists member DNs with optional #uid (groupOfUniqueNames)
	MembershipMemberUID    = "memberUid"    // group lists member logins (posixGroup)
	MembershipMemberOf     = "memberOf"     // user lists its groups' DNs
)

// Nesting strategies for groups inside groups.
const (
	NestedNone    = "none"    // direct membership only
	NestedResolve = "resolve" // sealgate follows group-in-group links itself
	NestedInChain = "inChain" // AD resolves with LDAP_MATCHING_RULE_IN_CHAIN
)

// ID formats of the unique-id attribute.
const (
	IDString = "string" // the value as is (entryUUID)
	IDGUID   = "guid"   // 16 binary bytes in Microsoft GUID layout (objectGUID)
)

// Config is the "ldap" section of sealgate.yaml. For example:
//
//	ldap:
//	  flavor: ad
//	  urls: [ldaps://dc1.corp.example, ldaps://dc2.corp.example]
//	  caFile: /etc/sealgate/corp-ca.pem
//	  bindDN: CN=sealgate,OU=Service Accounts,DC=corp,DC=example
//	  bindPassword: {env: SEALGATE_LDAP_PASSWORD}
//	  users: {baseDN: "OU=Staff,DC=corp,DC=example"}
//	  groups:
//	    baseDN: "OU=Groups,DC=corp,DC=example"
//	    map: {"CN=Seal Officers,OU=Groups,DC=corp,DC=example": seal-officers}
//	    onlyMapped: true
//	  interval: 15m
type Config struct {
	// Source names this directory in access (users are keyed by source
	// and external id). Default "ldap".
	Source string `yaml:"source"`
	// Flavor fills mapping defaults: openldap (default) or ad.
	Flavor string `yaml:"flavor"`
	// URLs are tried in order until one answers (failover):
	// ldap://host[:port] (StartTLS) or ldaps://host[:port].
	URLs []string `yaml:"urls"`
	// CAFile holds PEM certificates trusted for the directory's TLS
	// certificate; empty means the system roots.
	CAFile string `yaml:"caFile"`
	// Plaintext allows ldap:// without StartTLS. Passwords then cross the
	// network in clear: only for a directory on loopback.
	Plaintext bool `yaml:"plaintext"`
	// BindDN is the service account used to search.
	BindDN string `yaml:"bindDN"`
	// BindPassword is the service account's password.
	BindPassword secret.Ref `yaml:"bindPassword"`
	// DialTimeout bounds connecting (TCP and TLS) to one URL. Default 5s.
	DialTimeout time.Duration `yaml:"dialTimeout"`
	// RequestTimeout bounds each LDAP request (one page, one bind). Default 30s.
	RequestTimeout time.Duration `yaml:"requestTimeout"`
	// PageSize is the RFC 2696 page size: entries per round trip, and at
	// most that many raw entries held at once. Default 1000, Active
	// Directory's MaxPageSize.
	PageSize int `yaml:"pageSize"`
	// Users says where users are and how their attributes map.
	Users UserMapping `yaml:"users"`
	// Groups says where groups are and how they map to sealgate groups.
	Groups GroupMapping `yaml:"groups"`
	// MaxRemovalPercent is the share of known directory users a single
	// sync may remove or disable; above it the sync stops. Default 20.
	MaxRemovalPercent float64 `yaml:"maxRemovalPercent"`
	// Interval is how often serve runs an incremental sync; 0 disables
	// the schedule.
	Interval time.Duration `yaml:"interval"`
	// FullEvery makes every n-th scheduled run a full sync. Default 24.
	FullEvery int `yaml:"fullEvery"`
}

// UserMapping locates users and maps their attributes.
type UserMapping struct {
	// BaseDN is searched with subtree scope.
	BaseDN string `yaml:"baseDN"`
	// Filter selects user entries.
	Filter string `yaml:"filter"`
	// Login is the attribute users log in with (uid, sAMAccountName).
	Login string `yaml:"login"`
	// DisplayName and Mail fill the user's name and address.
	DisplayName string `yaml:"displayName"`
	Mail        string `yaml:"mail"`
	// ID is the immutable unique id that survives renames and moves
	// (entryUUID, objectGUID); IDFormat says how to read it.
	ID       string `yaml:"id"`
	IDFormat string `yaml:"idFormat"`
	// Disabled says when a user counts as disabled.
	Disabled DisabledRule `yaml:"disabled"`
	// Changed is the attribute incremental syncs compare with the stored
	// high-water mark: modifyTimestamp (OpenLDAP) or uSNChanged (AD).
	Changed string `yaml:"changed"`
}

// DisabledRule decides whether a user entry is disabled.
// With Bit set, Attribute is an integer and the user is disabled when that
// bit is set (AD userAccountControl, bit 2 = ACCOUNTDISABLE). Otherwise, with
// Value set, the user is disabled when Attribute has that value
// (case-insensitive); with neither, when Attribute is present at all
// (pwdAccountLockedTime).
type DisabledRule struct {
	Attribute string `yaml:"attribute"`
	Value     string `yaml:"value"`
	Bit       int64  `yaml:"bit"`
}

// GroupMapping locates groups and maps them to sealgate groups.
type GroupMapping struct {
	// BaseDN is searched with subtree scope.
	BaseDN string `yaml:"baseDN"`
	// Filter selects group entries.
	Filter string `yaml:"filter"`
	// Name is the attribute that names a group (cn).
	Name string `yaml:"name"`
	// Membership says where membership is recorded: member, uniqueMember,
	// memberUid (on the group) or memberOf (on the user).
	Membership string `yaml:"membership"`
	// Nested: none, resolve (sealgate follows groups inside groups) or
	// inChain (AD evaluates nesting). Default resolve for openldap,
	// inChain for ad.
	Nested string `yaml:"nested"`
	// Map renames directory groups, by DN or by name, to sealgate groups.
	Map map[string]string `yaml:"map"`
	// OnlyMapped syncs only groups listed in Map; otherwise unmapped
	// groups keep their directory name.
	OnlyMapped bool `yaml:"onlyMapped"`
	// Changed: see UserMapping.Changed.
	Changed string `yaml:"changed"`
}

// preset returns the defaults of a flavor.
func preset(flavor string) Config {
	if flavor == FlavorAD {
		return Config{
			Users: UserMapping{
				Filter:      "(&(objectCategory=person)(objectClass=user))",
				Login:       "sAMAccountName",
				DisplayName: "displayName",
				Mail:        "mail",
				ID:          "objectGUID",
				IDFormat:    IDGUID,
				Disabled:    DisabledRule{Attribute: "userAccountControl", Bit: 2},
				Changed:     "uSNChanged",
			},
			Groups: GroupMapping{
				Filter:     "(objectClass=group)",
				Name:       "cn",
				Membership: MembershipMember,
				Nested:     NestedInChain,
				Changed:    "uSNChanged",
			},
		}
	}
	return Config{
		Users: UserMapping{
			Filter:      "(objectClass=inetOrgPerson)",
			Login:       "uid",
			DisplayName: "cn",
			Mail:        "mail",
			ID:          "entryUUID",
			IDFormat:    IDString,
			Disabled:    DisabledRule{Attribute: "pwdAccountLockedTime"},
			Changed:     "modifyTimestamp",
		},
		Groups: GroupMapping{
			Filter:     "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
			Name:       "cn",
			Membership: MembershipMember,
			Nested:     NestedResolve,
			Changed:    "modifyTimestamp",
		},
	}
}

// WithDefaults returns c with the flavor's defaults filled in where c
// leaves a setting empty, and validates the result. Errors name the setting.
func (c Config) WithDefaults() (Config, error) {
	if c.Flavor == "" {
		c.Flavor = FlavorOpenLDAP
	}
	if c.Flavor != FlavorOpenLDAP && c.Flavor != FlavorAD {
		return c, invalid("ldap.flavor %q: want openldap or ad", c.Flavor)
	}
	p := preset(c.Flavor)
	fill := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	fill(&c.Source, "ldap")
	fill(&c.Users.Filter, p.Users.Filter)
	fill(&c.Users.Login, p.Users.Login)
	fill(&c.Users.DisplayName, p.Users.DisplayName)
	fill(&c.Users.Mail, p.Users.Mail)
	fill(&c.Users.ID, p.Users.ID)
	fill(&c.Users.IDFormat, p.Users.IDFormat)
	fill(&c.Users.Changed, p.Users.Changed)
	if c.Users.Disabled == (DisabledRule{}) {
		c.Users.Disabled = p.Users.Disabled
	}
	fill(&c.Groups.Filter, p.Groups.Filter)
	fill(&c.Groups.Name, p.Groups.Name)
	fill(&c.Groups.Membership, p.Groups.Membership)
	fill(&c.Groups.Nested, p.Groups.Nested)
	fill(&c.Groups.Changed, p.Groups.Changed)
	if c.Groups.Membership == MembershipMemberUID && c.Groups.Nested == NestedResolve {
		// memberUid lists logins, which cannot name a group.
		c.Groups.Nested = NestedNone
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.PageSize == 0 {
		c.PageSize = 1000
	}
	if c.MaxRemovalPercent == 0 {
		c.MaxRemovalPercent = 20
	}
	if c.FullEvery == 0 {
		c.FullEvery = 24
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if len(c.URLs) == 0 {
		return invalid("ldap.urls: at least one ldap:// or ldaps:// URL is required")
	}
	for _, u := range c.URLs {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || (pu.Scheme != "ldap" && pu.Scheme != "ldaps") {
			return invalid("ldap.urls: %q is not an ldap:// or ldaps:// URL", u)
		}
	}
	if c.Users.BaseDN == "" {
		return invalid("ldap.users.baseDN is required")
	}
	if c.Groups.BaseDN == "" {
		return invalid("ldap.groups.baseDN is required")
	}
	switch c.Users.IDFormat {
	case IDString, IDGUID:
	default:
		return invalid("ldap.users.idFormat %q: want string or guid", c.Users.IDFormat)
	}
	switch c.Groups.Membership {
	case MembershipMember, MembershipUniqueMember, MembershipMemberUID, MembershipMemberOf:
	default:
		return invalid("ldap.groups.membership %q: want member, uniqueMember, memberUid or memberOf", c.Groups.Membership)
	}
	switch c.Groups.Nested {
	case NestedNone, NestedResolve, NestedInChain:
	default:
		return invalid("ldap.groups.nested %q: want none, resolve or inChain", c.Groups.Nested)
	}
	if c.PageSize < 1 {
		return invalid("ldap.pageSize %d: must be positive", c.PageSize)
	}
	if c.MaxRemovalPercent < 0 || c.MaxRemovalPercent > 100 {
		return invalid("ldap.maxRemovalPercent %v: must be between 0 and 100", c.MaxRemovalPercent)
	}
	if c.Users.Disabled.Bit < 0 {
		return invalid("ldap.users.disabled.bit %d: must not be negative", c.Users.Disabled.Bit)
	}
	if c.BindDN != "" && c.BindPassword.IsZero() {
		return invalid("ldap.bindPassword: bindDN %q needs a password source (env or file)", c.BindDN)
	}
	for _, a := range []struct{ name, v string }{
		{"users.filter", c.Users.Filter}, {"groups.filter", c.Groups.Filter},
	} {
		if !strings.HasPrefix(a.v, "(") || !strings.HasSuffix(a.v, ")") {
			return invalid("ldap.%s %q: an LDAP filter is enclosed in parentheses", a.name, a.v)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fault.New(fault.Invalid, CodeConfigInvalid, format, args...)
}

// LoadConfig reads the "ldap" section of sealgate.yaml. It reports whether
// the section is present; without it sealgate has no directory.
func LoadConfig(f *config.File) (Config, bool, error) {
	var c Config
	// A password written straight into the file would be echoed by the
	// YAML decoder's type error; refuse it without repeating it.
	var raw map[string]yaml.Node
	if _, err := f.Section("ldap", &raw); err == nil {
		if n, ok := raw["bindPassword"]; ok && n.Kind != yaml.MappingNode {
			return c, true, fault.New(fault.Invalid, CodeConfigInvalid,
				"ldap.bindPassword in %s must be {env: NAME} or {file: /path}; the password itself never goes into the configuration", f.Path)
		}
	}
	ok, err := f.Section("ldap", &c)
	if err != nil {
		return c, ok, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "the ldap section of %s is invalid", f.Path)
	}
	return c, ok, nil
}
