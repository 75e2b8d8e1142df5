package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/loopback"
)

// reply is a response of the sessions or admin routes, read whole.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// code is the problem code of an error reply.
func (r reply) code() string { s, _ := r.body["code"].(string); return s }

// call sends a JSON request from client c, with a bearer token and extra
// headers when given.
func call(t *testing.T, c *http.Client, method, u, bearer string, body any, header map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	if r.raw, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(r.raw, &r.body)
	return r
}

// login posts a session login from client c.
func (n *node) login(t *testing.T, c *http.Client, user, password, code string, header map[string]string) reply {
	t.Helper()
	return call(t, c, http.MethodPost, n.URL+"/api/v1/sessions", "", map[string]string{"username": user, "password": password, "totp": code}, header)
}

// wantLocked fails unless r is a lockout's 429 whose Retry-After is the
// rest of a lock of at most max.
func wantLocked(t *testing.T, what string, r reply, max time.Duration) {
	t.Helper()
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != http.StatusTooManyRequests || r.code() != string(access.CodeAccountLocked) || err != nil || secs < 1 || secs > int(max.Seconds()) {
		t.Fatalf("%s: status %d, Retry-After %q, %s; want 429 account_locked with Retry-After 1..%d",
			what, r.status, r.header.Get("Retry-After"), r.raw, int(max.Seconds()))
	}
}

// addUser adds a local user with a password and returns the password.
func (n *node) addUser(t *testing.T, login string, roles ...string) string {
	t.Helper()
	pw := "pw-of-" + login + "-is-long-enough"
	if _, err := n.Access.AddUser(context.Background(), access.NewUser{Login: login, Password: pw, Roles: roles}, "test"); err != nil {
		t.Fatal(err)
	}
	return pw
}

