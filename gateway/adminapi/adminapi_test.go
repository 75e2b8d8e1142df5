package adminapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/adminapi"
	"github.com/sealgate/sealgate/gateway/engine"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/store"
)

// Outcomes of one cell of the authorization matrix.
const (
	allow  = "allow"  // 2xx, or Decide allows
	deny   = "deny"   // 403 Forbidden
	unauth = "unauth" // 401 Unauthorized
)

// creds are what one kind of caller presents.
type creds struct {
	user, password string // HTTP Basic
	bearer         string // Authorization: Bearer
	cert           *tls.Certificate
}

func (c creds) apply(r *http.Request) {
	switch {
	case c.user != "":
		r.SetBasicAuth(c.user, c.password)
	case c.bearer != "":
		r.Header.Set("Authorization", "Bearer "+c.bearer)
	}
}

// column is one thing a caller may try: an admin endpoint, or a Decide
// action (where the seal endpoints will join the table).
type column struct {
	name   string
	method string
	path   string
	body   string // %s is replaced by a per-row name, for creations
	action *access.Action
}

// world is a sealgate with users, processes and rules, served over TLS.
type world struct {
	svc    *access.Service
	auth   *httpauth.Authenticator
	srv    *httptest.Server
	clock  *clock
	logs   *syncBuffer
	secret []string // every secret handed out, to look for in logs
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{clock: &clock{t: time.Date(2026, 11, 23, 12, 0, 10, 0, time.UTC)}, logs: &syncBuffer{}}
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.svc, err = access.Open(ctx, db, access.Options{
		Logger: log, Now: w.clock.Now,
		Password: access.PasswordParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1},
		// The matrix fails on purpose many times with one account from one
		// address; lockout has its own tests.
		Lockout: access.LockoutPolicy{PairFailures: 10000, AccountFailures: 10000, SourceFailures: 10000},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.svc.Close() })
	w.auth = httpauth.New(w.svc, httpauth.Options{Logger: log})
	e := engine.New(log)
	adminapi.Register(e, w.svc, w.auth, adminapi.Options{Logger: log})
	e.POST("/api/v1/oauth/token", engine.Std(w.auth.TokenHandler()))
	w.srv = httptest.NewUnstartedServer(e)
	w.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	w.srv.StartTLS()
	t.Cleanup(w.srv.Close)
	return w
}

func (w *world) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) addUser(t *testing.T, login string, roles ...string) string {
	t.Helper()
	pw := "pw-" + login + "-" + hex.EncodeToString(randomBytes(t, 8))
	_, err := w.svc.AddUser(context.Background(), access.NewUser{Login: login, Password: pw, Roles: roles}, "test")
	w.must(t, err)
	w.secret = append(w.secret, pw)
	return pw
}

// enroll gives login a TOTP key and returns a function producing the
// next unused code (the clock moves one step per code).
func (w *world) enroll(t *testing.T, login string) func() string {
	t.Helper()
	ctx := context.Background()
	en, err := w.svc.EnrollTOTP(ctx, login, "test")
	w.must(t, err)
	key, err := otp.NewKeyFromURL(en.URL)
	w.must(t, err)
	next := func() string {
		code, err := totp.GenerateCode(key.Secret(), w.clock.Now())
		w.must(t, err)
		w.clock.Add(30 * time.Second)
		return code
	}
	recovery, err := w.svc.ConfirmTOTP(ctx, login, next(), "test")
	w.must(t, err)
	w.secret = append(w.secret, key.Secret())
	w.secret = append(w.secret, recovery...)
	return next
}

// session logs a user in with password and TOTP and returns its session token.
func (w *world) session(t *testing.T, login, pw string, code func() string) string {
	t.Helper()
	ctx := context.Background()
	p, err := w.svc.AuthenticateUser(ctx, access.UserCredentials{Login: login, Password: pw, OTP: code()})
	w.must(t, err)
	tok, _, err := w.svc.StartSession(ctx, p)
	w.must(t, err)
	w.secret = append(w.secret, tok)
	return tok
}

func (w *world) addProcess(t *testing.T, id string, roles ...string) string {
	t.Helper()
	_, secret, err := w.svc.AddProcess(context.Background(), id, "", roles, "test")
	w.must(t, err)
	w.secret = append(w.secret, secret)
	return secret
}

