package access

import (
	"bytes"
	"context"
	"image/png"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
)

var (
	office  = netip.MustParseAddr("192.0.2.10")
	elsewhr = netip.MustParseAddr("198.51.100.7")
)

func TestUserLoginWithPasswordAndTOTP(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}

	p, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: "correct horse battery", Source: office})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindUser || p.Name != "alice" || !slices.Equal(p.Factors, []Factor{FactorPassword}) || p.Approval != nil {
		t.Fatalf("password login: %+v", p)
	}

	// Enrollment: an otpauth URL and a QR code PNG; confirmed by a first code.
	en, err := svc.EnrollTOTP(ctx, "alice", "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(en.URL, "otpauth://totp/sealgate:alice?") {
		t.Errorf("enrollment URL %q", en.URL)
	}
	if _, err := png.Decode(bytes.NewReader(en.QRCode)); err != nil {
		t.Errorf("QR code is not a PNG: %v", err)
	}
	if _, err := svc.ConfirmTOTP(ctx, "alice", "000000", "user:alice"); fault.CodeOf(err) != CodeTOTPInvalid {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	secret, recovery := enrollTOTP(t, svc, clock, "alice")
	if len(recovery) != recoveryN {
		t.Fatalf("%d recovery codes", len(recovery))
	}

	if _, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: "correct horse battery"}); fault.CodeOf(err) != CodeTOTPRequired {
		t.Fatalf("login without TOTP once enrolled: %v", err)
	}
	code := totpCode(t, secret, clock.Now())
	p, err = svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: "correct horse battery", OTP: code})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Factors, []Factor{FactorPassword, FactorTOTP}) || p.Approval == nil || !p.Approval.At.Equal(clock.Now()) {
		t.Fatalf("password+TOTP login: %+v", p)
	}
	// The same code (same time step) again is a replay, even a few seconds
	// later, and refused as one however often it comes: a replay is no
	// guess, so it does not lock the account.
	clock.Add(5 * time.Second)
	for i := 0; i < 10; i++ {
		if _, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: "correct horse battery", OTP: code, Source: office}); fault.CodeOf(err) != CodeTOTPReplayed {
			t.Fatalf("replayed TOTP code, time %d: %v", i+1, err)
		}
	}
	// A recovery code stands in for TOTP once.
	for i, want := range []fault.Code{"", CodeUnauthenticated} {
		_, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: "correct horse battery", OTP: strings.ToUpper(recovery[0])})
		if fault.CodeOf(err) != want {
			t.Fatalf("recovery code use %d: got %v, want %q", i+1, err, want)
		}
	}
}

func TestUnknownAccountAndWrongPasswordLookTheSame(t *testing.T) {
	ctx := context.Background()
	// Lockout has its own test; here every attempt must reach the password check.
	env := openTestService(t, func(o *Options) { o.Lockout = LockoutPolicy{PairFailures: 1000, AccountFailures: 1000} })
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddUser(ctx, NewUser{Login: "dora", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetUserDisabled(ctx, "dora", true, "cli"); err != nil {
		t.Fatal(err)
	}
	var answers []string
	for _, c := range []UserCredentials{
		{Login: "alice", Password: "wrong password!!"},
		{Login: "nobody", Password: "wrong password!!"},
		{Login: "dora", Password: "correct horse battery"},
	} {
		// argon2id is memory-hard: the memory it fills is the proof that
		// the path ran the password check, where a wall-clock comparison
		// would depend on how busy the machine is.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := svc.AuthenticateUser(ctx, c)
		runtime.ReadMemStats(&after)
		e := fault.As(err)
		if e == nil || e.Code != CodeUnauthenticated {
			t.Fatalf("%s: got %v, want unauthenticated", c.Login, err)
		}
		answers = append(answers, e.Error())
		if filled := after.TotalAlloc - before.TotalAlloc; filled < uint64(testPassword.MemoryKiB)*1024 {
			t.Errorf("%s: the attempt allocated %d bytes, less than argon2id's %d KiB: it skipped the password check", c.Login, filled, testPassword.MemoryKiB)
		}
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Errorf("answers differ: %q", answers)
	}
}

func TestLockoutPerAccountAndPerSource(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) {
		o.Now = clock.Now
		o.Lockout = LockoutPolicy{AccountFailures: 3, SourceFailures: 5, BaseLock: time.Minute}
	})
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	login := func(name, pw string, src netip.Addr) fault.Code {
		_, err := svc.AuthenticateUser(ctx, UserCredentials{Login: name, Password: pw, Source: src})
		return fault.CodeOf(err)
	}
	// A known and an unknown account lock alike after three failures.
	for _, name := range []string{"alice", "nobody"} {
		for i := 0; i < 3; i++ {
			if got := login(name, "wrong password!!", netip.Addr{}); got != CodeUnauthenticated {
				t.Fatalf("%s failure %d: %s", name, i+1, got)
			}
		}
		if got := login(name, "correct horse battery", netip.Addr{}); got != CodeAccountLocked {
			t.Fatalf("%s after three failures: %s, want account_locked", name, got)
		}
	}
	clock.Add(61 * time.Second)
	if got := login("alice", "correct horse battery", netip.Addr{}); got != "" {
		t.Fatalf("alice after the lock: %s", got)
	}
	// A fourth failure after the lock doubles it.
	for i := 0; i < 3; i++ {
		login("alice", "wrong password!!", netip.Addr{})
	}
	clock.Add(61 * time.Second)
	login("alice", "wrong password!!", netip.Addr{})
	clock.Add(61 * time.Second)
	if got := login("alice", "correct horse battery", netip.Addr{}); got != CodeAccountLocked {
		t.Fatalf("alice one minute into a two-minute lock: %s", got)
	}
	clock.Add(61 * time.Second)
	if got := login("alice", "correct horse battery", netip.Addr{}); got != "" {
		t.Fatalf("alice after the doubled lock: %s", got)
	}

	// One source guessing many names locks the source, not the names.
	for i := 0; i < 5; i++ {
		login("guess"+string(rune('a'+i)), "wrong password!!", elsewhr)
	}
	if got := login("alice", "correct horse battery", elsewhr); got != CodeAccountLocked {
		t.Fatalf("alice from the guessing source: %s", got)
	}
	if got := login("alice", "correct horse battery", office); got != "" {
		t.Fatalf("alice from another source: %s", got)
	}
}