// enrollTOTP gives login a confirmed TOTP key and returns a code function
// (the code for a time) and the recovery codes.
func (n *node) enrollTOTP(t *testing.T, login string) (func(time.Time) string, []string) {
	t.Helper()
	ctx := context.Background()
	en, err := n.Access.EnrollTOTP(ctx, login, "test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(en.URL)
	if err != nil {
		t.Fatal(err)
	}
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(key.Secret(), at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	recovery, err := n.Access.ConfirmTOTP(ctx, login, code(time.Now()), "test")
	if err != nil {
		t.Fatal(err)
	}
	return code, recovery
}

// TestAdminLogsInOnce enrolls TOTP for an admin, who logs in once with
// password and TOTP and then works through the admin API with the session
// token alone; logout and the idle timeout end the session.
func TestAdminLogsInOnce(t *testing.T) {
	n := newNode(t, func(doc map[string]any) { doc["access"] = map[string]any{"sessionIdleTimeout": "4s"} })
	pw := n.addUser(t, "root", access.RoleAdmin)
	code, recovery := n.enrollTOTP(t, "root")
	c := http.DefaultClient

	if r := n.login(t, c, "root", pw, "", nil); r.status != http.StatusUnauthorized || r.code() != string(access.CodeTOTPRequired) {
		t.Fatalf("login without TOTP: %d %s", r.status, r.raw)
	}
	// The confirmation used the current step; the next one is the first
	// code left, accepted within the allowed skew.
	next := code(time.Now().Add(30 * time.Second))
	if r := n.login(t, c, "root", "wrong password, long enough", next, nil); r.status != http.StatusUnauthorized || r.code() != string(access.CodeUnauthenticated) {
		t.Fatalf("wrong password: %d %s", r.status, r.raw)
	}
	r := n.login(t, c, "root", pw, next, nil)
	tok, _ := r.body["token"].(string)
	if r.status != http.StatusCreated || !strings.HasPrefix(tok, access.SessionTokenPrefix) || r.body["idleTimeout"] != 4.0 ||
		r.body["expiresIn"] != (8*time.Hour).Seconds() || fmt.Sprint(r.body["factors"]) != "[password totp]" {
		t.Fatalf("login with password and TOTP: %d %s", r.status, r.raw)
	}

	paths := []string{"/api/v1/admin/users", "/api/v1/admin/processes", "/api/v1/admin/users/root", "/api/v1/admin/rules", "/api/v1/admin/groups"}
	for i := range 50 {
		r := call(t, c, http.MethodGet, n.URL+paths[i%len(paths)], tok, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("admin call %d (%s) with the session: %d %s", i+1, paths[i%len(paths)], r.status, r.raw)
		}
	}
	if r := call(t, c, http.MethodDelete, n.URL+"/api/v1/sessions/current", tok, nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	for _, rq := range []struct{ method, path string }{{http.MethodGet, "/api/v1/admin/users"}, {http.MethodDelete, "/api/v1/sessions/current"}} {
		if r := call(t, c, rq.method, n.URL+rq.path, tok, nil, nil); r.status != http.StatusUnauthorized || r.code() != string(access.CodeUnauthenticated) {
			t.Fatalf("%s %s after logout: %d %s", rq.method, rq.path, r.status, r.raw)
		}
	}

	// The same code again is a replay (asked after the session calls, so
	// slow logins cannot idle the session out): refused as one, and
	// however often it comes it does not lock the account.
	for i := 1; i <= 7; i++ {
		if r := n.login(t, c, "root", pw, next, nil); r.status != http.StatusUnauthorized || r.code() != string(access.CodeTOTPReplayed) {
			t.Fatalf("replay %d: %d %s", i, r.status, r.raw)
		}
	}

	// A recovery code stands in for TOTP; a session unused for longer than
	// the idle timeout is over.
	r = n.login(t, c, "root", pw, recovery[0], nil)
	tok, _ = r.body["token"].(string)
	if r.status != http.StatusCreated {
		t.Fatalf("login with a recovery code: %d %s", r.status, r.raw)
	}
	if r := call(t, c, http.MethodGet, n.URL+"/api/v1/admin/users/root", tok, nil, nil); r.status != http.StatusOK || r.body["locks"] != nil {
		t.Fatalf("fresh session, root after replays (not locked): %d %s", r.status, r.raw)
	}
	time.Sleep(4500 * time.Millisecond)
	if r := call(t, c, http.MethodGet, n.URL+"/api/v1/admin/users", tok, nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("session idle past its timeout: %d %s", r.status, r.raw)
	}
}

// adminSession logs in a new admin with password and TOTP and returns the
// session token.
func (n *node) adminSession(t *testing.T) string {
	t.Helper()
	pw := n.addUser(t, "root", access.RoleAdmin)
	code, _ := n.enrollTOTP(t, "root")
	r := n.login(t, http.DefaultClient, "root", pw, code(time.Now().Add(30*time.Second)), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("admin login: %d %s", r.status, r.raw)
	}
	return r.body["token"].(string)
}

// TestFailedLoginsLockOnlyTheirSource: an attacker's failures lock the
// account for the attacker's address, not for its owner elsewhere; an
// admin lifts the lock at once; guessing across accounts locks the
// attacker's address.
func TestFailedLoginsLockOnlyTheirSource(t *testing.T) {
	n := newNode(t)
	alicePW, bobPW := n.addUser(t, "alice"), n.addUser(t, "bob")
	admin := n.adminSession(t)
	attacker, victim := loopback.Client("127.0.0.2"), loopback.Client("127.0.0.3")

	for i := 1; i <= 20; i++ {
		r := n.login(t, attacker, "alice", fmt.Sprintf("guess number %d", i), "", nil)
		if i <= 5 && r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, r.status, r.raw)
		}
		if i > 5 {
			wantLocked(t, fmt.Sprintf("guess %d", i), r, time.Minute)
		}
	}
	wantLocked(t, "alice's password from the attacker's address", n.login(t, attacker, "alice", alicePW, "", nil), time.Minute)
	for _, u := range []struct{ login, pw string }{{"alice", alicePW}, {"bob", bobPW}} {
		if r := n.login(t, victim, u.login, u.pw, "", nil); r.status != http.StatusCreated {
			t.Fatalf("%s from another address after 20 failures: %d %s", u.login, r.status, r.raw)
		}
	}
	// Basic on a sealing route is held to the same lock.
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/api/v1/seals", nil)
	req.SetBasicAuth("alice", alicePW)
	resp, err := attacker.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("Basic from the attacker's address: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}

	r := call(t, http.DefaultClient, http.MethodGet, n.URL+"/api/v1/admin/users/alice", admin, nil, nil)
	locks, _ := r.body["locks"].([]any)
	if r.status != http.StatusOK || len(locks) != 1 || locks[0].(map[string]any)["source"] != "127.0.0.2" {
		t.Fatalf("alice's locks in the admin API: %d %s", r.status, r.raw)
	}
	if r := call(t, http.DefaultClient, http.MethodPost, n.URL+"/api/v1/admin/users/alice/unlock", admin, nil, nil); r.status != http.StatusOK || r.body["locksLifted"] != 1.0 {
		t.Fatalf("unlock through the admin API: %d %s", r.status, r.raw)
	}
	if r := n.login(t, attacker, "alice", alicePW, "", nil); r.status != http.StatusCreated {
		t.Fatalf("alice from 127.0.0.2 once unlocked: %d %s", r.status, r.raw)
	}

	// Spraying: 20 failures over many names lock the address itself (the
	// five guesses at alice count too: a good login does not reset them).
	for i := 1; i <= 15; i++ {
		if r := n.login(t, attacker, fmt.Sprintf("user%d", i), "spray password one", "", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("spray %d: %d %s", i, r.status, r.raw)
		}
	}
	r = n.login(t, attacker, "bob", bobPW, "", nil)
	wantLocked(t, "bob from the spraying address", r, time.Minute)
	if !strings.Contains(r.body["detail"].(string), "from 127.0.0.2") {
		t.Fatalf("the spraying lock does not name the address: %s", r.raw)
	}
	if r := n.login(t, victim, "bob", bobPW, "", nil); r.status != http.StatusCreated {
		t.Fatalf("bob from another address: %d %s", r.status, r.raw)
	}
}

// TestTrustedProxy: behind a trusted reverse proxy the client named in
// X-Forwarded-For is the source, so one client's failures do not lock
// another behind the same proxy; a certificate the proxy passes on
// authenticates a process. The same headers from anyone else are ignored.
func TestTrustedProxy(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["access"] = map[string]any{"trustedProxies": []string{"127.0.0.1/32"}, "clientCertHeader": "X-Client-Cert"}
	})
	alicePW := n.addUser(t, "alice")
	proxy, stranger := loopback.Client("127.0.0.1"), loopback.Client("127.0.0.2")
	xff := func(v string) map[string]string { return map[string]string{"X-Forwarded-For": v} }

	for i := 1; i <= 20; i++ {
		r := n.login(t, proxy, "alice", fmt.Sprintf("guess number %d", i), "", xff("198.51.100.7"))
		if i <= 5 && r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d through the proxy: %d %s", i, r.status, r.raw)
		}
		if i > 5 {
			wantLocked(t, fmt.Sprintf("guess %d through the proxy", i), r, time.Minute)
		}
	}
	if r := n.login(t, proxy, "alice", alicePW, "", xff("198.51.100.8")); r.status != http.StatusCreated {
		t.Fatalf("alice from another client behind the proxy: %d %s", r.status, r.raw)
	}
	// Only the right-most untrusted hop counts: what the attacker puts in
	// front of it changes nothing.
	wantLocked(t, "attacker with a forged first hop", n.login(t, proxy, "alice", alicePW, "", xff("198.51.100.8, 198.51.100.7")), time.Minute)
	if r := n.login(t, proxy, "alice", alicePW, "", xff("not an address")); r.status != http.StatusBadRequest || r.code() != "forwarded_invalid" {
		t.Fatalf("malformed X-Forwarded-For from the proxy: %d %s", r.status, r.raw)
	}

	// From an untrusted peer the header is ignored: its failures count
	// against its own address, whatever client it claims to forward.
	for i := 1; i <= 5; i++ {
		if r := n.login(t, stranger, "alice", "a wrong password", "", xff(fmt.Sprintf("198.51.100.%d", 20+i))); r.status != http.StatusUnauthorized {
			t.Fatalf("stranger's guess %d: %d %s", i, r.status, r.raw)
		}
	}
	wantLocked(t, "stranger claiming yet another client", n.login(t, stranger, "alice", alicePW, "", xff("198.51.100.99")), time.Minute)

	// A client certificate passed on by the proxy, URL-encoded as nginx's
	// $ssl_client_escaped_cert, maps to the process pinned to it.
	// The proxy verified it against the client CA; sealgate pins its
	// fingerprint, whatever the certificate's purpose, so one from the
	// node's development CA will do.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := n.CA.IssueSeal(&key.PublicKey, devpki.SealSubject{Organization: "ERP client"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	if err := n.Access.AddProcessCert(context.Background(), "erp", access.ProcessCert{Fingerprint: hex.EncodeToString(sum[:])}, "test"); err != nil {
		t.Fatal(err)
	}
	escaped := url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))
	certHeader := map[string]string{"X-Client-Cert": escaped, "X-Forwarded-For": "198.51.100.30"}
	if r := call(t, proxy, http.MethodGet, n.URL+"/api/v1/seals", "", nil, certHeader); r.status != http.StatusOK || fmt.Sprint(r.body["seals"]) != "[acme]" {
		t.Fatalf("seals of the certificate's process through the proxy: %d %s", r.status, r.raw)
	}
	if r := call(t, stranger, http.MethodGet, n.URL+"/api/v1/seals", "", nil, certHeader); r.status != http.StatusUnauthorized {
		t.Fatalf("the same header from a stranger must leave it anonymous: %d %s", r.status, r.raw)
	}
	if r := call(t, proxy, http.MethodGet, n.URL+"/api/v1/seals", "", nil, map[string]string{"X-Client-Cert": "garbage"}); r.status != http.StatusBadRequest || r.code() != "client_cert_header_invalid" {
		t.Fatalf("garbage certificate header from the proxy: %d %s", r.status, r.raw)
	}
}
