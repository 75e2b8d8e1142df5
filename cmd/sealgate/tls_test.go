package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/internal/loopback"
)

// TestServeTLSDevelopment follows the README's HTTPS steps with the binary:
// a development client certificate registered for process dev seals with
// no other credential, Basic still works over HTTPS, plain HTTP is refused,
// and SIGHUP makes new connections get a rotated server certificate.
func TestServeTLSDevelopment(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	l := devsetup.Layout{Dir: data}
	var stderr bytes.Buffer
	run := runner(t, data, &stderr)
	run("init")
	run("dev-client-cert", "dev")
	run("process", "add-cert", "dev", "--cert", l.Path("pki", "dev-client.pem"))

	dev, err := os.ReadFile(l.Config())
	if err != nil {
		t.Fatal(err)
	}
	addr := loopback.FreeAddr(t)
	var cfg strings.Builder
	for _, line := range strings.SplitAfter(string(dev), "\n") {
		if !strings.HasPrefix(line, "listen:") {
			cfg.WriteString(line)
		}
	}
	cfg.WriteString("listen: " + addr + "\ntls:\n" +
		"  certificate: " + l.ServerCert() + "\n" +
		"  key: {file: " + l.ServerKey() + "}\n" +
		"  clientAuth: request\n" +
		"  clientCAs: [" + l.CA() + "]\n")
	cfgFile := filepath.Join(data, "sealgate-tls.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	ca, err := devpki.ReadCertsPEM(l.CA())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca[0])
	client := func(withCert bool) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if withCert {
			pair, err := tls.LoadX509KeyPair(l.Path("pki", "dev-client.pem"), l.Path("pki", "dev-client-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	}
	d := startDaemon(t, "https://"+addr, client(false), "--data", data, "--config", cfgFile, "serve")

	seal := func(c *http.Client, user, password string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, d.url+"/api/v1/seals?format=cades", strings.NewReader("order 4711"))
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := seal(client(true), "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("seal with the client certificate alone: %s", resp.Status)
	}
	creds := readCredentials(t, data)
	if resp := seal(client(false), creds.ClientID, creds.ClientSecret); resp.StatusCode != http.StatusOK {
		t.Errorf("seal with the client secret over HTTPS: %s", resp.Status)
	}
	if resp := seal(client(false), "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("seal with no credential: %s", resp.Status)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS server") {
		t.Errorf("plain HTTP to the TLS port: %s %q", resp.Status, body)
	}

	// Rotate the server certificate and tell the server.
	caKey, err := devpki.ReadKeyPEM(l.CAKey())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := (&devpki.CA{Cert: ca[0], Key: caKey}).IssueServer(key.Public(), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteKeyPEM(l.ServerKey(), key); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(l.ServerCert(), rotated, ca[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client(false).Get(d.url + "/healthz")
		if err != nil {
			t.Fatalf("after SIGHUP: %v\n%s", err, d.output)
		}
		resp.Body.Close()
		if resp.TLS.PeerCertificates[0].SerialNumber.Cmp(rotated.SerialNumber) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP new connections still get serial %x, want %x", resp.TLS.PeerCertificates[0].SerialNumber, rotated.SerialNumber)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// SIGHUP reloaded rather than ended the process (it answered above);
	// a handshake may have seen the new files first, and then both reload.
	if n := strings.Count(d.output.String(), `msg="TLS certificate loaded"`); n < 2 {
		t.Errorf("the certificate was loaded %d times, want at least 2 (start, SIGHUP):\n%s", n, d.output)
	}
}
