package ldapsync

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// TestActiveDirectoryFlavor runs the ad preset against slapd with the AD
// attributes of testdata/ad.schema: binary objectGUID as identity,
// sAMAccountName as login, userAccountControl bit 2 as disabled, and
// uSNChanged (an integer, compared as one) as the incremental mark. slapd
// has no in-chain matching rule, so nesting is resolved by sealgate here.
func TestActiveDirectoryFlavor(t *testing.T) {
	const people, groups = "ou=people," + ldaptest.Suffix, "ou=groups," + ldaptest.Suffix
	guid := func(n byte) []byte {
		return []byte{n, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	}
	user := func(login string, n byte, uac, usn int) string {
		return fmt.Sprintf("dn: cn=%s,%s\nobjectClass: user\ncn: %s\nsn: %s\nsAMAccountName: %s\ndisplayName: %s Example\n"+
			"userPassword: %s-pw\nobjectCategory: person\nobjectGUID:: %s\nuserAccountControl: %d\nuSNChanged: %d\n\n",
			login, people, login, login, login, strings.ToUpper(login[:1])+login[1:], login, base64.StdEncoding.EncodeToString(guid(n)), uac, usn)
	}
	// 512 is NORMAL_ACCOUNT; 514 adds ACCOUNTDISABLE.
	ldif := user("alice", 1, 512, 6) + user("bob", 2, 514, 7) + user("carol", 3, 512, 8) + user("dave", 4, 66048, 9) +
		"dn: cn=leads," + groups + "\nobjectClass: group\ncn: leads\nuSNChanged: 10\nmember: cn=carol," + people + "\n\n" +
		"dn: cn=sealers," + groups + "\nobjectClass: group\ncn: sealers\nuSNChanged: 11\nmember: cn=alice," + people + "\nmember: cn=leads," + groups + "\n"
	s := ldaptest.Start(t, ldaptest.Options{Schemas: []string{"testdata/ad.schema"}})
	s.Apply(t, ldif)

	cfg := testConfig(t, s)
	cfg.Flavor = FlavorAD
	cfg.Groups.Nested = NestedResolve
	cfg.MaxRemovalPercent = 50 // one of three users is disabled below
	env := newSyncEnv(t, cfg)
	id := func(n byte) string { v, _ := guidString(guid(n)); return v }
	want := map[string]state{
		"alice": {id(1), "sealers", false},
		"carol": {id(3), "leads,sealers", false},
		"dave":  {id(4), "", false}, // 66048 = NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD: enabled
	}
	if rep := env.run(t, SyncOptions{}); !rep.Full || rep.Added != 3 {
		t.Fatalf("first sync: full %v added %d, want 3 (bob is disabled)", rep.Full, rep.Added)
	}
	if got := env.known(t); !maps.Equal(got, want) {
		t.Fatalf("after the first sync:\n got %v\nwant %v", got, want)
	}
	if id(1) != "12345601-1234-5678-1234-56789abcdef0" {
		t.Fatalf("GUID text form %s", id(1))
	}
	// USNs are numbers: 11 is the highest, although "9" sorts last as text.
	if mark, err := env.syncer.mark(context.Background()); err != nil || mark.value != "11" {
		t.Fatalf("change mark %q (%v), want 11", mark, err)
	}

	s.Apply(t, "dn: cn=alice,"+people+"\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n"+
		"-\nreplace: uSNChanged\nuSNChanged: 12\n")
	rep := env.run(t, SyncOptions{})
	a := want["alice"]
	a.disabled = true
	want["alice"] = a
	if rep.Full || rep.Disabled != 1 {
		t.Fatalf("incremental sync: full %v disabled %d, want alice disabled incrementally", rep.Full, rep.Disabled)
	}
	if got := env.known(t); !maps.Equal(got, want) {
		t.Fatalf("after disabling alice:\n got %v\nwant %v", got, want)
	}

	auth, err := NewAuthenticator(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := auth.Authenticate(ctx, "CAROL", "carol-pw"); err != nil || got != id(3) {
		t.Fatalf("carol logs in by sAMAccountName: %q %v, want %s", got, err, id(3))
	}
	for _, login := range []string{"alice", "bob"} {
		if _, err := auth.Authenticate(ctx, login, login+"-pw"); fault.CodeOf(err) != CodeUnauthenticated {
			t.Fatalf("%s is disabled by userAccountControl: %v", login, err)
		}
	}
}

// TestInChainNeedsActiveDirectory: a server that does not know the
// in-chain matching rule answers its filter with no entries. The sync
// notices that users are missing from groups that list them directly and
// fails instead of stripping every membership.
func TestInChainNeedsActiveDirectory(t *testing.T) {
	s := startOrg(t)
	cfg := testConfig(t, s)
	env := newSyncEnv(t, cfg)
	env.run(t, SyncOptions{})
	before := env.known(t)

	cfg.Groups.Nested = NestedInChain
	inChain, err := NewSyncer(context.Background(), cfg, env.db, env.access, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = inChain.Run(context.Background(), SyncOptions{Full: true})
	if fault.CodeOf(err) != CodeDirectoryError || !strings.Contains(err.Error(), "nested to resolve") {
		t.Fatalf("in-chain against slapd: %v, want %s suggesting nested: resolve", err, CodeDirectoryError)
	}
	if got := env.known(t); !maps.Equal(got, before) {
		t.Fatalf("users changed:\n got %v\nwant %v", got, before)
	}
}
