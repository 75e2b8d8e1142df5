// Package signingtest gives tests of every package real seal cards: SoftHSM2
// tokens made per test with softhsm2-util and pkcs11-tool, and development
// seals on them ready for signing.NewPool. It also holds what the tests of
// the signing packages share: a development PKI with keys of every seal
// type, a timestamp authority on loopback, the independent verifiers
// (openssl, pdfsig, qpdf) run over their output, and benchmark helpers.
//
// SoftHSM reads SOFTHSM2_CONF when its library is initialised, and a
// process initialises it once: a test using these tokens must not run in
// parallel with another one using SoftHSM, and must close its pools before
// it ends (t.Cleanup(pool.Close)) so the next test's tokens are seen.
package signingtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/signing"
)

// ModulePath is where Debian's softhsm2 package installs the PKCS#11 library.
const ModulePath = "/usr/lib/softhsm/libsofthsm2.so"

// ModuleName is the module name DevSeal's configurations use.
const ModuleName = "softhsm"

const soPIN = "5678"

// SoftHSM is a SoftHSM2 installation private to one test: its own token
// directory and configuration file.
type SoftHSM struct {
	t testing.TB
	// Dir holds the configuration, the tokens and files the helpers write.
	Dir string
	// Module is the PKCS#11 library path.
	Module string
}

