package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/internal/loopback"
)

// TestNoSecretInLogs runs the binary from its first start through sealing
// with a client secret and a bearer token, failed logins with secrets in the
// wrong fields, a TOTP enrollment and an admin login with a recovery code,
// and a restart, then looks for every secret the run made or received in
// every line the server and the commands wrote.
func TestNoSecretInLogs(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var commandErrors bytes.Buffer
	cli := runner(t, data, &commandErrors)
	addr := loopback.FreeAddr(t)
	d := startServe(t, data, addr, "--log-level", "debug")
	creds := readCredentials(t, data)
	secrets := map[string]string{
		"admin one-time password": creds.AdminPassword,
		"client secret":           creds.ClientSecret,
	}
	for name, file := range map[string]string{"card PIN": "secrets/dev-seal-pin", "secrets key": "secrets.key"} {
		b, err := os.ReadFile(filepath.Join(data, file))
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = strings.TrimSpace(string(b))
	}
	call := func(method, path string, header http.Header, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, d.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if strings.HasSuffix(path, "/oauth/token") && resp.StatusCode == http.StatusOK {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
				t.Fatalf("token response: %v", err)
			}
			secrets["access token"] = tok.AccessToken
		}
		return resp.StatusCode
	}
	basic := func(user, password string) http.Header {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(user, password)
		return req.Header
	}
	expect := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: status %d, want %d", what, got, want)
		}
	}
	const seal = "/api/v1/seals?format=cades"

	expect("seal with the client secret", call("POST", seal, basic(creds.ClientID, creds.ClientSecret), "order 1"), 200)
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range basic(creds.ClientID, creds.ClientSecret) {
		form[k] = v
	}
	expect("token", call("POST", "/api/v1/oauth/token", form, url.Values{"grant_type": {"client_credentials"}}.Encode()), 200)
	expect("seal with the token", call("POST", seal, http.Header{"Authorization": {"Bearer " + secrets["access token"]}}, "order 2"), 200)

	// Secrets where they do not belong.
	made := "sgp_" + randomText(t)
	secrets["client secret typed as a login"] = made
	secrets["wrong admin password"] = "not-the-admin-password-" + randomText(t)
	secrets["unknown token"] = "sgt_" + randomText(t)
	expect("client secret as login", call("POST", seal, basic(creds.ClientSecret, "dev"), "x"), 401)
	expect("made-up secret as login", call("POST", seal, basic(made, "dev"), "x"), 401)
	expect("wrong admin password", call("GET", "/api/v1/admin/users", basic("admin", secrets["wrong admin password"]), ""), 401)
	expect("unknown token", call("POST", seal, http.Header{"Authorization": {"Bearer " + secrets["unknown token"]}}, "x"), 401)
	// Not an option: refused by name (never by value) before any sealing.
	expect("token in the query", call("POST", seal+"&access_token="+secrets["access token"], nil, "x"), 400)

	// TOTP for the admin, then an admin call with password and recovery code.
	enroll := cli("--log-level", "debug", "user", "totp-enroll", "admin")
	m := regexp.MustCompile(`otpauth://\S+`).FindString(enroll)
	u, err := url.Parse(m)
	if err != nil || u.Query().Get("secret") == "" {
		t.Fatalf("totp-enroll printed %q", enroll)
	}
	secrets["TOTP key"] = u.Query().Get("secret")
	code, err := totp.GenerateCode(secrets["TOTP key"], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	confirmed := cli("--log-level", "debug", "user", "totp-confirm", "admin", code)
	recovery := regexp.MustCompile(`(?m)^\S{8,}$`).FindAllString(confirmed, -1)
	if len(recovery) < 2 {
		t.Fatalf("totp-confirm printed %q", confirmed)
	}
	for i, c := range recovery {
		secrets["recovery code "+string(rune('a'+i))] = c
	}
	admin := basic("admin", creds.AdminPassword)
	admin.Set("Sealgate-OTP", recovery[0])
	expect("admin with password and recovery code", call("GET", "/api/v1/admin/users", admin, ""), 200)
	admin.Set("Sealgate-OTP", "000000")
	expect("admin with a wrong code", call("GET", "/api/v1/admin/users", admin, ""), 401)

	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	d2 := startServe(t, data, addr, "--log-level", "debug")
	expect("seal after the restart", call("POST", seal, basic(creds.ClientID, creds.ClientSecret), "order 3"), 200)
	d2.cmd.Process.Signal(syscall.SIGTERM)
	d2.cmd.Wait()

	logs := d.output.String() + d2.output.String() + commandErrors.String()
	lines := strings.Count(logs, "\n")
	for name, secret := range secrets {
		if secret == "" {
			t.Fatalf("%s is empty", name)
		}
		for i, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("the %s is in log line %d: %s", name, i+1, line)
			}
		}
	}
	// The failed logins were logged, without what was typed.
	if n := strings.Count(logs, "principal=user:sgp_[redacted]"); n != 2 {
		t.Errorf("%d failed logins by user:sgp_[redacted] logged, want 2", n)
	}
	if !strings.Contains(d.output.String(), "its one-time password is in") {
		t.Error("the first start does not name the file holding the admin's password")
	}
	t.Logf("%d secrets looked for in %d log lines", len(secrets), lines)
}

// randomText is 16 random bytes in base64url, shaped like a secret's body.
func randomText(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
