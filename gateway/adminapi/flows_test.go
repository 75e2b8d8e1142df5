package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/gateway/problem"
)

// call sends one admin request as the holder of session and decodes the
// JSON answer into out (when not nil).
func (w *world) call(t *testing.T, session, method, path string, body any, wantStatus int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		w.must(t, err)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+session)
	resp, err := w.srv.Client().Do(req)
	w.must(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, wantStatus)
	}
	if out != nil {
		w.must(t, json.Unmarshal(raw, out))
	}
}

func TestAdminFlowsKeepSecretsOutOfLogsAndAudit(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	adaPW := w.addUser(t, "ada", access.RoleAdmin)
	admin := w.session(t, "ada", adaPW, w.enroll(t, "ada"))

	// Users: create, change the password, enroll a second factor, disable.
	newbiePW, newbiePW2 := "first-"+strings.Repeat("x", 12), "second-"+strings.Repeat("y", 12)
	w.secret = append(w.secret, newbiePW, newbiePW2)
	var u access.User
	w.call(t, admin, "POST", "/api/v1/admin/users", access.NewUser{Login: "newbie", Password: newbiePW}, 201, &u)
	if u.Login != "newbie" || u.Disabled {
		t.Fatalf("created %+v", u)
	}
	w.call(t, admin, "PUT", "/api/v1/admin/users/newbie/password", map[string]string{"password": newbiePW2}, 204, nil)
	if _, err := w.svc.AuthenticateUser(ctx, access.UserCredentials{Login: "newbie", Password: newbiePW}); err == nil {
		t.Fatal("old password still works")
	}
	if _, err := w.svc.AuthenticateUser(ctx, access.UserCredentials{Login: "newbie", Password: newbiePW2}); err != nil {
		t.Fatalf("new password: %v", err)
	}
	var en access.TOTPEnrollment
	w.call(t, admin, "POST", "/api/v1/admin/users/newbie/totp", nil, 200, &en)
	key, err := url.Parse(en.URL)
	w.must(t, err)
	w.secret = append(w.secret, key.Query().Get("secret"))
	if len(en.QRCode) == 0 {
		t.Fatal("no QR code")
	}
	w.call(t, admin, "POST", "/api/v1/admin/users/newbie/disable", nil, 204, nil)

	// Groups, processes and rules.
	w.call(t, admin, "POST", "/api/v1/admin/groups", map[string]any{"name": "billing", "requireTotp": true}, 201, nil)
	var created struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	w.call(t, admin, "POST", "/api/v1/admin/processes", map[string]any{"clientId": "invoicer"}, 201, &created)
	first := created.ClientSecret
	w.call(t, admin, "POST", "/api/v1/admin/processes/invoicer/secret", nil, 200, &created)
	w.secret = append(w.secret, first, created.ClientSecret)
	if first == created.ClientSecret || !strings.HasPrefix(first, access.ClientSecretPrefix) {
		t.Fatalf("rotation gave %q after %q", created.ClientSecret, first)
	}
	if _, err := w.svc.AuthenticateClientSecret(ctx, "invoicer", first, netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatal("the rotated-out secret still works")
	}
	w.token(t, "invoicer", created.ClientSecret)
	w.call(t, admin, "POST", "/api/v1/admin/rules", access.Rule{Name: "invoices", Subject: access.Subject{Kind: access.SubjectProcess, Name: "invoicer"},
		Seals: []string{"company"}, Formats: []string{"pades"}, DailyQuota: 1000}, 201, nil)
	var rules []access.Rule
	w.call(t, admin, "GET", "/api/v1/admin/rules", nil, 200, &rules)
	if len(rules) != 1 || rules[0].DailyQuota != 1000 || rules[0].Subject.Name != "invoicer" {
		t.Fatalf("rules %+v", rules)
	}
	var bad problem.Problem
	w.call(t, admin, "POST", "/api/v1/admin/rules", map[string]any{"name": "x", "sealz": []string{"*"}}, 400, &bad)
	if bad.Code != "bad_request" || !strings.Contains(bad.Detail, "sealz") {
		t.Fatalf("unknown field: %+v", bad)
	}
	w.call(t, admin, "DELETE", "/api/v1/admin/rules/invoices", nil, 204, nil)
	w.call(t, admin, "POST", "/api/v1/admin/processes/invoicer/revoke", nil, 204, nil)

	// Failed logins with guessed passwords are secrets too.
	for _, guess := range []string{"guess-one-secret", "guess-two-secret"} {
		w.secret = append(w.secret, guess)
		if _, err := w.svc.AuthenticateUser(ctx, access.UserCredentials{Login: "ada", Password: guess}); err == nil {
			t.Fatal("a guess worked")
		}
	}

	var rep access.AuditReport
	w.call(t, admin, "GET", "/api/v1/admin/audit/verify", nil, 200, &rep)
	if !rep.OK || rep.Count < 15 {
		t.Fatalf("audit report %+v", rep)
	}
	req, _ := http.NewRequest("GET", w.srv.URL+"/api/v1/admin/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := w.srv.Client().Do(req)
	w.must(t, err)
	trail, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if lines := bytes.Count(trail, []byte("\n")); uint64(lines) < rep.Count {
		t.Fatalf("export has %d lines for %d events", lines, rep.Count)
	}
	for _, want := range []string{`"type":"user.password"`, `"type":"process.secret.rotate"`, `"actor":"user:ada"`, `"outcome":"failed"`} {
		if !bytes.Contains(trail, []byte(want)) {
			t.Errorf("audit export lacks %s", want)
		}
	}
	assertNoSecrets(t, w.secret, map[string]string{"log": w.logs.String(), "audit trail": string(trail)})
}
