package ldapsync

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/ldapsync/ldaptest"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/store"
)

// startOrg starts a slapd holding testdata/org.ldif, added through the
// server (so the memberof overlay maintains memberOf).
func startOrg(t testing.TB) *ldaptest.Server {
	t.Helper()
	s := ldaptest.Start(t, ldaptest.Options{})
	ldif, err := os.ReadFile("testdata/org.ldif")
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(t, string(ldif))
	return s
}

// testConfig is an OpenLDAP configuration for s, the service password in a file.
func testConfig(t testing.TB, s *ldaptest.Server) Config {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "bind.pw")
	if err := os.WriteFile(pw, []byte(ldaptest.ServicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		URLs:         []string{s.URL},
		Plaintext:    true,
		BindDN:       ldaptest.ServiceDN,
		BindPassword: secret.Ref{File: pw},
		Users:        UserMapping{BaseDN: "ou=people," + ldaptest.Suffix},
		Groups:       GroupMapping{BaseDN: "ou=groups," + ldaptest.Suffix},
	}
}

// entryUUID reads login's entryUUID with ldapsearch, independently of the
// code under test.
func entryUUID(t testing.TB, s *ldaptest.Server, login string) string {
	t.Helper()
	out := s.Search(t, ldaptest.Suffix, "(uid="+login+")", "entryUUID")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "entryUUID: "); ok {
			return v
		}
	}
	t.Fatalf("no entryUUID for %s in %q", login, out)
	return ""
}

// syncEnv is a Syncer writing into a real access.Service on a fresh SQLite file.
type syncEnv struct {
	db     *store.DB
	access *access.Service
	syncer *Syncer
	cfg    Config
}

func newSyncEnv(t testing.TB, cfg Config) *syncEnv {
	t.Helper()
	return newSyncEnvWith(t, cfg, access.Options{})
}

// newSyncEnvWith is newSyncEnv with access options (directory verifiers).
func newSyncEnvWith(t testing.TB, cfg Config, opts access.Options) *syncEnv {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.Logger = slog.New(slog.DiscardHandler)
	svc, err := access.Open(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	s, err := NewSyncer(ctx, cfg, db, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &syncEnv{db: db, access: svc, syncer: s, cfg: cfg}
}

// state is what sealgate knows of a directory user, for comparisons.
type state struct {
	id       string
	groups   string // comma-separated, sorted
	disabled bool
}

// known returns sealgate's directory users by login.
func (e *syncEnv) known(t testing.TB) map[string]state {
	t.Helper()
	us, err := e.access.ExternalUsers(context.Background(), "ldap")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]state{}
	for _, u := range us {
		m[u.Login] = state{id: u.ExternalID, groups: strings.Join(u.Groups, ","), disabled: u.Disabled}
	}
	return m
}

// run syncs and fails the test on error.
func (e *syncEnv) run(t testing.TB, opts SyncOptions) *Report {
	t.Helper()
	rep, err := e.syncer.Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("sync %+v: %v", opts, err)
	}
	return rep
}
