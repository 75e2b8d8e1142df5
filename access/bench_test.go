package access

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkAccessDecide measures allowed seal decisions against 10,000
// rules (users, groups and processes) and reports the p50 and p99 latency
// of single calls; the target is p99 <= 20 µs.
func BenchmarkAccessDecide(b *testing.B) {
	ctx := context.Background()
	env := openTestService(b, nil)
	svc := env.svc
	const (
		users     = 1000
		groups    = 200
		processes = 500
	)
	var principals []Principal
	var actions []Action
	for g := 0; g < groups; g++ {
		if _, err := svc.AddGroup(ctx, fmt.Sprintf("group-%d", g), false, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	err := svc.ApplyExternal(ctx, "corp", ExternalChanges{Added: func() []ExternalUser {
		var us []ExternalUser
		for u := 0; u < users; u++ {
			us = append(us, ExternalUser{ExternalID: fmt.Sprint(u), Login: fmt.Sprintf("user-%d", u),
				Groups: []string{fmt.Sprintf("group-%d", u%groups), fmt.Sprintf("group-%d", (u*7+3)%groups)}})
		}
		return us
	}()}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	all, err := svc.Users(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rules := 0
	add := func(sub Subject, seal string, r Rule) {
		r.Name, r.Subject, r.Seals = fmt.Sprintf("rule-%d", rules), sub, []string{seal}
		if _, err := svc.AddRule(ctx, r, "bench"); err != nil {
			b.Fatal(err)
		}
		rules++
	}
	for p := 0; p < processes; p++ {
		pr, _, err := svc.AddProcess(ctx, fmt.Sprintf("proc-%d", p), "", nil, "bench")
		if err != nil {
			b.Fatal(err)
		}
		sub := Subject{SubjectProcess, pr.ClientID}
		for i := 0; i < 8; i++ {
			add(sub, fmt.Sprintf("seal-%d", i), Rule{Formats: []string{"pades"}, Strength: StrengthClientSecret, Networks: []string{"10.0.0.0/8"}})
		}
		principals = append(principals, Principal{Kind: KindProcess, ID: pr.ID, Name: pr.ClientID, Factors: []Factor{FactorClientSecret},
			Source: netipAddr("10.1.2.3")})
		actions = append(actions, sealAction(func(a *Action) { a.Seal = "seal-7" }))
	}
	for g := 0; g < groups; g++ {
		for i := 0; i < 15; i++ {
			add(Subject{SubjectGroup, fmt.Sprintf("group-%d", g)}, fmt.Sprintf("gseal-%d-%d", g, i), Rule{Levels: []string{"B-B", "B-T"}})
		}
	}
	for _, u := range all {
		for i := 0; i < 3; i++ {
			add(Subject{SubjectUser, u.Login}, fmt.Sprintf("useal-%d", i), Rule{Strength: StrengthPassword})
		}
		principals = append(principals, Principal{Kind: KindUser, ID: u.ID, Name: u.Login, Factors: []Factor{FactorPassword}})
		// The user's second group's last rule: every candidate is looked at.
		n := 0
		fmt.Sscanf(u.Groups[len(u.Groups)-1], "group-%d", &n)
		actions = append(actions, sealAction(func(a *Action) { a.Seal = fmt.Sprintf("gseal-%d-14", n) }))
	}
	if rules != 10000 {
		b.Fatalf("%d rules", rules)
	}
	// Build the index once outside the timing, as a running server has;
	// a rule change costs every node one such rebuild.
	start := time.Now()
	if _, err := svc.Decide(ctx, principals[0], actions[0]); err != nil {
		b.Fatal(err)
	}
	rebuild := time.Since(start)
	rng := rand.New(rand.NewPCG(1, 2))
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := rng.IntN(len(principals))
		start := time.Now()
		d, err := svc.Decide(ctx, principals[k], actions[k])
		durations = append(durations, time.Since(start))
		if err != nil || !d.Allowed {
			b.Fatalf("%s %+v: %+v, %v", principals[k].Name, actions[k], d, err)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		return float64(durations[int(float64(len(durations)-1)*p)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(rules), "rules")
	b.ReportMetric(float64(rebuild.Microseconds())/1e3, "rebuild-ms")
}

// BenchmarkAccessLogin measures one local password login with the
// production argon2id parameters (DefaultPasswordParams: m=64 MiB, t=2, p=2).
func BenchmarkAccessLogin(b *testing.B) {
	ctx := context.Background()
	env := openTestService(b, func(o *Options) { o.Password = DefaultPasswordParams })
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "bench"); err != nil {
		b.Fatal(err)
	}
	creds := UserCredentials{Login: "alice", Password: "correct horse battery"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := svc.AuthenticateUser(ctx, creds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(DefaultPasswordParams.MemoryKiB)/1024, "argon2-MiB")
	b.ReportMetric(float64(DefaultPasswordParams.Time), "argon2-passes")
	b.ReportMetric(float64(DefaultPasswordParams.Threads), "argon2-lanes")
}
