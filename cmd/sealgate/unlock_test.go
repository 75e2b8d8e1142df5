package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/internal/loopback"
)

// TestUnlockLiftsALockAtOnce locks the development admin and process out
// of a running `sealgate serve` from one address, sees the locks in the
// lists, and lifts them with `sealgate user unlock` / `process unlock`: the
// next right password gets in at once.
func TestUnlockLiftsALockAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the sealgate binary")
	}
	data := filepath.Join(t.TempDir(), "data")
	d := startServe(t, data, loopback.FreeAddr(t))
	creds := readCredentials(t, data)
	client := loopback.Client("127.0.0.2")
	login := func(pw string) *http.Response {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"username": creds.AdminLogin, "password": pw})
		resp, err := client.Post(d.url+"/api/v1/sessions", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	seals := func(secret string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, d.url+"/api/v1/seals", nil)
		req.SetBasicAuth(creds.ClientID, secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := 0; i < 5; i++ {
		if resp := login("not the admin password"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong admin password %d: %s", i+1, resp.Status)
		}
		if resp := seals("sgp_not-the-secret"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong client secret %d: %s", i+1, resp.Status)
		}
	}
	if resp := login(creds.AdminPassword); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right admin password while locked: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if resp := seals(creds.ClientSecret); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right client secret while locked: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}

	locked := regexp.MustCompile(`until \S+ \(127\.0\.0\.2\)`)
	for _, tt := range []struct {
		newCmd   func(*app) *cobra.Command
		name     string
		tryAgain func() *http.Response
		want     int
	}{
		{newUserCmd, creds.AdminLogin, func() *http.Response { return login(creds.AdminPassword) }, http.StatusCreated},
		{newProcessCmd, creds.ClientID, func() *http.Response { return seals(creds.ClientSecret) }, http.StatusOK},
	} {
		out, err := runAccessCLI(t, data, tt.newCmd, "list")
		if err != nil || !lineOf(out, tt.name, locked) {
			t.Fatalf("list does not show %s locked for 127.0.0.2: %v\n%s", tt.name, err, out)
		}
		if out, err := runAccessCLI(t, data, tt.newCmd, "unlock", tt.name); err != nil || !strings.Contains(out, "(1 locks lifted)") {
			t.Fatalf("unlock %s: %v\n%s", tt.name, err, out)
		}
		if resp := tt.tryAgain(); resp.StatusCode != tt.want {
			t.Fatalf("%s right after unlock: %s", tt.name, resp.Status)
		}
		if out, _ := runAccessCLI(t, data, tt.newCmd, "list"); lineOf(out, tt.name, regexp.MustCompile(`until `)) {
			t.Fatalf("list still shows %s locked:\n%s", tt.name, out)
		}
	}
}

// lineOf reports whether the table line of name matches re.
func lineOf(table, name string, re *regexp.Regexp) bool {
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, name+" ") && re.MatchString(l) {
			return true
		}
	}
	return false
}