// NewSoftHSM makes an empty token directory and points SOFTHSM2_CONF at it
// for the rest of the test. It fails the test when softhsm2 or opensc
// (pkcs11-tool) is not installed.
func NewSoftHSM(t testing.TB) *SoftHSM {
	t.Helper()
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian packages softhsm2 and opensc", tool)
		}
	}
	if _, err := os.Stat(ModulePath); err != nil {
		t.Fatalf("SoftHSM2 library: %v (install softhsm2)", err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nslots.removable = false\nlog.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return &SoftHSM{t: t, Dir: dir, Module: ModulePath}
}

// run runs a SoftHSM or OpenSC tool and fails the test with its output on error.
func (h *SoftHSM) run(name string, args ...string) string {
	h.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pkcs11Tool runs pkcs11-tool logged in to token.
func (h *SoftHSM) pkcs11Tool(token, pin string, args ...string) string {
	h.t.Helper()
	return h.run("pkcs11-tool", append([]string{"--module", h.Module, "--token-label", token, "--login", "--pin", pin}, args...)...)
}

// InitToken creates a token in a free slot.
func (h *SoftHSM) InitToken(label, pin string) {
	h.t.Helper()
	h.run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN)
}

// DeleteToken removes a token and its keys, as if the card were pulled out.
func (h *SoftHSM) DeleteToken(label string) {
	h.t.Helper()
	h.run("softhsm2-util", "--delete-token", "--token", label)
}

// GenerateKey makes a key pair on the token (keyType as pkcs11-tool takes
// it: "rsa:2048", "EC:prime256v1", "EC:secp384r1") with the given label and
// hex id, and returns its public key.
func (h *SoftHSM) GenerateKey(token, pin, keyLabel, id, keyType string) crypto.PublicKey {
	h.t.Helper()
	h.pkcs11Tool(token, pin, "--keypairgen", "--key-type", keyType, "--id", id, "--label", keyLabel, "--usage-sign")
	out := filepath.Join(h.t.TempDir(), "pub.der")
	args := []string{"--module", h.Module, "--token-label", token, "--read-object", "--type", "pubkey", "--id", id, "--output-file", out}
	if err := exec.Command("pkcs11-tool", args...).Run(); err != nil {
		// OpenSC 0.23 cannot export P-384 public keys ("cannot create
		// EVP_PKEY"); its object listing still shows the point.
		return h.listedECKey(token, id)
	}
	der, err := os.ReadFile(out)
	if err != nil {
		h.t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		h.t.Fatalf("public key of %q on token %q: %v", keyLabel, token, err)
	}
	return pub
}

// listedECKey reads an EC public key from pkcs11-tool's object listing
// (CKA_EC_POINT and CKA_EC_PARAMS in hex).
func (h *SoftHSM) listedECKey(token, id string) crypto.PublicKey {
	h.t.Helper()
	out := h.run("pkcs11-tool", "--module", h.Module, "--token-label", token, "--list-objects", "--type", "pubkey", "--id", id)
	attr := map[string][]byte{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if b, err := hex.DecodeString(strings.TrimSpace(v)); ok && err == nil {
			attr[k] = b
		}
	}
	curves := map[string]elliptic.Curve{"06082a8648ce3d030107": elliptic.P256(), "06052b81040022": elliptic.P384()}
	curve, ok := curves[hex.EncodeToString(attr["EC_PARAMS"])]
	var point []byte
	if _, err := asn1.Unmarshal(attr["EC_POINT"], &point); !ok || err != nil {
		h.t.Fatalf("no P-256 or P-384 public key with id %s on token %q:\n%s", id, token, out)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		h.t.Fatalf("public key with id %s on token %q: %v", id, token, err)
	}
	return pub
}

// ImportKey writes a software-made key (private and public halves) to the
// token, so several tokens can hold the same seal key.
func (h *SoftHSM) ImportKey(token, pin, keyLabel, id string, key crypto.Signer) {
	h.t.Helper()
	dir := h.t.TempDir()
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		h.t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, obj := range []struct {
		typ string
		der []byte
	}{{"privkey", priv}, {"pubkey", pub}} {
		f := filepath.Join(dir, obj.typ+".der")
		if err := os.WriteFile(f, obj.der, 0o600); err != nil {
			h.t.Fatal(err)
		}
		h.pkcs11Tool(token, pin, "--write-object", f, "--type", obj.typ, "--id", id, "--label", keyLabel, "--usage-sign")
	}
}

// PINFile writes pin to a file only the owner reads and returns it as a
// secret source.
func (h *SoftHSM) PINFile(name, pin string) secret.Ref {
	h.t.Helper()
	f := filepath.Join(h.Dir, name+".pin")
	if err := os.WriteFile(f, []byte(pin+"\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return secret.Ref{File: f}
}

// DevSealOptions describes a development seal on SoftHSM tokens. Zero
// fields take the defaults noted.
type DevSealOptions struct {
	ID       string        // seal id; default "dev"
	Tokens   []string      // tokens created to hold the key; default ["seal-1"]
	PIN      string        // user PIN of every token; default "1234"
	Key      crypto.Signer // the seal key; default a new RSA-2048 key
	KeyLabel string        // default "seal"
	KeyID    string        // hex CKA_ID; default "01"
	Sessions int           // sessions per token; default the pool's
	CA       *devpki.CA    // issuer; default a new development CA
	Validity time.Duration // certificate lifetime; default a year
}

// DevSeal creates the tokens, puts the same seal key on each, issues its seal
// certificate from a development CA and returns a PoolConfig for it (PINs in
// files) together with the CA.
func DevSeal(t testing.TB, h *SoftHSM, opts DevSealOptions) (signing.PoolConfig, *devpki.CA) {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "dev"
	}
	if len(opts.Tokens) == 0 {
		opts.Tokens = []string{"seal-1"}
	}
	if opts.PIN == "" {
		opts.PIN = "1234"
	}
	if opts.KeyLabel == "" {
		opts.KeyLabel = "seal"
	}
	if opts.KeyID == "" {
		opts.KeyID = "01"
	}
	if opts.Validity == 0 {
		opts.Validity = 365 * 24 * time.Hour
	}
	if opts.Key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		opts.Key = k
	}
	if opts.CA == nil {
		ca, err := devpki.NewCA("Example Manufacturing GmbH")
		if err != nil {
			t.Fatal(err)
		}
		opts.CA = ca
	}
	cert, err := opts.CA.IssueSeal(opts.Key.Public(), devpki.SealSubject{Organization: "Example Manufacturing GmbH", Country: "DE"}, opts.Validity)
	if err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(h.Dir, opts.ID+"-chain.pem")
	if err := devpki.WriteCertsPEM(chain, cert, opts.CA.Cert); err != nil {
		t.Fatal(err)
	}
	cfg := signing.PoolConfig{
		Modules: []signing.ModuleConfig{{Name: ModuleName, Path: h.Module}},
		Seals:   []signing.SealConfig{{ID: opts.ID, Certificate: chain}},
	}
	for _, label := range opts.Tokens {
		h.InitToken(label, opts.PIN)
		h.ImportKey(label, opts.PIN, opts.KeyLabel, opts.KeyID, opts.Key)
		cfg.Tokens = append(cfg.Tokens, signing.TokenConfig{Module: ModuleName, Label: label, PIN: h.PINFile(label, opts.PIN), Sessions: opts.Sessions})
		cfg.Seals[0].Keys = append(cfg.Seals[0].Keys, signing.KeyRef{Token: label, Label: opts.KeyLabel, ID: opts.KeyID})
	}
	return cfg, opts.CA
}

// Merge joins pool configurations made by DevSeal, keeping one entry per
// module name.
func Merge(cfgs ...signing.PoolConfig) signing.PoolConfig {
	var out signing.PoolConfig
	seen := map[string]bool{}
	for _, c := range cfgs {
		for _, m := range c.Modules {
			if !seen[m.Name] {
				seen[m.Name] = true
				out.Modules = append(out.Modules, m)
			}
		}
		out.Tokens = append(out.Tokens, c.Tokens...)
		out.Seals = append(out.Seals, c.Seals...)
	}
	return out
}