// token gets an access token from the real token endpoint.
func (w *world) token(t *testing.T, id, secret string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/api/v1/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := w.srv.Client().Do(req)
	w.must(t, err)
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	w.must(t, json.NewDecoder(resp.Body).Decode(&body))
	if resp.StatusCode != http.StatusOK || body.TokenType != "Bearer" || body.AccessToken == "" {
		t.Fatalf("token endpoint: %d %+v", resp.StatusCode, body)
	}
	w.secret = append(w.secret, body.AccessToken)
	return body.AccessToken
}

// try runs one cell: an HTTP request to the admin API, or Decide on the
// principal httpauth makes of a request with these credentials.
func (w *world) try(t *testing.T, c creds, col column, row string) string {
	t.Helper()
	if col.action != nil {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/seals", nil)
		r.RemoteAddr = "192.0.2.10:40000"
		c.apply(r)
		if c.cert != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.cert.Leaf}}
		}
		p, err := w.auth.Authenticate(r)
		if err == nil {
			_, err = w.svc.Decide(r.Context(), p, *col.action)
		}
		switch {
		case err == nil:
			return allow
		case fault.As(err) != nil && fault.As(err).Kind == fault.Unauthenticated:
			return unauth
		case fault.As(err) != nil && fault.As(err).Kind == fault.Forbidden:
			return deny
		}
		t.Fatalf("%s / %s: %v", row, col.name, err)
	}
	var body *strings.Reader
	if col.body != "" {
		body = strings.NewReader(fmt.Sprintf(col.body, strings.ReplaceAll(row, " ", "-")))
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(col.method, w.srv.URL+col.path, body)
	c.apply(req)
	client := w.srv.Client()
	if c.cert != nil {
		tr := client.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{*c.cert}
		client = &http.Client{Transport: tr}
	}
	resp, err := client.Do(req)
	w.must(t, err)
	defer resp.Body.Close()
	var p problem.Problem
	if resp.StatusCode/100 != 2 {
		w.must(t, json.NewDecoder(resp.Body).Decode(&p))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	switch {
	case resp.StatusCode/100 == 2:
		return allow
	case resp.StatusCode == http.StatusForbidden:
		if resp.Header.Get("Content-Type") != "application/problem+json" || p.Code != string(access.CodeOperationNotPermitted) {
			t.Errorf("%s / %s: 403 is not a problem with code %s: %+v", row, col.name, access.CodeOperationNotPermitted, p)
		}
		return deny
	case resp.StatusCode == http.StatusUnauthorized:
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") || p.Code == "" {
			t.Errorf("%s / %s: 401 without WWW-Authenticate or code: %+v", row, col.name, p)
		}
		return unauth
	}
	t.Fatalf("%s / %s: status %d %+v", row, col.name, resp.StatusCode, p)
	return ""
}

