package ldapsync

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// TestAuthenticate is the specification of directory logins: the right
// password yields the user's entryUUID; every refusal has the same code and
// the same message as an unknown user.
func TestAuthenticate(t *testing.T) {
	s := startOrg(t)
	var logs bytes.Buffer
	a, err := NewAuthenticator(testConfig(t, s), slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, secret := range []string{"ann-pw", "bob-pw", "eve-pw", ldaptest.ServicePassword} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("a password is in the log:\n%s", logs.String())
			}
		}
		if !strings.Contains(logs.String(), "account disabled") {
			t.Errorf("refusals are not logged with their reason:\n%s", logs.String())
		}
	})
	ctx := context.Background()
	_, err = a.Authenticate(ctx, "nobody", "whatever")
	if fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("unknown user: %v", err)
	}
	unknownMsg := fault.As(err).Msg
	tests := []struct {
		name, login, password string
		ok                    bool
	}{
		{"right password", "ann", "ann-pw", true},
		{"login is case-insensitive in the directory", "ANN", "ann-pw", true},
		{"wrong password", "ann", "bob-pw", false},
		{"empty password", "ann", "", false},
		{"disabled account with its right password", "eve", "eve-pw", false},
		{"filter injection", "*)(uid=*))(|(uid=*", "ann-pw", false},
		{"wildcard login", "*", "ann-pw", false},
		{"another user's password", "bob", "ann-pw", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Authenticate(ctx, tc.login, tc.password)
			if tc.ok {
				if err != nil {
					t.Fatalf("VerifyPassword: %v", err)
				}
				if want := entryUUID(t, s, "ann"); id != want {
					t.Fatalf("external id %q, want entryUUID %q", id, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("login %q accepted (id %q)", tc.login, id)
			}
			f := fault.As(err)
			if f == nil || f.Code != CodeUnauthenticated || f.Kind != fault.Unauthenticated {
				t.Fatalf("error %v, want code %s", err, CodeUnauthenticated)
			}
			// Same wording as for an unknown user, apart from the echoed login.
			if want := strings.Replace(unknownMsg, strconv.Quote("nobody"), strconv.Quote(tc.login), 1); f.Msg != want {
				t.Fatalf("message %q, want the unknown-user message %q", f.Msg, want)
			}
		})
	}
}

// hangingServer accepts connections and never answers, like a directory
// server whose process is stuck.
func hangingServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return "ldap://" + l.Addr().String()
}

// TestAuthenticateFailover proves logins try the next URL when a server is
// down or accepts connections without answering, and report
// directory_unavailable, not a wrong password, when none answers.
func TestAuthenticateFailover(t *testing.T) {
	s := startOrg(t)
	dead := ldaptest.Start(t, ldaptest.Options{})
	deadURL := dead.URL
	dead.Stop()
	cfg := testConfig(t, s)
	cfg.URLs = []string{deadURL, hangingServer(t), s.URL}
	cfg.RequestTimeout = 300 * time.Millisecond
	a, err := NewAuthenticator(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	if _, err := a.Authenticate(ctx, "ann", "ann-pw"); err != nil {
		t.Fatalf("with the first server down and the second stuck: %v", err)
	}
	// Two binds (service account, then ann) each wait out the stuck server once.
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("login took %v", took)
	}
	if _, err := a.Authenticate(ctx, "ann", "bob-pw"); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("a wrong password is a refusal, not a reason to try the next server: %v", err)
	}
	s.Stop()
	_, err = a.Authenticate(ctx, "ann", "ann-pw")
	if f := fault.As(err); f == nil || f.Code != CodeDirectoryUnavailable || f.Kind != fault.Unavailable {
		t.Fatalf("all servers down: %v, want %s", err, CodeDirectoryUnavailable)
	}
	if strings.Contains(err.Error(), ldaptest.ServicePassword) || strings.Contains(err.Error(), "ann-pw") {
		t.Fatalf("error reveals a password: %v", err)
	}
}

// TestVerifyPasswordChecksIdentity: access asks about a user it knows by
// external id; if the directory has since given that login to another
// entry, the right password of the new holder does not open the old account.
func TestVerifyPasswordChecksIdentity(t *testing.T) {
	s := startOrg(t)
	a, err := NewAuthenticator(testConfig(t, s), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ann := access.ExternalUser{Source: "ldap", ExternalID: entryUUID(t, s, "ann"), Login: "ann"}
	if err := a.VerifyPassword(ctx, ann, "ann-pw"); err != nil {
		t.Fatalf("ann: %v", err)
	}
	// ann leaves; a new entry gets the login ann.
	s.Apply(t, "dn: uid=ann,ou=people,"+ldaptest.Suffix+"\nchangetype: delete\n\n"+
		"dn: uid=ann,ou=people,"+ldaptest.Suffix+"\nobjectClass: inetOrgPerson\nuid: ann\ncn: Another Ann\nsn: Ann\nuserPassword: new-ann-pw\n")
	if err := a.VerifyPassword(ctx, ann, "new-ann-pw"); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("the new ann's password for the old ann's account: %v, want %s", err, CodeUnauthenticated)
	}
}
