// Package devsetup prepares a data directory with development defaults, so
// `sealgate serve` works on a fresh machine with no configuration: a
// development CA, a seal certificate for an example organisation whose key
// sits in a SoftHSM token (or, without SoftHSM, in a key file), a development
// TSA certificate, and a sealgate.yaml that points at all of it. Everything is
// labelled "development — not qualified". Running it again reuses what exists.
package devsetup

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/sealgate/sealgate/devpki"
)

// Organization is the example organisation the development seal is issued to.
const Organization = "Example Manufacturing GmbH"

// SealID is the id of the development seal.
const SealID = "dev-seal"

// SoftHSMModule is Debian's SoftHSM2 PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// tokenLabel is the SoftHSM token holding the development seal key.
const tokenLabel = "sealgate-dev"

// Layout names the files of a development data directory.
type Layout struct {
	Dir string
}

// Path joins elem below the data directory.
func (l Layout) Path(elem ...string) string {
	return filepath.Join(append([]string{l.Dir}, elem...)...)
}

// Config is the sealgate.yaml written for development.
func (l Layout) Config() string { return l.Path("sealgate.yaml") }

// SoftHSMConf is the SoftHSM configuration that keeps the development tokens in the data directory.
func (l Layout) SoftHSMConf() string { return l.Path("softhsm", "softhsm2.conf") }

// CA is the development CA certificate (PEM); import it into a validator's
// trust store to see development seals as trusted.
func (l Layout) CA() string { return l.Path("pki", "dev-ca.pem") }

// CAKey is the development CA's private key (PEM, owner-readable only).
func (l Layout) CAKey() string { return l.Path("pki", "dev-ca-key.pem") }

// ServerCert is the development TLS server certificate (PEM, with the CA)
// for localhost, 127.0.0.1 and ::1; ServerKey is its key.
func (l Layout) ServerCert() string { return l.Path("pki", "dev-server.pem") }

// ServerKey is the development TLS server certificate's private key.
func (l Layout) ServerKey() string { return l.Path("pki", "dev-server-key.pem") }

// CRL is the development CA's certificate revocation list (DER).
func (l Layout) CRL() string { return l.Path("pki", "dev-ca.crl") }

// Result says what Prepare found or made.
type Result struct {
	// Created is true when this call made the development setup.
	Created bool
	// SoftHSM is true when the seal key is in a SoftHSM token; false means a
	// software key file (development only).
	SoftHSM bool
	Config  string
	CA      string
}

