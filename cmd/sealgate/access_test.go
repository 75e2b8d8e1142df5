package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/store"
)

// runAccessCLI runs one access command in process, as a separate
// `sealgate --data dir ...` invocation would, and returns its output.
func runAccessCLI(t *testing.T, dir string, newCmd func(*app) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, &app{dataDir: dir}, newCmd, args...)
}

func TestAccessCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	t.Setenv("ALICE_PASSWORD", "alice-has-a-long-password")
	must(runAccessCLI(t, dir, newUserCmd, "add", "alice", "--password-env", "ALICE_PASSWORD", "--role", "auditor"))
	out := must(runAccessCLI(t, dir, newUserCmd, "add", "bob"))
	bobPW := regexp.MustCompile(`shown once\): (\S+)`).FindStringSubmatch(out)
	if bobPW == nil {
		t.Fatalf("user add without a password printed %q", out)
	}
	must(runAccessCLI(t, dir, newGroupCmd, "add", "finance"))
	must(runAccessCLI(t, dir, newGroupCmd, "add", "board", "--require-totp"))
	must(runAccessCLI(t, dir, newGroupCmd, "require-totp", "board", "--off"))
	must(runAccessCLI(t, dir, newGroupCmd, "add-member", "finance", "alice"))
	must(runAccessCLI(t, dir, newGroupCmd, "add-member", "finance", "bob"))
	out = must(runAccessCLI(t, dir, newProcessCmd, "add", "erp", "--description", "invoicing"))
	firstSecret := regexp.MustCompile(`clientSecret: (\S+)`).FindStringSubmatch(out)
	out = must(runAccessCLI(t, dir, newProcessCmd, "rotate-secret", "erp"))
	newSecret := regexp.MustCompile(`clientSecret: (\S+)`).FindStringSubmatch(out)
	if firstSecret == nil || newSecret == nil || firstSecret[1] == newSecret[1] {
		t.Fatalf("process secrets %v then %v", firstSecret, newSecret)
	}
	certFile := filepath.Join(dir, "erp.pem")
	if err := devpki.WriteCertsPEM(certFile, selfSigned(t)); err != nil {
		t.Fatal(err)
	}
	must(runAccessCLI(t, dir, newProcessCmd, "add-cert", "erp", "--cert", certFile))
	must(runAccessCLI(t, dir, newRuleCmd, "add", "finance-company", "--group", "finance", "--seal", "company", "--strength", "password"))
	must(runAccessCLI(t, dir, newRuleCmd, "add", "erp-invoices", "--process", "erp", "--seal", "company", "--format", "pades",
		"--daily-quota", "100", "--network", "10.0.0.0/8"))
	if _, err := runAccessCLI(t, dir, newRuleCmd, "add", "both", "--user", "bob", "--process", "erp", "--seal", "*"); fault.CodeOf(err) != access.CodeRuleInvalid {
		t.Fatalf("rule with two subjects: %v", err)
	}

	for _, tt := range []struct {
		cmd  func(*app) *cobra.Command
		args []string
		want []string
	}{
		{newUserCmd, []string{"list"}, []string{"alice", "auditor", "finance", "bob"}},
		{newGroupCmd, []string{"list"}, []string{"finance", "alice,bob", "board    local   optional"}},
		{newProcessCmd, []string{"list"}, []string{"erp", "active", "invoicing"}},
		{newRuleCmd, []string{"list"}, []string{"finance-company", "group:finance", "strength=password", "quota=100/day", "networks=10.0.0.0/8"}},
	} {
		out := must(runAccessCLI(t, dir, tt.cmd, tt.args...))
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v does not show %q:\n%s", tt.args, w, out)
			}
		}
	}

	// A running server's Service sees the CLI's changes on its next decision.
	db, err := store.Open(ctx, filepath.Join(dir, "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	server, err := access.Open(ctx, db, access.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	bob, err := server.AuthenticateUser(ctx, access.UserCredentials{Login: "bob", Password: bobPW[1]})
	if err != nil {
		t.Fatal(err)
	}
	seal := access.Action{Operation: access.OpSeal, Seal: "company", Format: "pades", Level: "B-B", Documents: 1}
	if _, err := server.Decide(ctx, bob, seal); err != nil {
		t.Fatalf("bob before the rule is removed: %v", err)
	}
	must(runAccessCLI(t, dir, newRuleCmd, "remove", "finance-company"))
	if _, err := server.Decide(ctx, bob, seal); fault.CodeOf(err) != access.CodeSealNotPermitted {
		t.Fatalf("bob after the CLI removed the rule: %v", err)
	}
	if _, err := server.AuthenticateClientSecret(ctx, "erp", firstSecret[1], netip.Addr{}); fault.CodeOf(err) != access.CodeUnauthenticated {
		t.Fatalf("rotated-out secret: %v", err)
	}
	must(runAccessCLI(t, dir, newUserCmd, "disable", "bob"))
	qr := filepath.Join(dir, "alice-totp.png")
	if out := must(runAccessCLI(t, dir, newUserCmd, "totp-enroll", "alice", "--qr", qr)); !strings.HasPrefix(out, "otpauth://totp/sealgate:alice?") {
		t.Fatalf("totp-enroll printed %q", out)
	}
	if png, err := os.ReadFile(qr); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("QR code file: %v", err)
	}
	if _, err := server.AuthenticateUser(ctx, access.UserCredentials{Login: "bob", Password: bobPW[1]}); fault.CodeOf(err) != access.CodeUnauthenticated {
		t.Fatalf("disabled bob: %v", err)
	}

	// The audit trail: intact, exported, then tampered with.
	if out := must(runAccessCLI(t, dir, newAuditCmd, "verify")); !strings.Contains(out, "audit trail intact") {
		t.Fatalf("audit verify: %s", out)
	}
	exported := filepath.Join(dir, "audit.jsonl")
	must(runAccessCLI(t, dir, newAuditCmd, "export", "-o", exported))
	b, err := os.ReadFile(exported)
	if err != nil || bytes.Count(b, []byte("\n")) < 10 || !bytes.Contains(b, []byte(`"type":"rule.remove"`)) {
		t.Fatalf("export: %v\n%s", err, b)
	}
	for _, secret := range []string{"alice-has-a-long-password", bobPW[1], firstSecret[1], newSecret[1]} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the audit export contains a secret (%.6s…)", secret)
		}
	}
	raw, err := sql.Open("sqlite", filepath.Join(dir, "sealgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE access_audit SET actor = 'cli:nobody' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	_, err = runAccessCLI(t, dir, newAuditCmd, "verify")
	if fault.CodeOf(err) != CodeAuditTampered || !strings.Contains(err.Error(), "event 3") {
		t.Fatalf("audit verify after tampering: %v", err)
	}
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "erp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRuleAddRefusesUnknownSeal: with seals configured, `rule add` refuses a
// seal id the node does not have and names the configured ones.
func TestRuleAddRefusesUnknownSeal(t *testing.T) {
	dir := t.TempDir()
	pool, _ := signingtest.DevSeal(t, signingtest.NewSoftHSM(t), signingtest.DevSealOptions{ID: "acme"})
	cfg, err := yaml.Marshal(map[string]any{"data": dir, "signing": pool})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "sealgate.yaml")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(newCmd func(*app) *cobra.Command, args ...string) (string, error) {
		return runCLI(t, &app{configPath: cfgFile}, newCmd, args...)
	}
	if out, err := run(newProcessCmd, "add", "erp"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	_, err = run(newRuleCmd, "add", "erp-invoices", "--process", "erp", "--seal", "company-seal")
	if fault.CodeOf(err) != access.CodeRuleInvalid || !strings.Contains(err.Error(), `seal "company-seal" is not configured; the configured seals are acme`) {
		t.Fatalf("rule naming an unknown seal: %v", err)
	}
	for name, seal := range map[string]string{"erp-acme": "acme", "erp-any": "*"} {
		if out, err := run(newRuleCmd, "add", name, "--process", "erp", "--seal", seal); err != nil {
			t.Fatalf("rule naming seal %q: %v\n%s", seal, err, out)
		}
	}
}
