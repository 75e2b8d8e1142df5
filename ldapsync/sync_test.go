package ldapsync

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// groupsByLogin returns the groups a dry run would give each added user.
func groupsByLogin(rep *Report) map[string]string {
	m := map[string]string{}
	for _, u := range rep.Diff.Added {
		m[u.Login] = strings.Join(u.Groups, ",")
	}
	return m
}

// TestSyncGroupMappings specifies how directory groups become sealgate
// groups, for each way a directory records membership (testdata/org.ldif:
// sealers ⊃ finance ⊃ accounting, loop-a ⇄ loop-b, auditors by
// uniqueMember, unix by memberUid; eve is disabled).
func TestSyncGroupMappings(t *testing.T) {
	s := startOrg(t)
	all := map[string]string{
		"ann": "sealers,staff",
		"bob": "finance,sealers,staff",
		"cy":  "accounting,finance,sealers,staff",
		"dan": "accounting,finance,sealers,staff",
		"fay": "loop-a,loop-b,staff",
		"gil": "loop-a,loop-b,staff",
		"hal": "staff", "ivy": "staff", "jon": "staff",
	}
	tests := []struct {
		name   string
		groups GroupMapping
		want   map[string]string
	}{
		{"member, nested groups resolved", GroupMapping{}, all},
		{"memberOf on the user, nesting through the groups' memberOf", GroupMapping{Membership: MembershipMemberOf}, all},
		{"direct membership only", GroupMapping{Nested: NestedNone}, map[string]string{
			"ann": "sealers,staff", "bob": "finance,staff", "cy": "accounting,staff", "dan": "accounting,staff",
			"fay": "loop-a,staff", "gil": "loop-b,staff", "hal": "staff", "ivy": "staff", "jon": "staff",
		}},
		{"uniqueMember with optional uid suffix", GroupMapping{Membership: MembershipUniqueMember, Filter: "(objectClass=groupOfUniqueNames)"}, map[string]string{
			"ann": "auditors", "bob": "auditors", "cy": "", "dan": "", "fay": "", "gil": "", "hal": "", "ivy": "", "jon": "",
		}},
		{"memberUid of posix groups", GroupMapping{Membership: MembershipMemberUID, Filter: "(objectClass=posixGroup)"}, map[string]string{
			"ann": "", "bob": "", "cy": "unix", "dan": "unix", "fay": "", "gil": "", "hal": "", "ivy": "", "jon": "",
		}},
		{"mapped by DN and by name, only mapped groups", GroupMapping{
			Map: map[string]string{
				"CN=Sealers, ou=groups,dc=example,dc=test": "seal-users",
				"Finance": "fin",
			},
			OnlyMapped: true,
		}, map[string]string{
			"ann": "seal-users", "bob": "fin,seal-users", "cy": "fin,seal-users", "dan": "fin,seal-users",
			"fay": "", "gil": "", "hal": "", "ivy": "", "jon": "",
		}},
		{"mapped names next to unmapped ones", GroupMapping{Map: map[string]string{"staff": "employees"}}, map[string]string{
			"ann": "employees,sealers", "bob": "employees,finance,sealers", "cy": "accounting,employees,finance,sealers",
			"dan": "accounting,employees,finance,sealers", "fay": "employees,loop-a,loop-b", "gil": "employees,loop-a,loop-b",
			"hal": "employees", "ivy": "employees", "jon": "employees",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, s)
			tc.groups.BaseDN = cfg.Groups.BaseDN
			cfg.Groups = tc.groups
			env := newSyncEnv(t, cfg)
			rep := env.run(t, SyncOptions{DryRun: true})
			if rep.Outcome != OutcomeDryRun || !rep.Full || rep.Seen != 10 {
				t.Fatalf("outcome %s full %v seen %d, want dry_run, full, 10 users", rep.Outcome, rep.Full, rep.Seen)
			}
			if got := groupsByLogin(rep); !maps.Equal(got, tc.want) {
				t.Fatalf("groups by login:\n got %v\nwant %v", got, tc.want)
			}
			if len(env.known(t)) != 0 {
				t.Fatal("a dry run changed sealgate's users")
			}
		})
	}
}

