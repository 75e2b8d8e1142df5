package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// orgDirectory starts slapd with ldapsync/testdata/org.ldif and returns it
// with the configuration edit that gives a node its ldap section.
func orgDirectory(t *testing.T) (*ldaptest.Server, func(doc map[string]any)) {
	t.Helper()
	dir := ldaptest.Start(t, ldaptest.Options{})
	org, err := os.ReadFile("../ldapsync/testdata/org.ldif")
	if err != nil {
		t.Fatal(err)
	}
	dir.Apply(t, string(org))
	pw := filepath.Join(t.TempDir(), "bind.pw")
	if err := os.WriteFile(pw, []byte(ldaptest.ServicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, func(doc map[string]any) {
		doc["ldap"] = map[string]any{
			"urls":         []string{dir.URL},
			"plaintext":    true,
			"bindDN":       ldaptest.ServiceDN,
			"bindPassword": map[string]string{"file": pw},
			"users":        map[string]string{"baseDN": "ou=people," + ldaptest.Suffix},
			"groups":       map[string]string{"baseDN": "ou=groups," + ldaptest.Suffix},
		}
	}
}

// TestDirectoryDrivesSealRights runs the directory story over HTTP: an
// administrator process syncs the directory through the admin API (dry run
// first), a directory user seals with the directory password because the
// rule grants the seal to a directory group, leaving that group in the
// directory takes the right away at the next sync, and a directory that
// is down makes /readyz say so while nothing is removed.
func TestDirectoryDrivesSealRights(t *testing.T) {
	ctx := context.Background()
	dir, withLDAP := orgDirectory(t)
	n := newNode(t, withLDAP)
	_, adminSecret, err := n.Access.AddProcess(ctx, "ops", "directory operations", []string{access.RoleAdmin}, "test")
	if err != nil {
		t.Fatal(err)
	}
	sync := func(query string, wantStatus int) map[string]any {
		t.Helper()
		resp, body := n.post(t, "/api/v1/admin/directory/sync"+query, "ops", adminSecret, "", nil)
		var rep map[string]any
		if err := json.Unmarshal(body, &rep); err != nil || resp.StatusCode != wantStatus {
			t.Fatalf("sync%s: %s %s", query, resp.Status, body)
		}
		return rep
	}
	pdf := pdftest.Bytes(pdftest.Spec{})
	bobSeals := func() int {
		resp, body := n.post(t, "/api/v1/seals", "bob", "bob-pw", "application/pdf", bytes.NewReader(pdf))
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bob seals: %s %s", resp.Status, body)
		}
		return resp.StatusCode
	}

	if code := bobSeals(); code != http.StatusUnauthorized {
		t.Fatalf("bob before any sync: %d, want 401 (unknown to sealgate)", code)
	}
	sync("?dryRun=true", http.StatusOK)
	if users, _ := n.Access.ExternalUsers(ctx, "ldap"); len(users) != 0 {
		t.Fatalf("a dry run created %d users", len(users))
	}
	sync("", http.StatusOK)
	if code := bobSeals(); code != http.StatusForbidden {
		t.Fatalf("bob after the sync, before any rule: %d, want 403 (default deny)", code)
	}
	// The directory group exists now; the rule grants the seal to it.
	if _, err := n.Access.AddRule(ctx, access.Rule{Name: "sealers", Subject: access.Subject{Kind: access.SubjectGroup, Name: "sealers"}, Seals: []string{"acme"}}, "test"); err != nil {
		t.Fatal(err)
	}
	if code := bobSeals(); code != http.StatusOK {
		t.Fatalf("bob (finance ⊂ sealers) after the sync: %d, want 200", code)
	}

	dir.Apply(t, "dn: cn=finance,ou=groups,"+ldaptest.Suffix+"\nchangetype: modify\ndelete: member\nmember: uid=bob,ou=people,"+ldaptest.Suffix+"\n")
	sync("", http.StatusOK)
	if code := bobSeals(); code != http.StatusForbidden {
		t.Fatalf("bob left finance in the directory: %d, want 403", code)
	}

	before, _ := n.Access.ExternalUsers(ctx, "ldap")
	dir.Stop()
	resp, body := n.post(t, "/api/v1/admin/directory/sync", "ops", adminSecret, "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("sync with the directory down: %s %s, want 503", resp.Status, body)
	}
	after, _ := n.Access.ExternalUsers(ctx, "ldap")
	if len(after) != len(before) || len(after) == 0 {
		t.Errorf("a failed sync changed the users: %d before, %d after", len(before), len(after))
	}
	var ready struct {
		Ready     bool `json:"ready"`
		Directory struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"directory"`
	}
	if code := n.getAs(t, "/readyz", "ops", adminSecret, &ready); code != http.StatusServiceUnavailable || ready.Ready || ready.Directory.OK || ready.Directory.Error == "" {
		t.Errorf("/readyz with the directory down: %d %+v", code, ready)
	}
}
