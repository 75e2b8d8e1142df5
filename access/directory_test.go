package access

import (
	"context"
	"slices"
	"testing"

	"github.com/sealgate/sealgate/fault"
)

func TestApplyExternalSynchronisesUsersAndMemberships(t *testing.T) {
	ctx := context.Background()
	env := openTestService(t, nil)
	svc := env.svc
	const src = "corp"

	alice := ExternalUser{ExternalID: "guid-a", Login: "alice", DisplayName: "Alice", Mail: "alice@example.test", Groups: []string{"finance"}}
	bob := ExternalUser{ExternalID: "guid-b", Login: "bob", Groups: []string{"finance", "legal"}}
	if err := svc.ApplyExternal(ctx, src, ExternalChanges{Added: []ExternalUser{alice, bob}}, "ldapsync:corp"); err != nil {
		t.Fatal(err)
	}
	got, err := svc.ExternalUsers(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Login != "alice" || !slices.Equal(got[1].Groups, []string{"finance", "legal"}) {
		t.Fatalf("after add: %+v", got)
	}
	g, err := svc.Group(ctx, "legal")
	if err != nil || g.Source != src {
		t.Fatalf("group created by sync: %+v, %v", g, err)
	}

	// Rename (identity is the external id), leave a group, disable, remove.
	alice.Login = "alice.smith"
	err = svc.ApplyExternal(ctx, src, ExternalChanges{
		Changed: []ExternalUser{alice},
		Left:    []Membership{{ExternalID: "guid-b", Group: "legal"}},
		Joined:  []Membership{{ExternalID: "guid-a", Group: "legal"}},
	}, "ldapsync:corp")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = svc.ExternalUsers(ctx, src)
	if got[0].Login != "alice.smith" || !slices.Equal(got[0].Groups, []string{"finance", "legal"}) || !slices.Equal(got[1].Groups, []string{"finance"}) {
		t.Fatalf("after rename and membership changes: %+v", got)
	}

	if err := svc.ApplyExternal(ctx, src, ExternalChanges{Disabled: []string{"guid-a"}, Removed: []string{"guid-b"}}, "ldapsync:corp"); err != nil {
		t.Fatal(err)
	}
	got, _ = svc.ExternalUsers(ctx, src)
	if len(got) != 1 || !got[0].Disabled {
		t.Fatalf("after disable and remove: %+v", got)
	}

	// A failing step changes nothing: the unknown id aborts the whole transaction.
	err = svc.ApplyExternal(ctx, src, ExternalChanges{
		Added:    []ExternalUser{{ExternalID: "guid-c", Login: "carol"}},
		Disabled: []string{"guid-unknown"},
	}, "ldapsync:corp")
	if fault.CodeOf(err) != CodeUserUnknown {
		t.Fatalf("unknown external id: got %v", err)
	}
	if _, err := svc.User(ctx, "carol"); fault.CodeOf(err) != CodeUserUnknown {
		t.Fatalf("carol was added by a failed step: %v", err)
	}

	// Directory users are not editable here except roles and second factor.
	if err := svc.SetPassword(ctx, "alice.smith", "a-long-enough-password", "cli"); fault.CodeOf(err) != CodeUserExternal {
		t.Fatalf("set password of directory user: %v", err)
	}
	if err := svc.SetRoles(ctx, "alice.smith", []string{RoleAuditor}, "cli"); err != nil {
		t.Fatalf("set roles of directory user: %v", err)
	}

	// Every change is in the audit trail, and the trail is intact.
	evs, err := svc.AuditEvents(ctx, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	for _, want := range []string{"user.add", "group.add", "group.member.add", "user.change", "group.member.remove", "user.disable", "user.remove", "user.roles"} {
		if !slices.Contains(types, want) {
			t.Errorf("audit trail lacks %s: %v", want, types)
		}
	}
	rep, err := svc.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("audit: %+v, %v", rep, err)
	}
}