// TestSyncFollowsTheDirectory applies a series of directory changes, each
// followed by an incremental sync, and checks sealgate's users after each.
// A final full sync must find nothing left to do.
func TestSyncFollowsTheDirectory(t *testing.T) {
	s := startOrg(t)
	env := newSyncEnv(t, testConfig(t, s))
	ids := map[string]string{}
	for _, u := range []string{"ann", "bob", "cy", "dan", "fay", "gil", "hal", "ivy", "jon"} {
		ids[u] = entryUUID(t, s, u)
	}
	want := map[string]state{
		"ann": {ids["ann"], "sealers,staff", false},
		"bob": {ids["bob"], "finance,sealers,staff", false},
		"cy":  {ids["cy"], "accounting,finance,sealers,staff", false},
		"dan": {ids["dan"], "accounting,finance,sealers,staff", false},
		"fay": {ids["fay"], "loop-a,loop-b,staff", false},
		"gil": {ids["gil"], "loop-a,loop-b,staff", false},
		"hal": {ids["hal"], "staff", false},
		"ivy": {ids["ivy"], "staff", false},
		"jon": {ids["jon"], "staff", false},
	}
	rep := env.run(t, SyncOptions{})
	if !rep.Full || rep.Outcome != OutcomeApplied || rep.Added != 9 {
		t.Fatalf("first sync: full %v outcome %s added %d, want a full sync adding 9 (eve is disabled)", rep.Full, rep.Outcome, rep.Added)
	}
	if got := env.known(t); !maps.Equal(got, want) {
		t.Fatalf("after the first sync:\n got %v\nwant %v", got, want)
	}
	const people, groups = "ou=people," + ldaptest.Suffix, "ou=groups," + ldaptest.Suffix
	steps := []struct {
		name   string
		ldif   string
		change func(map[string]state)
		// gone is a DN whose references the refint overlay rewrites
		// in the background; the step waits for it, as a later sync would.
		gone string
	}{
		{"a renamed user keeps its identity and groups", `dn: uid=ann,` + people + `
changetype: modrdn
newrdn: uid=anna
deleteoldrdn: 1
`, func(m map[string]state) { m["anna"] = m["ann"]; delete(m, "ann") }, "uid=ann," + people},
		{"leaving a group removes that membership, and the nested ones", `dn: cn=finance,` + groups + `
changetype: modify
delete: member
member: uid=bob,` + people + `
`, func(m map[string]state) { m["bob"] = state{ids["bob"], "staff", false} }, ""},
		{"a user disabled in the directory is disabled", `dn: uid=cy,` + people + `
changetype: modify
add: pwdAccountLockedTime
pwdAccountLockedTime: 000001010000Z
`, func(m map[string]state) { c := m["cy"]; c.disabled = true; m["cy"] = c }, ""},
		{"a user deleted in the directory is removed", `dn: uid=dan,` + people + `
changetype: delete
`, func(m map[string]state) { delete(m, "dan") }, "uid=dan," + people},
		{"a new user joins with nested groups", `dn: uid=kim,` + people + `
objectClass: inetOrgPerson
uid: kim
cn: Kim King
sn: King

dn: cn=accounting,` + groups + `
changetype: modify
add: member
member: uid=kim,` + people + `
`, func(m map[string]state) {
			m["kim"] = state{entryUUID(t, s, "kim"), "accounting,finance,sealers", false}
		}, ""},
		{"a disabled user enabled again is enabled", `dn: uid=cy,` + people + `
changetype: modify
delete: pwdAccountLockedTime
`, func(m map[string]state) { c := m["cy"]; c.disabled = false; m["cy"] = c }, ""},
	}
	for _, step := range steps {
		s.Apply(t, step.ldif)
		if step.gone != "" {
			s.WaitRefint(t, step.gone)
		}
		step.change(want)
		rep := env.run(t, SyncOptions{})
		if rep.Full || rep.Outcome != OutcomeApplied {
			t.Fatalf("%s: full %v outcome %s, want an applied incremental sync", step.name, rep.Full, rep.Outcome)
		}
		if got := env.known(t); !maps.Equal(got, want) {
			t.Fatalf("%s:\n got %v\nwant %v", step.name, got, want)
		}
	}
	if rep := env.run(t, SyncOptions{Full: true}); rep.Outcome != OutcomeUnchanged {
		t.Fatalf("full sync after incremental ones: outcome %s, diff %+v; want unchanged", rep.Outcome, rep.Diff)
	}
}

