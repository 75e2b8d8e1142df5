package access

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	secret := newClientSecret()
	token := newToken(tokenBearer)
	session := newToken(tokenSession)
	for _, tc := range []struct{ in, want string }{
		{"user:" + secret, "user:sgp_[redacted]"},
		{"Bearer " + token + " and " + session, "Bearer sgt_[redacted] and sgs_[redacted]"},
		{"a=" + secret + ":dev", "a=sgp_[redacted]:dev"},
		{`must not start with "sgp_"`, `must not start with "sgp_"`},
		{"user:alice", "user:alice"},
		{"", ""},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// No line written through RedactingHandler holds a secret, whichever part
// of the record carried it.
func TestRedactingHandler(t *testing.T) {
	secret := newClientSecret()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&buf, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&buf, nil)
			}
			log := slog.New(RedactingHandler(h)).With("principal", "user:"+secret)
			log.Info("login of "+secret,
				"err", errors.New("bad credentials "+secret),
				slog.Group("request", "authorization", "Basic "+secret, "status", 401),
				"names", []string{"alice", secret},
				"count", 3)
			log.WithGroup("g").Warn("clean", "login", secret)
			out := buf.String()
			if strings.Contains(out, secret[len(ClientSecretPrefix):]) {
				t.Fatalf("a secret was logged:\n%s", out)
			}
			if n := strings.Count(out, ClientSecretPrefix+redacted); n != 7 {
				t.Errorf("%d redactions, want 7:\n%s", n, out)
			}
			if !strings.Contains(out, "count=3") && !strings.Contains(out, `"count":3`) {
				t.Errorf("a clean attribute was changed:\n%s", out)
			}
		})
	}
}

// A client secret typed into the login field is neither logged nor kept in
// the audit trail.
func TestSecretAsLoginNotRecorded(t *testing.T) {
	ctx := context.Background()
	env := openTestService(t, func(o *Options) { o.Logger = slog.New(RedactingHandler(o.Logger.Handler())) })
	secret := newClientSecret()
	if _, err := env.svc.AuthenticateUser(ctx, UserCredentials{Login: secret, Password: "dev", Source: office}); err == nil {
		t.Fatal("a secret as login was accepted")
	}
	events, err := env.svc.AuditEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range events {
		if strings.Contains(e.Actor+e.Subject+strings.Join(slices.Collect(maps.Values(e.Detail)), ","), secret) {
			t.Errorf("audit event %d holds the secret: %+v", e.ID, e)
		}
		found = found || e.Actor == "user:sgp_[redacted]"
	}
	if !found {
		t.Errorf("no failed login by user:sgp_[redacted] in the audit trail: %+v", events)
	}
	if logs := env.logs.String(); strings.Contains(logs, secret) || !strings.Contains(logs, "user:sgp_[redacted]") {
		t.Errorf("log lines:\n%s", logs)
	}
	if rep, err := env.svc.VerifyAudit(ctx); err != nil || !rep.OK {
		t.Fatalf("audit chain after redaction: %+v, %v", rep, err)
	}
}