// Prepare makes the development setup in dir unless dir already has a
// sealgate.yaml; then it only reports what is there.
func Prepare(ctx context.Context, dir string, listen string, log *slog.Logger) (*Result, error) {
	l := Layout{Dir: dir}
	res := &Result{Config: l.Config(), CA: l.CA()}
	if _, err := os.Stat(l.Config()); err == nil {
		_, err := os.Stat(l.SoftHSMConf())
		res.SoftHSM = err == nil
		// Setups made before there was a development server certificate get one.
		if _, err := os.Stat(l.ServerCert()); errors.Is(err, fs.ErrNotExist) && IsDevelopment(dir) {
			ca, err := l.readCA()
			if err != nil {
				return nil, err
			}
			if err := writeServerCert(l, ca); err != nil {
				return nil, err
			}
		}
		return res, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("devsetup: %w", err)
	}
	for _, d := range []string{"pki", "secrets"} {
		if err := os.MkdirAll(l.Path(d), 0o700); err != nil {
			return nil, fmt.Errorf("devsetup: %w", err)
		}
	}
	ca, err := devpki.NewCA(Organization)
	if err != nil {
		return nil, fmt.Errorf("devsetup: CA: %w", err)
	}
	if err := devpki.WriteCertsPEM(l.CA(), ca.Cert); err != nil {
		return nil, fmt.Errorf("devsetup: %w", err)
	}
	if err := devpki.WriteKeyPEM(l.CAKey(), ca.Key); err != nil {
		return nil, fmt.Errorf("devsetup: %w", err)
	}
	if err := writeServerCert(l, ca); err != nil {
		return nil, err
	}

	seal := sealConfig{chain: l.Path("pki", "dev-seal-chain.pem")}
	pub, err := softHSMKey(ctx, l)
	switch {
	case err == nil:
		res.SoftHSM = true
		seal.pinFile = l.Path("secrets", "dev-seal-pin")
	default:
		log.Warn("SoftHSM is not usable; the development seal key is a software key file (development — not qualified)", "reason", err)
		key, kerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if kerr != nil {
			return nil, kerr
		}
		seal.keyFile = l.Path("pki", "dev-seal-key.pem")
		if err := devpki.WriteKeyPEM(seal.keyFile, key); err != nil {
			return nil, fmt.Errorf("devsetup: %w", err)
		}
		pub = key.Public()
	}
	cert, err := ca.IssueSeal(pub, devpki.SealSubject{Organization: Organization, Country: "DE", OrganizationIdentifier: "VATDE-000000000"}, 3*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := devpki.WriteCertsPEM(seal.chain, cert, ca.Cert); err != nil {
		return nil, fmt.Errorf("devsetup: %w", err)
	}

	tsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tsaCert, err := ca.IssueTSA(tsaKey.Public(), Organization, 3*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := devpki.WriteKeyPEM(l.Path("pki", "dev-tsa-key.pem"), tsaKey); err != nil {
		return nil, fmt.Errorf("devsetup: %w", err)
	}
	if err := devpki.WriteCertsPEM(l.Path("pki", "dev-tsa-chain.pem"), tsaCert, ca.Cert); err != nil {
		return nil, fmt.Errorf("devsetup: %w", err)
	}
	// The development CA publishes its CRL as a file the configuration
	// names, so that B-LT seals carry revocation data for the whole chain.
	crl, err := ca.CRL(3 * 365 * 24 * time.Hour)
	if err != nil {
		return nil, fmt.Errorf("devsetup: CRL: %w", err)
	}
	if err := os.WriteFile(l.CRL(), crl, 0o644); err != nil {
		return nil, fmt.Errorf("devsetup: %w", err)
	}
	if err := writeConfig(l, listen, seal); err != nil {
		return nil, err
	}
	res.Created = true
	return res, nil
}

// devTLSValidity is how long development TLS certificates are valid.
const devTLSValidity = 3 * 365 * 24 * time.Hour

// writeServerCert issues the development TLS server certificate, for the
// loopback names a development server is reached by.
func writeServerCert(l Layout, ca *devpki.CA) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cert, err := ca.IssueServer(key.Public(), []string{"localhost", "127.0.0.1", "::1"}, devTLSValidity)
	if err != nil {
		return err
	}
	if err := devpki.WriteKeyPEM(l.ServerKey(), key); err != nil {
		return fmt.Errorf("devsetup: %w", err)
	}
	if err := devpki.WriteCertsPEM(l.ServerCert(), cert, ca.Cert); err != nil {
		return fmt.Errorf("devsetup: %w", err)
	}
	return nil
}

// IssueClientCert issues a development TLS client certificate with common
// name name from the development CA in dir, and writes it and its key to
// pki/<name>-client.pem and pki/<name>-client-key.pem, whose paths it
// returns. Registering it for a process is `sealgate process add-cert`.
func IssueClientCert(dir, name string) (certFile, keyFile string, err error) {
	l := Layout{Dir: dir}
	if name == "" || filepath.Base(name) != name || name[0] == '.' {
		return "", "", fmt.Errorf("devsetup: %q cannot name a certificate file", name)
	}
	ca, err := l.readCA()
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	cert, err := ca.IssueClient(key.Public(), name, devTLSValidity)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = l.Path("pki", name+"-client.pem"), l.Path("pki", name+"-client-key.pem")
	if err := devpki.WriteKeyPEM(keyFile, key); err != nil {
		return "", "", fmt.Errorf("devsetup: %w", err)
	}
	if err := devpki.WriteCertsPEM(certFile, cert, ca.Cert); err != nil {
		return "", "", fmt.Errorf("devsetup: %w", err)
	}
	return certFile, keyFile, nil
}

// readCA reads the development CA's certificate and key.
func (l Layout) readCA() (*devpki.CA, error) {
	certs, err := devpki.ReadCertsPEM(l.CA())
	if err != nil {
		return nil, fmt.Errorf("devsetup: development CA %s: %w", l.CA(), err)
	}
	key, err := devpki.ReadKeyPEM(l.CAKey())
	if err != nil {
		return nil, fmt.Errorf("devsetup: development CA key: %w", err)
	}
	return &devpki.CA{Cert: certs[0], Key: key}, nil
}

// sealConfig is where the development seal's key and chain ended up.
type sealConfig struct {
	chain   string
	pinFile string // set when the key is in SoftHSM
	keyFile string // set for a software key
}

// softHSMKey makes a SoftHSM token in the data directory holding a new
// P-256 seal key and returns its public key. The token's PIN is random and
// kept in secrets/dev-seal-pin (owner-readable only).
func softHSMKey(ctx context.Context, l Layout) (crypto.PublicKey, error) {
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install softhsm2 opensc)", tool)
		}
	}
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return nil, fmt.Errorf("SoftHSM module %s: %w", SoftHSMModule, err)
	}
	tokens := l.Path("softhsm", "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nslots.removable = false\nlog.level = ERROR\n", mustAbs(tokens))
	if err := os.WriteFile(l.SoftHSMConf(), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	pin, soPIN := randomHex(8), randomHex(8)
	if err := os.WriteFile(l.Path("secrets", "dev-seal-pin"), []byte(pin+"\n"), 0o600); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "SOFTHSM2_CONF="+mustAbs(l.SoftHSMConf()))
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			// The output names the token, never the PIN, which is passed as an argument only.
			return fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(out.Bytes()))
		}
		return nil
	}
	if err := run("softhsm2-util", "--init-token", "--free", "--label", tokenLabel, "--pin", pin, "--so-pin", soPIN); err != nil {
		return nil, err
	}
	if err := run("pkcs11-tool", "--module", SoftHSMModule, "--token-label", tokenLabel, "--login", "--pin", pin,
		"--keypairgen", "--key-type", "EC:prime256v1", "--id", "01", "--label", SealID, "--usage-sign"); err != nil {
		return nil, err
	}
	pubFile := l.Path("softhsm", "dev-seal-pub.der")
	if err := run("pkcs11-tool", "--module", SoftHSMModule, "--token-label", tokenLabel,
		"--read-object", "--type", "pubkey", "--id", "01", "-o", pubFile); err != nil {
		return nil, err
	}
	der, err := os.ReadFile(pubFile)
	if err != nil {
		return nil, err
	}
	os.Remove(pubFile)
	return x509.ParsePKIXPublicKey(der)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// IsDevelopment reports whether dir holds a development setup made by Prepare.
func IsDevelopment(dir string) bool {
	_, err := os.Stat(Layout{Dir: dir}.CA())
	return err == nil
}