// TestSyncGuard specifies the mass-removal guard: a run that would remove
// or disable more than the allowed share, or that sees no users at all,
// changes nothing and is recorded as guard_tripped.
func TestSyncGuard(t *testing.T) {
	s := startOrg(t)
	cfg := testConfig(t, s)
	env := newSyncEnv(t, cfg)
	env.run(t, SyncOptions{})
	before := env.known(t)
	const people = "ou=people," + ldaptest.Suffix
	s.Apply(t, "dn: uid=hal,"+people+"\nchangetype: delete\n\ndn: uid=ivy,"+people+"\nchangetype: delete\n\n"+
		"dn: uid=jon,"+people+"\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n")
	ctx := context.Background()

	rep, err := env.syncer.Run(ctx, SyncOptions{})
	if fault.CodeOf(err) != CodeGuardTripped || rep.Outcome != OutcomeGuardTripped {
		t.Fatalf("3 of 9 users gone (33%% > 20%%): err %v outcome %s, want %s", err, rep.Outcome, CodeGuardTripped)
	}
	if len(rep.Diff.Removed) != 2 || len(rep.Diff.Disabled) != 1 {
		t.Fatalf("the stopped run must still report its diff, got %+v", rep.Diff)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"- user hal (", "- user ivy (", "! user jon (", "outcome: guard_tripped", "error: ldap_sync_guard_tripped"} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("report text lacks %q:\n%s", line, text.String())
		}
	}
	if got := env.known(t); !maps.Equal(got, before) {
		t.Fatalf("guard tripped but users changed:\n got %v\nwant %v", got, before)
	}
	if h := env.syncer.Health(); h.OK() || h.Last.Outcome != OutcomeGuardTripped || !strings.Contains(h.Last.Error, "3 of 9") {
		t.Fatalf("health %+v, want the tripped guard", h)
	}

	rep = env.run(t, SyncOptions{Force: true})
	if rep.Outcome != OutcomeApplied || rep.Removed != 2 || rep.Disabled != 1 {
		t.Fatalf("forced run: outcome %s removed %d disabled %d", rep.Outcome, rep.Removed, rep.Disabled)
	}
	if got := env.known(t); len(got) != 7 || !got["jon"].disabled {
		t.Fatalf("after the forced run: %v", got)
	}

	// A directory that answers with no users (here: the wrong base DN)
	// stops the run even when forced.
	empty := cfg
	empty.Users.BaseDN = "ou=services," + ldaptest.Suffix
	emptyEnv := &syncEnv{access: env.access}
	emptyEnv.syncer, err = NewSyncer(ctx, empty, env.db, env.access, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = emptyEnv.syncer.Run(ctx, SyncOptions{Full: true, Force: true})
	if fault.CodeOf(err) != CodeGuardTripped || rep.Seen != 0 {
		t.Fatalf("empty answer: err %v seen %d, want %s", err, rep.Seen, CodeGuardTripped)
	}
	if got := env.known(t); len(got) != 7 {
		t.Fatalf("empty answer changed users: %v", got)
	}
	runs, err := env.syncer.Runs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, r := range runs {
		outcomes = append(outcomes, string(r.Outcome))
	}
	if got, want := strings.Join(outcomes, " "), "guard_tripped applied guard_tripped applied"; got != want {
		t.Fatalf("stored runs, newest first: %q, want %q", got, want)
	}
}

