package server_test

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
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/internal/pdftest"
)

// TestAuthorizationMatrix sends every REST route of the sealing, verification,
// evidence and admin surfaces as every kind of caller, and checks each cell.
// Sealing is granted by rules only: erp and alice by a rule each, carol by a
// rule that needs password and TOTP; intruder and the admin process ops have
// no seal rule; gone was revoked.
func TestAuthorizationMatrix(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	local := netip.MustParseAddr("127.0.0.1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const alicePW, carolPW = "alice-password-2026", "carol-password-2026"
	_, err := n.Access.AddUser(ctx, access.NewUser{Login: "alice", Password: alicePW}, "test")
	must(err)
	_, err = n.Access.AddUser(ctx, access.NewUser{Login: "carol", Password: carolPW}, "test")
	must(err)
	en, err := n.Access.EnrollTOTP(ctx, "carol", "test")
	must(err)
	key, err := otp.NewKeyFromURL(en.URL)
	must(err)
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(key.Secret(), at)
		must(err)
		return c
	}
	_, err = n.Access.ConfirmTOTP(ctx, "carol", code(time.Now().Add(-30*time.Second)), "test")
	must(err)
	_, err = n.Access.AddRule(ctx, access.Rule{Name: "alice", Subject: access.Subject{Kind: access.SubjectUser, Name: "alice"}, Seals: []string{"acme"}, Strength: access.StrengthPassword}, "test")
	must(err)
	_, err = n.Access.AddRule(ctx, access.Rule{Name: "carol", Subject: access.Subject{Kind: access.SubjectUser, Name: "carol"}, Seals: []string{"acme"}, Strength: access.StrengthPasswordTOTP}, "test")
	must(err)
	_, opsSecret, err := n.Access.AddProcess(ctx, "ops", "administration", []string{access.RoleAdmin}, "test")
	must(err)
	_, goneSecret, err := n.Access.AddProcess(ctx, "gone", "revoked", nil, "test")
	must(err)
	must(n.Access.RevokeProcess(ctx, "gone", "test"))

	carol, err := n.Access.AuthenticateUser(ctx, access.UserCredentials{Login: "carol", Password: carolPW, OTP: code(time.Now()), Source: local})
	must(err)
	carolSession, _, err := n.Access.StartSession(ctx, carol)
	must(err)
	erpToken := oauthToken(t, n.URL, n.ERPID, n.ERPSecret)

	basic := func(id, secret string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(id, secret) }
	}
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	callers := []struct {
		name string
		auth func(*http.Request)
	}{
		{"anonymous", func(*http.Request) {}},
		{"process basic", basic(n.ERPID, n.ERPSecret)},
		{"process bearer", bearer(erpToken)},
		{"process without rule", basic(n.IntruderID, n.IntruderSecret)},
		{"revoked process", basic("gone", goneSecret)},
		{"user password", basic("alice", alicePW)},
		{"user password+totp session", bearer(carolSession)},
		{"totp user without code", basic("carol", carolPW)},
		{"admin process", basic("ops", opsSecret)},
	}

	sealedPDF := func() []byte {
		resp, b := n.post(t, "/api/v1/seals", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdftest.Bytes(pdftest.Spec{})))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("seal: %s %s", resp.Status, b)
		}
		return b
	}()
	if _, err := n.Evidence.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	routes := []struct {
		name, method, path string
		body               func() io.Reader
	}{
		{"seal", "POST", "/api/v1/seals?format=cades", func() io.Reader { return strings.NewReader("order 42") }},
		{"list seals", "GET", "/api/v1/seals", nil},
		{"verify", "POST", "/api/v1/verifications", func() io.Reader { return bytes.NewReader(sealedPDF) }},
		{"checkpoint", "GET", "/api/v1/log/checkpoint", nil},
		{"admin users", "GET", "/api/v1/admin/users", nil},
		{"audit", "GET", "/api/v1/admin/audit", nil},
	}
	// want[caller][route]
	want := map[string][]int{
		"anonymous":                  {401, 401, 200, 200, 401, 401},
		"process basic":              {200, 200, 200, 200, 403, 403},
		"process bearer":             {200, 200, 200, 200, 403, 403},
		"process without rule":       {403, 200, 200, 200, 403, 403},
		"revoked process":            {401, 401, 200, 200, 401, 401},
		"user password":              {200, 200, 200, 200, 403, 403},
		"user password+totp session": {200, 200, 200, 200, 403, 403},
		"totp user without code":     {401, 401, 200, 200, 401, 401},
		"admin process":              {403, 200, 200, 200, 200, 200},
	}
	for _, c := range callers {
		for i, rt := range routes {
			var body io.Reader
			if rt.body != nil {
				body = rt.body()
			}
			req, err := http.NewRequest(rt.method, n.URL+rt.path, body)
			must(err)
			c.auth(req)
			resp, err := http.DefaultClient.Do(req)
			must(err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.StatusCode; got != want[c.name][i] {
				t.Errorf("%s × %s: %d, want %d (%s)", c.name, rt.name, got, want[c.name][i], bytes.TrimSpace(b))
			}
		}
	}
}

// oauthToken gets a bearer token with the client-credentials grant.
func oauthToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/api/v1/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %s %v", resp.Status, err)
	}
	return tok.AccessToken
}

// TestRuleSourceNetworksOverREST: a rule limited to source networks applies
// to a process calling over HTTP, judged by the connection's address.
func TestRuleSourceNetworksOverREST(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for _, c := range []struct {
		client, network string
		want            int
	}{{"office", "10.0.0.0/8", http.StatusForbidden}, {"local", "127.0.0.0/8", http.StatusOK}} {
		_, secret, err := n.Access.AddProcess(ctx, c.client, "", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Access.AddRule(ctx, access.Rule{Name: c.client, Subject: access.Subject{Kind: access.SubjectProcess, Name: c.client},
			Seals: []string{"acme"}, Networks: []string{c.network}}, "test"); err != nil {
			t.Fatal(err)
		}
		resp, b := n.post(t, "/api/v1/seals?format=cades", c.client, secret, "", strings.NewReader("order"))
		if resp.StatusCode != c.want {
			t.Errorf("process allowed from %s, calling from loopback: %s %s, want %d", c.network, resp.Status, b, c.want)
		}
	}
}
