package ldapsync

import (
	"context"
	"testing"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// TestDirectoryUsersInAccess runs the whole path: access logs directory
// users in through the Authenticator, a rule grants a seal to the
// directory group sealers (bob is in it through finance), and moving bob
// out of finance in the directory takes the right away at the next sync,
// also from a principal that logged in before. A user deleted in the
// directory can no longer log in, and the next sync deprovisions it.
func TestDirectoryUsersInAccess(t *testing.T) {
	s := startOrg(t)
	cfg := testConfig(t, s)
	auth, err := NewAuthenticator(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := newSyncEnvWith(t, cfg, access.Options{Directories: map[string]access.PasswordVerifier{"ldap": auth}})
	ctx := context.Background()
	env.run(t, SyncOptions{})
	if _, err := env.access.AddRule(ctx, access.Rule{Name: "sealers-seal", Subject: access.Subject{Kind: access.SubjectGroup, Name: "sealers"},
		Seals: []string{"company"}}, "test"); err != nil {
		t.Fatal(err)
	}
	seal := access.Action{Operation: access.OpSeal, Seal: "company", Format: "pades", Level: "B-B", Documents: 1}
	login := func(user, password string) (access.Principal, error) {
		return env.access.AuthenticateUser(ctx, access.UserCredentials{Login: user, Password: password})
	}

	bob, err := login("bob", "bob-pw")
	if err != nil {
		t.Fatalf("bob logs in with his directory password: %v", err)
	}
	if d, err := env.access.Decide(ctx, bob, seal); err != nil || !d.Allowed {
		t.Fatalf("bob (finance ⊂ sealers) may seal: %+v %v", d, err)
	}
	if _, err := login("bob", "ann-pw"); fault.CodeOf(err) == "" || fault.As(err).Kind != fault.Unauthenticated {
		t.Fatalf("bob with ann's password: %v, want unauthenticated", err)
	}

	s.Apply(t, "dn: cn=finance,ou=groups,"+ldaptest.Suffix+"\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,"+ldaptest.Suffix+"\n")
	env.run(t, SyncOptions{})
	if d, err := env.access.Decide(ctx, bob, seal); err == nil && d.Allowed {
		t.Fatalf("bob left finance in the directory but may still seal: %+v", d)
	}

	if _, err := login("jon", "jon-pw"); err != nil {
		t.Fatalf("jon logs in: %v", err)
	}
	s.Apply(t, "dn: uid=jon,ou=people,"+ldaptest.Suffix+"\nchangetype: delete\n")
	// The directory refuses at once, before any sync.
	if _, err := login("jon", "jon-pw"); fault.As(err) == nil || fault.As(err).Kind != fault.Unauthenticated {
		t.Fatalf("jon was deleted in the directory, login: %v", err)
	}
	env.run(t, SyncOptions{})
	if _, err := env.access.User(ctx, "jon"); fault.CodeOf(err) != access.CodeUserUnknown {
		t.Fatalf("jon after the sync: %v, want %s", err, access.CodeUserUnknown)
	}
}