func TestAuthorizationMatrix(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)

	umaPW := w.addUser(t, "uma")
	tessPW := w.addUser(t, "tess")
	adaPW := w.addUser(t, "ada", access.RoleAdmin)
	adamPW := w.addUser(t, "adam", access.RoleAdmin) // no second factor enrolled
	audreyPW := w.addUser(t, "audrey", access.RoleAuditor)
	_, err := w.svc.AddGroup(ctx, "staff", false, "test")
	w.must(t, err)
	w.must(t, w.svc.AddMember(ctx, "staff", "uma", "test"))
	w.must(t, w.svc.AddMember(ctx, "staff", "tess", "test"))
	tessSession := w.session(t, "tess", tessPW, w.enroll(t, "tess"))
	adaSession := w.session(t, "ada", adaPW, w.enroll(t, "ada"))

	erpSecret := w.addProcess(t, "erp")
	opsSecret := w.addProcess(t, "ops", access.RoleAdmin)
	w.addProcess(t, "certproc")
	oldSecret := w.addProcess(t, "oldproc")
	w.must(t, w.svc.RevokeProcess(ctx, "oldproc", "test"))
	cert := clientCert(t, "certproc.example.test")
	w.must(t, w.svc.AddProcessCert(ctx, "certproc", access.ProcessCert{Fingerprint: fingerprint(cert.Leaf)}, "test"))

	for _, r := range []access.Rule{
		{Name: "staff-company", Subject: access.Subject{Kind: access.SubjectGroup, Name: "staff"}, Seals: []string{"company"}, Strength: access.StrengthPassword},
		{Name: "tess-contracts", Subject: access.Subject{Kind: access.SubjectUser, Name: "tess"}, Seals: []string{"contracts"}, Strength: access.StrengthPasswordTOTP},
		{Name: "erp-company", Subject: access.Subject{Kind: access.SubjectProcess, Name: "erp"}, Seals: []string{"company"}, Strength: access.StrengthClientSecret},
		{Name: "certproc-company", Subject: access.Subject{Kind: access.SubjectProcess, Name: "certproc"}, Seals: []string{"company"}, Strength: access.StrengthClientCert},
	} {
		_, err := w.svc.AddRule(ctx, r, "test")
		w.must(t, err)
	}
	expired := w.token(t, "erp", erpSecret)
	w.clock.Add(11 * time.Minute) // past the 10-minute token lifetime
	erpBearer := w.token(t, "erp", erpSecret)

	seal := func(id string) *access.Action {
		return &access.Action{Operation: access.OpSeal, Seal: id, Format: "pades", Level: "B-B", Documents: 1}
	}
	columns := []column{
		{name: "list users", method: "GET", path: "/api/v1/admin/users"},
		{name: "add group", method: "POST", path: "/api/v1/admin/groups", body: `{"name":"g-%s"}`},
		{name: "list rules", method: "GET", path: "/api/v1/admin/rules"},
		{name: "read audit", method: "GET", path: "/api/v1/admin/audit"},
		{name: "verify audit", method: "GET", path: "/api/v1/admin/audit/verify"},
		{name: "seal company", action: seal("company")},
		{name: "seal contracts", action: seal("contracts")},
		{name: "verify", action: &access.Action{Operation: access.OpVerify}},
	}
	rows := []struct {
		name  string
		creds creds
		want  []string // one per column
	}{
		{"anonymous", creds{}, []string{unauth, unauth, unauth, unauth, unauth, unauth, unauth, allow}},
		{"user password", creds{user: "uma", password: umaPW}, []string{deny, deny, deny, deny, deny, allow, deny, allow}},
		{"user password+totp", creds{bearer: tessSession}, []string{deny, deny, deny, deny, deny, allow, allow, allow}},
		{"admin password+totp", creds{bearer: adaSession}, []string{allow, allow, allow, allow, allow, deny, deny, allow}},
		{"admin without its TOTP code", creds{user: "ada", password: adaPW}, []string{unauth, unauth, unauth, unauth, unauth, unauth, unauth, unauth}},
		{"admin password only", creds{user: "adam", password: adamPW}, []string{deny, deny, deny, allow, allow, deny, deny, allow}},
		{"auditor", creds{user: "audrey", password: audreyPW}, []string{deny, deny, deny, allow, allow, deny, deny, allow}},
		{"process basic", creds{user: "erp", password: erpSecret}, []string{deny, deny, deny, deny, deny, allow, deny, allow}},
		{"process bearer", creds{bearer: erpBearer}, []string{deny, deny, deny, deny, deny, allow, deny, allow}},
		{"process client cert", creds{cert: cert}, []string{deny, deny, deny, deny, deny, allow, deny, allow}},
		{"admin process", creds{user: "ops", password: opsSecret}, []string{allow, allow, allow, allow, allow, deny, deny, allow}},
		{"expired bearer", creds{bearer: expired}, []string{unauth, unauth, unauth, unauth, unauth, unauth, unauth, unauth}},
		{"revoked process", creds{user: "oldproc", password: oldSecret}, []string{unauth, unauth, unauth, unauth, unauth, unauth, unauth, unauth}},
	}
	for _, row := range rows {
		if len(row.want) != len(columns) {
			t.Fatalf("row %s has %d cells for %d columns", row.name, len(row.want), len(columns))
		}
		for i, col := range columns {
			if got := w.try(t, row.creds, col, row.name); got != row.want[i] {
				t.Errorf("%s / %s: %s, want %s", row.name, col.name, got, row.want[i])
			}
		}
	}

	// Everything above was audited, the trail is intact, and no secret
	// reached a log line or an audit event.
	rep, err := w.svc.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("audit: %+v, %v", rep, err)
	}
	var trail bytes.Buffer
	w.must(t, w.svc.ExportAudit(ctx, &trail, 0))
	assertNoSecrets(t, w.secret, map[string]string{"log": w.logs.String(), "audit trail": trail.String()})
}

func assertNoSecrets(t *testing.T, secrets []string, texts map[string]string) {
	t.Helper()
	for name, text := range texts {
		if text == "" {
			t.Errorf("%s is empty: nothing was checked", name)
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains a secret (%.6s…)", name, s)
			}
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// clientCert makes a self-signed TLS client certificate.
func clientCert(t *testing.T, cn string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