func TestGroupRequiresTOTP(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "bob", Password: "correct horse battery"}, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddGroup(ctx, "sealers", false, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddMember(ctx, "sealers", "bob", "cli"); err != nil {
		t.Fatal(err)
	}
	creds := UserCredentials{Login: "bob", Password: "correct horse battery"}
	if _, err := svc.AuthenticateUser(ctx, creds); err != nil {
		t.Fatalf("before the group requires TOTP: %v", err)
	}
	if err := svc.SetGroupTOTP(ctx, "sealers", true, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateUser(ctx, creds); fault.CodeOf(err) != CodeTOTPEnrollment {
		t.Fatalf("member of a TOTP group without TOTP: %v", err)
	}
	secret, _ := enrollTOTP(t, svc, clock, "bob")
	creds.OTP = totpCode(t, secret, clock.Now())
	p, err := svc.AuthenticateUser(ctx, creds)
	if err != nil || !p.Has(FactorTOTP) || !slices.Equal(p.Groups, []string{"sealers"}) {
		t.Fatalf("bob with TOTP: %+v, %v", p, err)
	}
}

func TestProcessSecretRotationAndRevocation(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	_, first, err := svc.AddProcess(ctx, "erp", "invoicing", nil, "cli")
	if err != nil {
		t.Fatal(err)
	}
	auth := func(secret string) fault.Code {
		p, err := svc.AuthenticateClientSecret(ctx, "erp", secret, office)
		if err == nil && (p.Kind != KindProcess || p.Name != "erp" || !slices.Equal(p.Factors, []Factor{FactorClientSecret})) {
			t.Fatalf("process principal: %+v", p)
		}
		return fault.CodeOf(err)
	}
	if got := auth(first); got != "" {
		t.Fatalf("first secret: %s", got)
	}
	second, err := svc.RotateSecret(ctx, "erp", 0, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if got := auth(first); got != CodeUnauthenticated {
		t.Fatalf("old secret after rotation without overlap: %s", got)
	}
	if got := auth(second); got != "" {
		t.Fatalf("new secret: %s", got)
	}
	third, err := svc.RotateSecret(ctx, "erp", time.Hour, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if auth(second) != "" || auth(third) != "" {
		t.Fatal("both secrets should work during the overlap")
	}
	clock.Add(time.Hour + time.Second)
	if got := auth(second); got != CodeUnauthenticated {
		t.Fatalf("old secret after the overlap: %s", got)
	}
	if err := svc.RevokeProcess(ctx, "erp", "cli"); err != nil {
		t.Fatal(err)
	}
	if got := auth(third); got != CodeUnauthenticated {
		t.Fatalf("secret of a revoked process: %s", got)
	}
}

func TestBearerTokensExpireAndEndWithTheProcess(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now; o.TokenTTL = 5 * time.Minute })
	svc := env.svc
	_, secret, err := svc.AddProcess(ctx, "erp", "", nil, "cli")
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.AuthenticateClientSecret(ctx, "erp", secret, office)
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := svc.IssueToken(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(clock.Now().Add(5 * time.Minute)) {
		t.Errorf("expiry %s", exp)
	}
	bp, err := svc.AuthenticateBearer(ctx, tok, office)
	if err != nil || bp.Name != "erp" || !slices.Equal(bp.Factors, []Factor{FactorClientSecret, FactorBearer}) {
		t.Fatalf("bearer: %+v, %v", bp, err)
	}
	if _, _, err := svc.IssueToken(ctx, bp); fault.CodeOf(err) != CodeOperationNotPermitted {
		t.Fatalf("a bearer token minting another: %v", err)
	}
	clock.Add(5 * time.Minute)
	if _, err := svc.AuthenticateBearer(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("expired bearer: %v", err)
	}

	tok, _, _ = svc.IssueToken(ctx, p)
	if err := svc.EndToken(ctx, tok, "process:erp"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateBearer(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("revoked bearer: %v", err)
	}

	tok, _, _ = svc.IssueToken(ctx, p)
	if err := svc.RevokeProcess(ctx, "erp", "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateBearer(ctx, tok, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("bearer of a revoked process: %v", err)
	}
}
