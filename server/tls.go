package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/secret"
)

// TLSSettings is the "tls" section of sealgate.yaml. With it the node
// serves HTTPS only on its listen address; without it, plain HTTP.
type TLSSettings struct {
	// Certificate is the server certificate's PEM file, leaf first, then
	// its issuers.
	Certificate string `yaml:"certificate"`
	// Key is the server's private key (PEM), from a file or an environment
	// variable.
	Key secret.Ref `yaml:"key"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"minVersion"`
	// ClientAuth is "none" (default), "request" (a certificate is verified
	// when the client sends one) or "require" (no handshake without one).
	ClientAuth string `yaml:"clientAuth"`
	// ClientCAs are PEM files of the CAs client certificates must chain to.
	ClientCAs []string `yaml:"clientCAs"`
}

// tlsCheckInterval bounds how often a handshake looks at the certificate
// files' modification times.
const tlsCheckInterval = time.Second

// tlsConfig checks the settings and returns the listener's configuration,
// whose certificate follows the files on disk.
func (t TLSSettings) tlsConfig(log *slog.Logger) (*tls.Config, *certReloader, error) {
	if t.Certificate == "" || t.Key.IsZero() {
		return nil, nil, errors.New("tls: certificate and key are both required")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch t.MinVersion {
	case "", "1.2":
	case "1.3":
		cfg.MinVersion = tls.VersionTLS13
	default:
		return nil, nil, fmt.Errorf("tls.minVersion %q: use 1.2 or 1.3 (older versions are not offered)", t.MinVersion)
	}
	// Verified either way: a certificate the CAs did not issue, or one that
	// has expired, ends the handshake; the chain then lets access match
	// registered subjects as well as fingerprints.
	switch t.ClientAuth {
	case "", "none":
		if len(t.ClientCAs) > 0 {
			return nil, nil, errors.New("tls.clientCAs is set but tls.clientAuth is none; set clientAuth to request or require")
		}
	case "request":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, nil, fmt.Errorf("tls.clientAuth %q: use none, request or require", t.ClientAuth)
	}
	if cfg.ClientAuth != tls.NoClientCert {
		if len(t.ClientCAs) == 0 {
			return nil, nil, fmt.Errorf("tls.clientAuth %s needs tls.clientCAs, the CAs that issue client certificates", t.ClientAuth)
		}
		cfg.ClientCAs = x509.NewCertPool()
		for _, f := range t.ClientCAs {
			certs, err := devpki.ReadCertsPEM(f)
			if err != nil {
				return nil, nil, fmt.Errorf("tls.clientCAs %s: %w", f, err)
			}
			for _, c := range certs {
				cfg.ClientCAs.AddCert(c)
			}
		}
	}
	r := &certReloader{settings: t, log: log}
	if err := r.Reload(); err != nil {
		return nil, nil, err
	}
	cfg.GetCertificate = r.certificate
	return cfg, r, nil
}

// certReloader serves the certificate and key on disk: a handshake after a
// change (at most tlsCheckInterval later) or after Reload gets the new pair,
// while established connections keep theirs.
type certReloader struct {
	settings TLSSettings
	log      *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the loaded files
	failed  string // the stamp last refused, so a bad pair is reported once
	checked time.Time
}

// Reload reads the certificate and key now; on an error the pair in use
// stays in use.
func (r *certReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.load(r.fileStamp())
}

func (r *certReloader) load(stamp string) error {
	certPEM, err := os.ReadFile(r.settings.Certificate)
	if err != nil {
		return fmt.Errorf("tls.certificate: %w", err)
	}
	keyPEM, err := r.settings.Key.Value()
	if err != nil {
		return fmt.Errorf("tls.key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors describe PEM blocks and key types, never key material.
		return fmt.Errorf("tls: certificate %s with key from %s: %w", r.settings.Certificate, r.settings.Key, err)
	}
	r.cert, r.stamp = &pair, stamp
	r.log.Info("TLS certificate loaded", "certificate", r.settings.Certificate, "subject", pair.Leaf.Subject.String(),
		"serial", pair.Leaf.SerialNumber.Text(16), "notAfter", pair.Leaf.NotAfter)
	return nil
}

// fileStamp identifies the current versions of the certificate and key
// files; a key from the environment cannot change while the node runs.
func (r *certReloader) fileStamp() string {
	stamp := ""
	for _, f := range []string{r.settings.Certificate, r.settings.Key.File} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return stamp
}

// certificate is tls.Config.GetCertificate.
func (r *certReloader) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= tlsCheckInterval {
		r.checked = now
		if stamp := r.fileStamp(); stamp != r.stamp && stamp != r.failed {
			// A rotation writes two files: until both are in place the
			// pair does not match, and the old one keeps serving.
			if err := r.load(stamp); err != nil {
				r.failed = stamp
				r.log.Warn("TLS certificate changed on disk but was not loaded; the previous one stays in use", "err", err)
			}
		}
	}
	return r.cert, nil
}
