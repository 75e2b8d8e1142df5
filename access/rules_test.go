package access

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// sealAction is a one-document PAdES B-B seal with the company seal.
func sealAction(mod func(*Action)) Action {
	a := Action{Operation: OpSeal, Seal: "company", Format: "pades", Level: "B-B", Documents: 1}
	if mod != nil {
		mod(&a)
	}
	return a
}

func mustRule(t testing.TB, svc *Service, r Rule) {
	t.Helper()
	if _, err := svc.AddRule(context.Background(), r, "cli"); err != nil {
		t.Fatal(err)
	}
}

func TestDecideAppliesRuleConditions(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	for _, u := range []string{"alice", "bob"} {
		if _, err := svc.AddUser(ctx, NewUser{Login: u, Password: "correct horse battery"}, "cli"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.AddGroup(ctx, "finance", false, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddMember(ctx, "finance", "bob", "cli"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"erp", "batch"} {
		if _, _, err := svc.AddProcess(ctx, id, "", nil, "cli"); err != nil {
			t.Fatal(err)
		}
	}
	past, future := clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour)
	mustRule(t, svc, Rule{Name: "erp-invoices", Subject: Subject{SubjectProcess, "erp"}, Seals: []string{"company"},
		Formats: []string{"pades"}, Levels: []string{"B-B", "B-T"}, Strength: StrengthClientCert, Networks: []string{"192.0.2.0/24"}})
	mustRule(t, svc, Rule{Name: "batch-later", Subject: Subject{SubjectProcess, "batch"}, Seals: []string{AnySeal}, NotBefore: &future})
	mustRule(t, svc, Rule{Name: "finance-any", Subject: Subject{SubjectGroup, "finance"}, Seals: []string{AnySeal},
		Strength: StrengthPasswordTOTP, NotAfter: &future})
	mustRule(t, svc, Rule{Name: "alice-expired", Subject: Subject{SubjectUser, "alice"}, Seals: []string{"company"}, NotAfter: &past})

	users, _ := svc.Users(ctx)
	procs, _ := svc.Processes(ctx)
	id := map[string]int64{}
	for _, u := range users {
		id[u.Login] = u.ID
	}
	for _, p := range procs {
		id[p.ClientID] = p.ID
	}
	erp := Principal{Kind: KindProcess, ID: id["erp"], Name: "erp", Factors: []Factor{FactorClientCert}, Source: office}
	bob := Principal{Kind: KindUser, ID: id["bob"], Name: "bob", Factors: []Factor{FactorPassword, FactorTOTP}}

	tests := []struct {
		name   string
		p      Principal
		a      Action
		rule   string // the rule that allows, or "" when denied
		reason string // part of the reason for a denial
	}{
		{"process with its certificate from its network", erp, sealAction(nil), "erp-invoices", ""},
		{"process from outside its networks", with(erp, func(p *Principal) { p.Source = elsewhr }), sealAction(nil), "", "not in an allowed network"},
		{"process with a secret where a certificate is required", with(erp, func(p *Principal) { p.Factors = []Factor{FactorClientSecret} }),
			sealAction(nil), "", "authentication client_cert is required"},
		{"format not granted", erp, sealAction(func(a *Action) { a.Format = "cades" }), "", `format "cades" is not allowed`},
		{"level not granted", erp, sealAction(func(a *Action) { a.Level = "B-LTA" }), "", `level "B-LTA" is not allowed`},
		{"seal not granted", erp, sealAction(func(a *Action) { a.Seal = "hr" }), "", "no rule grants it"},
		{"rule not yet valid", Principal{Kind: KindProcess, ID: id["batch"], Name: "batch", Factors: []Factor{FactorClientSecret}},
			sealAction(nil), "", "not valid before"},
		{"group member with password and TOTP, any seal", bob, sealAction(func(a *Action) { a.Seal = "hr" }), "finance-any", ""},
		{"group member with password only", with(bob, func(p *Principal) { p.Factors = []Factor{FactorPassword} }), sealAction(nil), "",
			"authentication password+totp is required"},
		{"expired rule", Principal{Kind: KindUser, ID: id["alice"], Name: "alice", Factors: []Factor{FactorPassword}}, sealAction(nil), "", "expired at"},
		{"verification is public", Principal{}, Action{Operation: OpVerify}, "public verification", ""},
		{"anonymous may not seal", Principal{}, sealAction(nil), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := svc.Decide(ctx, tt.p, tt.a)
			if tt.rule != "" {
				if err != nil || !d.Allowed || d.Rule != tt.rule {
					t.Fatalf("got %+v, %v; want allowed by %s", d, err, tt.rule)
				}
				return
			}
			if d.Allowed || err == nil {
				t.Fatalf("got %+v, %v; want denied", d, err)
			}
			if tt.p.Kind == KindAnonymous {
				if fault.CodeOf(err) != CodeUnauthenticated {
					t.Fatalf("anonymous: %v", err)
				}
				return
			}
			e := fault.As(err)
			if e.Code != CodeSealNotPermitted || e.Kind != fault.Forbidden || !strings.Contains(e.Msg, `"`+tt.a.Seal+`"`) ||
				!strings.Contains(d.Reason, tt.reason) || !strings.Contains(e.Msg, tt.reason) {
				t.Fatalf("got %+v, %v; want seal_not_permitted naming %q and %q", d, err, tt.a.Seal, tt.reason)
			}
		})
	}
}

func with(p Principal, mod func(*Principal)) Principal {
	mod(&p)
	return p
}

func TestRuleChangesTakeEffectOnTheNextDecision(t *testing.T) {
	ctx := context.Background()
	env := openTestService(t, nil)
	svc := env.svc
	// A second Service on the same file, as the CLI is: its changes must be
	// seen by the first one's very next decision.
	cli, err := Open(ctx, openDB(t, env.path), Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.AddUser(ctx, NewUser{Login: "bob", Password: "correct horse battery"}, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddGroup(ctx, "finance", false, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddMember(ctx, "finance", "bob", "cli"); err != nil {
		t.Fatal(err)
	}
	bob := Principal{Kind: KindUser, ID: u.ID, Name: "bob", Factors: []Factor{FactorPassword}}
	allowed := func() bool {
		d, err := svc.Decide(ctx, bob, sealAction(nil))
		return err == nil && d.Allowed
	}
	steps := []struct {
		name   string
		change func() error
		want   bool
	}{
		{"no rule yet", func() error { return nil }, false},
		{"group rule added here", func() error {
			_, err := svc.AddRule(ctx, Rule{Name: "finance", Subject: Subject{SubjectGroup, "finance"}, Seals: []string{"company"}}, "cli")
			return err
		}, true},
		{"group rule removed by the other process", func() error { return cli.RemoveRule(ctx, "finance", "cli") }, false},
		{"group rule added by the other process", func() error {
			_, err := cli.AddRule(ctx, Rule{Name: "finance2", Subject: Subject{SubjectGroup, "finance"}, Seals: []string{"company"}}, "cli")
			return err
		}, true},
		{"member removed by the other process", func() error { return cli.RemoveMember(ctx, "finance", "bob", "cli") }, false},
		{"member added back", func() error { return cli.AddMember(ctx, "finance", "bob", "cli") }, true},
		{"user disabled by the other process", func() error { return cli.SetUserDisabled(ctx, "bob", true, "cli") }, false},
		{"user enabled again", func() error { return cli.SetUserDisabled(ctx, "bob", false, "cli") }, true},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := allowed(); got != s.want {
			t.Fatalf("%s: allowed = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestPerBatchApprovalNeedsAFreshTOTP(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "carol", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	secret, _ := enrollTOTP(t, svc, clock, "carol")
	mustRule(t, svc, Rule{Name: "carol-batches", Subject: Subject{SubjectUser, "carol"}, Seals: []string{"company"},
		Approval: ApprovalBatch, ApprovalMinutes: 2})
	mustRule(t, svc, Rule{Name: "carol-contracts", Subject: Subject{SubjectUser, "carol"}, Seals: []string{"contracts"},
		Approval: ApprovalDocument})

	login, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "carol", Password: "correct horse battery", OTP: totpCode(t, secret, clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	// A session carries the factors of the login, never its approval.
	tok, _, err := svc.StartSession(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	session, err := svc.AuthenticateSession(ctx, tok, office)
	if err != nil || session.Approval != nil || !session.Has(FactorTOTP) {
		t.Fatalf("session: %+v, %v", session, err)
	}
	batch := sealAction(func(a *Action) { a.Documents = 50 })
	if _, err := svc.Decide(ctx, session, batch); fault.CodeOf(err) != CodeSealNotPermitted || !strings.Contains(err.Error(), "fresh TOTP approval") {
		t.Fatalf("batch without approval: %v", err)
	}

	code := totpCode(t, secret, clock.Now())
	approved, err := svc.Approve(ctx, session, code)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := svc.Decide(ctx, approved, batch); err != nil || d.Rule != "carol-batches" {
		t.Fatalf("batch with a fresh approval: %+v, %v", d, err)
	}
	if _, err := svc.Decide(ctx, approved, batch); fault.CodeOf(err) != CodeSealNotPermitted || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second batch on one approval: %v", err)
	}
	if _, err := svc.Approve(ctx, session, code); fault.CodeOf(err) != CodeTOTPReplayed {
		t.Fatalf("replayed TOTP code: %v", err)
	}

	clock.Add(30 * time.Second)
	stale, err := svc.Approve(ctx, session, totpCode(t, secret, clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(2*time.Minute + time.Second)
	if _, err := svc.Decide(ctx, stale, batch); fault.CodeOf(err) != CodeSealNotPermitted || !strings.Contains(err.Error(), "older than 2 minutes") {
		t.Fatalf("stale approval: %v", err)
	}

	// Per document: one approval, one document.
	fresh, err := svc.Approve(ctx, session, totpCode(t, secret, clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	contracts := sealAction(func(a *Action) { a.Seal = "contracts"; a.Documents = 2 })
	if _, err := svc.Decide(ctx, fresh, contracts); fault.CodeOf(err) != CodeApprovalPerDocument || fault.As(err).Kind != fault.Forbidden || !strings.Contains(err.Error(), "per document") {
		t.Fatalf("two documents on a per-document approval: %v", err)
	}
	contracts.Documents = 1
	if d, err := svc.Decide(ctx, fresh, contracts); err != nil || d.Rule != "carol-contracts" {
		t.Fatalf("one document: %+v, %v", d, err)
	}
}

func TestDailyQuotaCountsSealedDocuments(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	pr, _, err := svc.AddProcess(ctx, "erp", "", nil, "cli")
	if err != nil {
		t.Fatal(err)
	}
	mustRule(t, svc, Rule{Name: "erp-quota", Subject: Subject{SubjectProcess, "erp"}, Seals: []string{"company"}, DailyQuota: 10})
	erp := Principal{Kind: KindProcess, ID: pr.ID, Name: "erp", Factors: []Factor{FactorClientSecret}}
	for i, tt := range []struct {
		docs  int
		allow bool
	}{{6, true}, {4, true}, {1, false}} {
		_, err := svc.Decide(ctx, erp, sealAction(func(a *Action) { a.Documents = tt.docs }))
		if (err == nil) != tt.allow {
			t.Fatalf("request %d (%d documents): %v, want allowed=%v", i+1, tt.docs, err, tt.allow)
		}
	}
	clock.Add(24 * time.Hour)
	if _, err := svc.Decide(ctx, erp, sealAction(nil)); err != nil {
		t.Fatalf("next day: %v", err)
	}
}

func TestDisabledDirectoryUserLosesEveryRightAtOnce(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	err := svc.ApplyExternal(ctx, "corp", ExternalChanges{Added: []ExternalUser{{ExternalID: "guid-d", Login: "dave", Groups: []string{"sealers"}}}}, "ldapsync:corp")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := svc.User(ctx, "dave")
	secret, _ := enrollTOTP(t, svc, clock, "dave")
	mustRule(t, svc, Rule{Name: "sealers", Subject: Subject{SubjectGroup, "sealers"}, Seals: []string{"company"}, Approval: ApprovalBatch})
	// As if dave had logged in through the directory.
	p := Principal{Kind: KindUser, ID: u.ID, Name: "dave", Factors: []Factor{FactorPassword, FactorTOTP}}
	tok, _, err := svc.StartSession(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	approved, err := svc.Approve(ctx, p, totpCode(t, secret, clock.Now()))
	if err != nil {
		t.Fatal(err)
	}

	if err := svc.ApplyExternal(ctx, "corp", ExternalChanges{Disabled: []string{"guid-d"}}, "ldapsync:corp"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateSession(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("session of a disabled user: %v", err)
	}
	if _, err := svc.Decide(ctx, approved, sealAction(nil)); fault.CodeOf(err) != CodeSealNotPermitted {
		t.Fatalf("decision for a disabled user: %v", err)
	}
	// Re-enabled, the pending approval stays cancelled.
	changed := ExternalUser{ExternalID: "guid-d", Login: "dave"}
	if err := svc.ApplyExternal(ctx, "corp", ExternalChanges{Changed: []ExternalUser{changed}}, "ldapsync:corp"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, approved, sealAction(nil)); fault.CodeOf(err) != CodeSealNotPermitted || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("approval given before the user was disabled: %v", err)
	}
	if _, err := svc.AuthenticateSession(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("session from before the disable: %v", err)
	}
}

func TestPermittedSealsListsWhatRulesGrant(t *testing.T) {
	ctx := context.Background()
	env := openTestService(t, nil)
	svc := env.svc
	u, err := svc.AddUser(ctx, NewUser{Login: "bob", Password: "correct horse battery"}, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddGroup(ctx, "legal", false, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddMember(ctx, "legal", "bob", "cli"); err != nil {
		t.Fatal(err)
	}
	pr, _, err := svc.AddProcess(ctx, "erp", "", nil, "cli")
	if err != nil {
		t.Fatal(err)
	}
	mustRule(t, svc, Rule{Name: "bob-invoices", Subject: Subject{SubjectUser, "bob"}, Seals: []string{"invoices"}})
	mustRule(t, svc, Rule{Name: "legal-contracts", Subject: Subject{SubjectGroup, "legal"}, Seals: []string{"contracts", "invoices"}})
	mustRule(t, svc, Rule{Name: "erp-all", Subject: Subject{SubjectProcess, "erp"}, Seals: []string{AnySeal}})
	bob := Principal{Kind: KindUser, ID: u.ID, Name: "bob"}
	tests := []struct {
		name string
		p    Principal
		want string
	}{
		{"user with a direct and a group rule", bob, "contracts,invoices"},
		{"process granted every seal", Principal{Kind: KindProcess, ID: pr.ID, Name: "erp"}, AnySeal},
	}
	for _, tt := range tests {
		got, err := svc.PermittedSeals(ctx, tt.p)
		if err != nil || strings.Join(got, ",") != tt.want {
			t.Errorf("%s: %v, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if got, err := svc.PermittedSeals(ctx, Principal{}); got != nil || fault.CodeOf(err) != CodeUnauthenticated {
		t.Errorf("anonymous: %v, %v; want unauthenticated", got, err)
	}
	if err := svc.SetUserDisabled(ctx, "bob", true, "cli"); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.PermittedSeals(ctx, bob); len(got) != 0 {
		t.Errorf("disabled user: %v", got)
	}
}

func TestConcurrentDecisionsWhileRulesChange(t *testing.T) {
	ctx := context.Background()
	env := openTestService(t, nil)
	svc := env.svc
	pr, _, err := svc.AddProcess(ctx, "erp", "", nil, "cli")
	if err != nil {
		t.Fatal(err)
	}
	mustRule(t, svc, Rule{Name: "erp-company", Subject: Subject{SubjectProcess, "erp"}, Seals: []string{"company"}})
	erp := Principal{Kind: KindProcess, ID: pr.ID, Name: "erp", Factors: []Factor{FactorClientSecret}}
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				// company stays granted throughout; hr comes and goes.
				if _, err := svc.Decide(ctx, erp, sealAction(nil)); err != nil {
					done <- err
					return
				}
				if _, err := svc.Decide(ctx, erp, sealAction(func(a *Action) { a.Seal = "hr" })); err != nil && fault.CodeOf(err) != CodeSealNotPermitted {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 20; i++ {
		mustRule(t, svc, Rule{Name: "erp-hr", Subject: Subject{SubjectProcess, "erp"}, Seals: []string{"hr"}})
		if err := svc.RemoveRule(ctx, "erp-hr", "cli"); err != nil {
			t.Fatal(err)
		}
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Decide(ctx, erp, sealAction(func(a *Action) { a.Seal = "hr" })); fault.CodeOf(err) != CodeSealNotPermitted {
		t.Fatalf("hr after its rule was removed: %v", err)
	}
}

func TestRemovedDirectoryUserLosesSessionsAndRules(t *testing.T) {
	ctx := context.Background()
	env := openTestService(t, nil)
	svc := env.svc
	err := svc.ApplyExternal(ctx, "corp", ExternalChanges{Added: []ExternalUser{{ExternalID: "guid-e", Login: "erin"}}}, "ldapsync:corp")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := svc.User(ctx, "erin")
	mustRule(t, svc, Rule{Name: "erin-company", Subject: Subject{SubjectUser, "erin"}, Seals: []string{"company"}})
	p := Principal{Kind: KindUser, ID: u.ID, Name: "erin", Factors: []Factor{FactorPassword}}
	tok, _, err := svc.StartSession(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, p, sealAction(nil)); err != nil {
		t.Fatal(err)
	}
	if err := svc.ApplyExternal(ctx, "corp", ExternalChanges{Removed: []string{"guid-e"}}, "ldapsync:corp"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateSession(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("session of a removed user: %v", err)
	}
	if _, err := svc.Decide(ctx, p, sealAction(nil)); fault.CodeOf(err) != CodeSealNotPermitted {
		t.Fatalf("decision for a removed user: %v", err)
	}
	if rules, _ := svc.Rules(ctx); len(rules) != 0 {
		t.Fatalf("rules naming the removed user remain: %+v", rules)
	}
}

// With the node's seals known, a rule may name only those (or AnySeal);
// with none configured, none; unknown, as for a bare database, any.
func TestRuleSealsMustBeConfigured(t *testing.T) {
	ctx := context.Background()
	rule := func(name string, seals ...string) Rule {
		return Rule{Name: name, Subject: Subject{SubjectGroup, "finance"}, Seals: seals}
	}
	for _, tc := range []struct {
		name       string
		configured []string
		rule       Rule
		says       string
	}{
		{"configured seal", []string{"company", "hr"}, rule("a", "company"), ""},
		{"any seal", []string{"company"}, rule("b", AnySeal), ""},
		{"typo", []string{"company", "hr"}, rule("c", "company", "compnay"), `seal "compnay" is not configured; the configured seals are company, hr`},
		{"no seal configured", []string{}, rule("d", "company"), `seal "company" is not configured: no seal is`},
		{"seals unknown", nil, rule("e", "anything"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := openTestService(t, func(o *Options) { o.Seals = tc.configured }).svc
			if _, err := svc.AddGroup(ctx, "finance", false, "cli"); err != nil {
				t.Fatal(err)
			}
			_, err := svc.AddRule(ctx, tc.rule, "cli")
			switch {
			case tc.says == "" && err != nil:
				t.Fatalf("AddRule: %v", err)
			case tc.says != "" && (fault.CodeOf(err) != CodeRuleInvalid || !strings.Contains(err.Error(), tc.says)):
				t.Fatalf("AddRule: %v, want %s saying %q", err, CodeRuleInvalid, tc.says)
			}
		})
	}
}
