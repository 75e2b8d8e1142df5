package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/csc/csctest"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// runToken runs `sealgate --config cfg token args...` in process and returns
// its standard output.
func runToken(t *testing.T, cfg string, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, &app{configPath: cfg}, newTokenCmd, args...)
}

// TestTokenCommands takes a new card from key to seal with the CLI: list
// shows it out of service for want of a certificate, csr makes the request,
// import-certificate installs the issued chain, and list shows it in service.
func TestTokenCommands(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	dir := t.TempDir()
	// An existing seal on two cards, and a new card with a key but no certificate yet.
	existing, _ := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "invoices", Tokens: []string{"card-a", "card-b"}})
	h.InitToken("card-new", "4321")
	h.GenerateKey("card-new", "4321", "seal", "02", "EC:prime256v1")
	t.Setenv("CARD_NEW_PIN", "4321")
	cfgFile := filepath.Join(dir, "sealgate.yaml")
	yaml := `signing:
  modules: [{name: softhsm, path: ` + h.Module + `}]
  tokens:
    - {module: softhsm, label: card-a, pin: {file: ` + existing.Tokens[0].PIN.File + `}, sessions: 2}
    - {module: softhsm, label: card-b, pin: {file: ` + existing.Tokens[1].PIN.File + `}, sessions: 2}
    - {module: softhsm, label: card-new, pin: {env: CARD_NEW_PIN}, sessions: 1}
  seals:
    - {id: invoices, certificate: ` + existing.Seals[0].Certificate + `, keys: [{token: card-a, label: seal}, {token: card-b, label: seal}]}
    - {id: contracts, certificate: contracts-chain.pem, keys: [{token: card-new, label: seal, id: "02"}]}
`
	// The new seal's chain file must exist for the pool to start; until the
	// real one is imported it holds a placeholder from another CA.
	placeholder, _ := devpki.NewCA("Placeholder")
	if err := devpki.WriteCertsPEM(filepath.Join(dir, "contracts-chain.pem"), placeholder.Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := runToken(t, cfgFile, "list")
	var ex exitError
	if !errors.As(err, &ex) || ex != 2 {
		t.Fatalf("token list with a seal out of service: %v; want exit status 2\n%s", err, out)
	}
	for _, want := range []string{"card-a", "card-b", "in service", "card-new", "OUT", "invoices", "2/2 card-a,card-b", "contracts", "NO CARD IN SERVICE"} {
		if !strings.Contains(out, want) {
			t.Errorf("token list does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "4321") || strings.Contains(out, "1234") {
		t.Errorf("token list shows a PIN:\n%s", out)
	}

	reqFile := filepath.Join(dir, "contracts.csr")
	if out, err := runToken(t, cfgFile, "csr", "--token", "card-new", "--key", "seal", "--subject", "CN=Example Contracts Seal,O=Example GmbH,C=DE", "-o", reqFile); err != nil {
		t.Fatalf("token csr: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(reqFile)
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("token csr wrote %q", b)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "Example Contracts Seal" {
		t.Fatalf("request: %v, subject %v", err, csr.Subject)
	}

	ca, _ := devpki.NewCA("Example Trust Services")
	issued, err := ca.IssueSeal(csr.PublicKey, devpki.SealSubject{Organization: "Example GmbH"}, 20*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chainFile := filepath.Join(dir, "issued.pem")
	devpki.WriteCertsPEM(chainFile, issued, ca.Cert)
	if out, err := runToken(t, cfgFile, "import-certificate", "--seal", "contracts", chainFile); err != nil {
		t.Fatalf("token import-certificate: %v\n%s", err, out)
	}

	// A chain for another card's key is refused.
	if out, err := runToken(t, cfgFile, "import-certificate", "--seal", "invoices", chainFile); fault.CodeOf(err) != signing.CodeKeyMismatch {
		t.Fatalf("importing the contracts chain for the invoices seal: %v; want key_certificate_mismatch\n%s", err, out)
	}

	out, err = runToken(t, cfgFile, "list")
	if err != nil {
		t.Fatalf("token list after the import: %v\n%s", err, out)
	}
	for _, want := range []string{"contracts", "CN=Example GmbH Seal", "1/1 card-new", "expires in 19 days"} {
		if !strings.Contains(out, want) {
			t.Errorf("token list after the import does not show %q:\n%s", want, out)
		}
	}
}

// TestTokenListRemote: a remote seal credential (CSC API v2) is listed
// beside the local card holding the same seal, in service, without its
// secrets; with the provider down the seal still has its local card.
func TestTokenListRemote(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	tsp, cfg := csctest.StartSeal(t, h, csctest.Options{}, "card-a")
	rc := cfg.Remote[0]
	yaml := `signing:
  modules: [{name: softhsm, path: ` + h.Module + `}]
  tokens: [{module: softhsm, label: card-a, pin: {file: ` + cfg.Tokens[0].PIN.File + `}}]
  remote:
    - name: tsp
      url: ` + rc.URL + `
      credential: ` + rc.Credential + `
      ca: ` + rc.CA + `
      timeout: 1s
      oauth: {clientId: ` + rc.OAuth.ClientID + `, clientSecret: {file: ` + rc.OAuth.ClientSecret.File + `}}
      pin: {file: ` + rc.PIN.File + `}
  seals:
    - {id: acme, certificate: ` + cfg.Seals[0].Certificate + `, keys: [{token: card-a, label: seal}, {remote: tsp}]}
`
	cfgFile := filepath.Join(t.TempDir(), "sealgate.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runToken(t, cfgFile, "list")
	if err != nil {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	for _, want := range []string{"acme-seal", "csc:tsp", "card-a", "2/2 card-a,tsp"} {
		if !strings.Contains(out, want) {
			t.Errorf("token list does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "client-secret-1") || strings.Contains(out, "246810") {
		t.Errorf("token list shows a secret:\n%s", out)
	}

	tsp.SetFault(csctest.Fault{Status: 503})
	out, err = runToken(t, cfgFile, "list")
	if err != nil {
		t.Fatalf("token list with the provider down: %v\n%s", err, out)
	}
	for _, want := range []string{"OUT (retrying)", "HTTP 503", "1/2 card-a,tsp"} {
		if !strings.Contains(out, want) {
			t.Errorf("token list with the provider down does not show %q:\n%s", want, out)
		}
	}
}