// TestSyncDirectoryDown stops slapd in the middle of a sync (page size 2,
// so reading takes many round trips; a second run meanwhile is refused as
// busy): the run fails as directory_unavailable,
// sealgate's users stay as they were although most entries were not read,
// and the failure shows in Health, in the stored run and after a restart.
func TestSyncDirectoryDown(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIFFile: genDirectory(t, 3000, 50)})
	cfg := testConfig(t, s)
	cfg.PageSize = 2
	// Only correct failure handling protects the users here, not the guard.
	cfg.MaxRemovalPercent = 100
	env := newSyncEnv(t, cfg)
	env.run(t, SyncOptions{})
	before := env.known(t)
	if len(before) != 3000 {
		t.Fatalf("first sync knows %d users, want 3000", len(before))
	}
	ctx := context.Background()
	done := make(chan struct{})
	var rep *Report
	var err error
	go func() {
		defer close(done)
		rep, err = env.syncer.Run(ctx, SyncOptions{Full: true})
	}()
	// Wait until the run is under way, then take the directory away.
	for {
		var n int
		if qerr := env.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM ldapsync_runs WHERE outcome = 'running'`).Scan(&n); qerr != nil {
			t.Fatal(qerr)
		}
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := env.syncer.Run(ctx, SyncOptions{}); fault.CodeOf(err) != CodeSyncBusy {
		t.Fatalf("a second run while one is under way: %v, want %s", err, CodeSyncBusy)
	}
	time.Sleep(200 * time.Millisecond)
	s.Stop()
	<-done
	if fault.CodeOf(err) != CodeDirectoryUnavailable || rep.Outcome != OutcomeFailed {
		t.Fatalf("run with slapd stopped: err %v outcome %s, want %s", err, rep.Outcome, CodeDirectoryUnavailable)
	}
	if got := env.known(t); !maps.Equal(got, before) {
		t.Fatalf("a failed run changed %d users", len(got)-len(before))
	}
	t.Logf("stopped run: %v", err)
	h := env.syncer.Health()
	if h.OK() || h.Last.Outcome != OutcomeFailed || !strings.Contains(h.Last.Error, string(CodeDirectoryUnavailable)) || h.LastSuccess.IsZero() {
		t.Fatalf("health %+v, want the failure and the earlier success", h)
	}
	runs, err := env.syncer.Runs(ctx, 1)
	if err != nil || len(runs) != 1 || runs[0].Outcome != OutcomeFailed || runs[0].Error != h.Last.Error || runs[0].Finished.IsZero() {
		t.Fatalf("stored run %+v (%v), want the failure", runs, err)
	}
	restarted, err := NewSyncer(ctx, cfg, env.db, env.access, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rh := restarted.Health(); rh.Last.ID != h.Last.ID || rh.OK() || rh.LastSuccess.IsZero() {
		t.Fatalf("health after restart %+v, want %+v", rh, h)
	}
}

// TestSyncSkipsUnusableEntries: entries access could not hold (a group
// name with a space, a login two entries share) are skipped and reported,
// and the rest of the directory still syncs. A mapped name makes such a
// group usable.
func TestSyncSkipsUnusableEntries(t *testing.T) {
	s := startOrg(t)
	s.Apply(t, `dn: cn=Domain Users,ou=groups,`+ldaptest.Suffix+`
objectClass: groupOfNames
cn: Domain Users
member: uid=ann,ou=people,`+ldaptest.Suffix+`

dn: ou=contractors,ou=people,`+ldaptest.Suffix+`
objectClass: organizationalUnit
ou: contractors

dn: uid=bob,ou=contractors,ou=people,`+ldaptest.Suffix+`
objectClass: inetOrgPerson
uid: bob
cn: Another Bob
sn: Bob
`)
	cfg := testConfig(t, s)
	env := newSyncEnv(t, cfg)
	rep := env.run(t, SyncOptions{})
	if rep.Outcome != OutcomeApplied || rep.Added != 8 || rep.Skipped != 3 {
		t.Fatalf("outcome %s added %d skipped %v, want 8 users applied and 3 entries skipped", rep.Outcome, rep.Added, rep.SkippedEntries)
	}
	for _, want := range []string{`"Domain Users" is not a usable sealgate group name`, "user bob (", "login shared"} {
		if !strings.Contains(strings.Join(rep.SkippedEntries, "\n"), want) {
			t.Errorf("skipped entries %q do not mention %q", rep.SkippedEntries, want)
		}
	}
	known := env.known(t)
	if _, ok := known["bob"]; ok || known["ann"].groups != "sealers,staff" {
		t.Fatalf("known users %v: want no bob and ann without the unusable group", known)
	}

	cfg.Groups.Map = map[string]string{"Domain Users": "domain-users"}
	mapped := newSyncEnv(t, cfg)
	rep = mapped.run(t, SyncOptions{DryRun: true})
	if got := groupsByLogin(rep)["ann"]; got != "domain-users,sealers,staff" {
		t.Fatalf("ann's groups with the group mapped: %q", got)
	}
}

// TestLoop: the schedule starts with a full sync, makes every FullEvery-th
// run full and the others incremental, keeps going after a failed run, and
// returns when its context ends.
func TestLoop(t *testing.T) {
	s := startOrg(t)
	cfg := testConfig(t, s)
	cfg.FullEvery = 3
	env := newSyncEnv(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		env.syncer.Loop(ctx, 20*time.Millisecond)
	}()
	waitRuns := func(n int) []Run {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			runs, err := env.syncer.Runs(context.Background(), 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) >= n && runs[0].Outcome != OutcomeRunning {
				return runs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d runs after 20s, want %d", len(runs), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	runs := waitRuns(4)
	s.Stop()
	// One run may have begun before the stop; the two after it cannot have.
	failed := waitRuns(len(runs) + 3)
	cancel()
	<-stopped
	all, err := env.syncer.Runs(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range all {
		n := len(all) - 1 - i // runs are listed newest first
		if wantFull := n%3 == 0; r.Full != wantFull {
			t.Errorf("run %d: full %v, want %v", n, r.Full, wantFull)
		}
	}
	if failed[0].Outcome != OutcomeFailed || failed[1].Outcome != OutcomeFailed {
		t.Fatalf("runs with slapd stopped: %s, %s; want failed and the loop still running", failed[1].Outcome, failed[0].Outcome)
	}
	if n := len(env.known(t)); n != 9 {
		t.Fatalf("%d users known after the loop, want 9", n)
	}
}

// TestSyncAfterFailover: change marks belong to the server they were read
// from (AD's uSNChanged counts per domain controller), so the first sync
// against another server reads in full; later ones are incremental again.
func TestSyncAfterFailover(t *testing.T) {
	primary := startOrg(t)
	replica := ldaptest.Start(t, ldaptest.Options{Snapshot: primary.Export(t)})
	cfg := testConfig(t, primary)
	cfg.URLs = []string{primary.URL, replica.URL}
	env := newSyncEnv(t, cfg)
	full := func() []bool {
		var got []bool
		for range 2 {
			rep := env.run(t, SyncOptions{})
			if rep.Outcome != OutcomeApplied && rep.Outcome != OutcomeUnchanged {
				t.Fatalf("outcome %s", rep.Outcome)
			}
			got = append(got, rep.Full)
		}
		return got
	}
	if got := full(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("on the primary: full %v, want [true false]", got)
	}
	primary.Stop()
	if got := full(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("after failing over to the replica: full %v, want [true false]", got)
	}
	if n := len(env.known(t)); n != 9 {
		t.Fatalf("%d users after failover, want the same 9 (same entryUUIDs)", n)
	}
}

// TestDisabledRules: which users count as disabled under each kind of
// rule. Disabled users unknown to sealgate are not added, so a dry run's
// additions are everyone else.
func TestDisabledRules(t *testing.T) {
	s := startOrg(t)
	const people = "ou=people," + ldaptest.Suffix
	s.Apply(t, "dn: uid=hal,"+people+"\nchangetype: modify\nadd: employeeType\nemployeeType: INACTIVE\n\n"+
		"dn: uid=ivy,"+people+"\nchangetype: modify\nadd: employeeNumber\nemployeeNumber: 514\n\n"+
		"dn: uid=jon,"+people+"\nchangetype: modify\nadd: employeeNumber\nemployeeNumber: 512\n")
	tests := []struct {
		name     string
		rule     DisabledRule
		disabled []string
	}{
		{"attribute present (default: pwdAccountLockedTime)", DisabledRule{}, []string{"eve"}},
		{"attribute has a value, case-insensitive", DisabledRule{Attribute: "employeeType", Value: "inactive"}, []string{"hal"}},
		{"bit set in an integer (userAccountControl style)", DisabledRule{Attribute: "employeeNumber", Bit: 2}, []string{"ivy"}},
	}
	all := []string{"ann", "bob", "cy", "dan", "eve", "fay", "gil", "hal", "ivy", "jon"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, s)
			cfg.Users.Disabled = tc.rule
			rep := newSyncEnv(t, cfg).run(t, SyncOptions{DryRun: true})
			var added []string
			for _, u := range rep.Diff.Added {
				added = append(added, u.Login)
			}
			want := slices.DeleteFunc(slices.Clone(all), func(l string) bool { return slices.Contains(tc.disabled, l) })
			if !slices.Equal(added, want) {
				t.Fatalf("added %v, want %v", added, want)
			}
		})
	}
}

// TestSyncPasswordLockout: a user the directory locks out after failed
// logins (ppolicy sets pwdAccountLockedTime itself) is disabled in sealgate
// by the next incremental sync.
func TestSyncPasswordLockout(t *testing.T) {
	s := startOrg(t)
	s.Apply(t, "dn: "+ldaptest.PolicyDN+"\nobjectClass: device\nobjectClass: pwdPolicy\ncn: default\n"+
		"pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 2\n")
	cfg := testConfig(t, s)
	env := newSyncEnv(t, cfg)
	env.run(t, SyncOptions{})
	auth, err := NewAuthenticator(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if _, err := auth.Authenticate(ctx, "gil", "guess"); fault.CodeOf(err) != CodeUnauthenticated {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if _, err := auth.Authenticate(ctx, "gil", "gil-pw"); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("locked out gil with the right password: %v", err)
	}
	rep := env.run(t, SyncOptions{})
	if rep.Full || rep.Disabled != 1 || !env.known(t)["gil"].disabled {
		t.Fatalf("incremental sync after the lockout: full %v disabled %d, gil %+v", rep.Full, rep.Disabled, env.known(t)["gil"])
	}
}
