package server_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/server"
)

// tlsNode is a node serving HTTPS on a real loopback listener through
// Server.Serve, verifying client certificates issued by its CA.
type tlsNode struct {
	*node
	addr              string
	certFile, keyFile string
	roots             *x509.CertPool
}

func newTLSNode(t *testing.T, clientAuth string) *tlsNode {
	t.Helper()
	dir := t.TempDir()
	tn := &tlsNode{certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server-key.pem")}
	n, cfg := nodeConfig(t, func(doc map[string]any) {
		doc["tls"] = map[string]any{
			"certificate": tn.certFile,
			"key":         map[string]any{"file": tn.keyFile},
			"clientAuth":  clientAuth,
			"clientCAs":   []string{filepath.Join(doc["data"].(string), "ca.pem")},
		}
	})
	tn.node = n
	tn.rotate(t)
	tn.roots = x509.NewCertPool()
	tn.roots.AddCert(n.CA.Cert)
	n.open(t, cfg)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn.addr = ln.Addr().String()
	tn.URL = "https://" + tn.addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return tn
}

// rotate writes a new server certificate and key for 127.0.0.1 over the
// configured files and returns the certificate's serial.
func (tn *tlsNode) rotate(t *testing.T) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tn.CA.IssueServer(key.Public(), []string{"localhost", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteKeyPEM(tn.keyFile, key); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(tn.certFile, cert, tn.CA.Cert); err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber
}

// client returns an HTTPS client presenting cert (none when nil).
func (tn *tlsNode) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: tn.roots}
	if cert != nil {
		// Sent even when the server names other CAs, as a client that
		// ignores the server's list would.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// clientCert issues a client certificate from ca valid for validity
// (negative: already expired).
func clientCert(t *testing.T, ca *devpki.CA, cn string, validity time.Duration) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueClient(key.Public(), cn, validity)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: crypto.Signer(key), Leaf: cert}
}

func fingerprint(c *tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// sealCAdES posts a document for a CAdES seal with no Authorization header.
func (tn *tlsNode) sealCAdES(c *http.Client) (*http.Response, []byte, error) {
	resp, err := c.Post(tn.URL+"/api/v1/seals?format=cades", "application/octet-stream", strings.NewReader("order 4711"))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// A process seals over HTTPS with nothing but its registered certificate;
// certificates that are not registered, expired or from another CA get
// nothing.
func TestTLSClientCertificates(t *testing.T) {
	tn := newTLSNode(t, "request")
	ctx := context.Background()

	pinned := clientCert(t, tn.CA, "erp-pinned", 24*time.Hour)
	if err := tn.Access.AddProcessCert(ctx, tn.ERPID, access.ProcessCert{Fingerprint: fingerprint(pinned)}, "test"); err != nil {
		t.Fatal(err)
	}
	bySubject := clientCert(t, tn.CA, "erp-by-subject", 24*time.Hour)
	if err := tn.Access.AddProcessCert(ctx, tn.ERPID, access.ProcessCert{Subject: bySubject.Leaf.Subject.String()}, "test"); err != nil {
		t.Fatal(err)
	}
	unknown := clientCert(t, tn.CA, "nobody", 24*time.Hour)
	expired := clientCert(t, tn.CA, "erp-pinned", -time.Hour)
	if err := tn.Access.AddProcessCert(ctx, tn.ERPID, access.ProcessCert{Fingerprint: fingerprint(expired)}, "test"); err != nil {
		t.Fatal(err)
	}
	stranger, err := devpki.NewCA("Someone Else")
	if err != nil {
		t.Fatal(err)
	}
	foreign := clientCert(t, stranger, "erp-by-subject", 24*time.Hour)
	// Pinned too: the CA check must refuse it before any mapping.
	if err := tn.Access.AddProcessCert(ctx, tn.ERPID, access.ProcessCert{Fingerprint: fingerprint(foreign)}, "test"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		cert      *tls.Certificate
		status    int        // 0: the handshake is refused
		code      fault.Code // the problem code of a refusal
		handshake string     // what the refused handshake says
	}{
		{"fingerprint registered", pinned, http.StatusOK, "", ""},
		{"subject registered", bySubject, http.StatusOK, "", ""},
		{"no certificate", nil, http.StatusUnauthorized, access.CodeUnauthenticated, ""},
		{"not registered", unknown, http.StatusUnauthorized, access.CodeUnauthenticated, ""},
		{"expired", expired, 0, "", "expired certificate"},
		{"another CA", foreign, 0, "", "unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := tn.sealCAdES(tn.client(tc.cert))
			if tc.status == 0 {
				if err == nil {
					t.Fatalf("handshake accepted: %s %s", resp.Status, body)
				}
				if !strings.Contains(err.Error(), tc.handshake) {
					t.Fatalf("refused with %v, want an alert saying %q", err, tc.handshake)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d: %s", resp.Status, tc.status, body)
			}
			if tc.status == http.StatusOK {
				if resp.Header.Get("Content-Type") != "application/pkcs7-signature" || len(body) < 100 {
					t.Fatalf("not a CAdES signature: %s, %d bytes", resp.Header.Get("Content-Type"), len(body))
				}
				return
			}
			var p struct{ Code fault.Code }
			if err := json.Unmarshal(body, &p); err != nil || p.Code != tc.code {
				t.Fatalf("problem %s, want code %s", body, tc.code)
			}
		})
	}

	t.Run("token by certificate", func(t *testing.T) {
		// RFC 8705 tls_client_auth: the certificate is the client authentication.
		resp, err := tn.client(pinned).PostForm(tn.URL+"/api/v1/oauth/token", url.Values{"grant_type": {"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(tok.AccessToken, access.BearerTokenPrefix) {
			t.Fatalf("token for the certificate: %s, %v", resp.Status, err)
		}
	})

	t.Run("TLS 1.1", func(t *testing.T) {
		c := tn.client(pinned)
		cfg := c.Transport.(*http.Transport).TLSClientConfig
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if _, _, err := tn.sealCAdES(c); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("TLS 1.1 handshake: %v, want a protocol version refusal", err)
		}
	})

	t.Run("plain HTTP", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", tn.addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "POST /api/v1/seals?format=cades HTTP/1.1\r\nHost: "+tn.addr+"\r\nContent-Length: 5\r\n\r\nhello"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTP request to an HTTPS server") {
			t.Fatalf("plain HTTP got %s %q, want 400 naming HTTPS", resp.Status, body)
		}
		// The connection is closed: nothing more is read from it.
		if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("after the refusal read %d bytes, %v; want EOF", n, err)
		}
	})
}

// servedSerial is the serial of the leaf a response came over.
func servedSerial(t *testing.T, c *http.Client, url string) *big.Int {
	t.Helper()
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber
}

// A certificate rotated on disk is served to new connections without a
// restart, while open connections keep going; ReloadTLS (SIGHUP) takes it
// at once.
func TestTLSCertificateRotation(t *testing.T) {
	tn := newTLSNode(t, "require")
	first := servedSerial(t, tn.client(clientCert(t, tn.CA, "probe", time.Hour)), tn.URL)
	kept := tn.client(clientCert(t, tn.CA, "probe", time.Hour))
	if got := servedSerial(t, kept, tn.URL); got.Cmp(first) != 0 {
		t.Fatalf("served serial %x, want %x", got, first)
	}

	// Modification times must differ from the first pair's.
	time.Sleep(20 * time.Millisecond)
	second := tn.rotate(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := servedSerial(t, tn.client(clientCert(t, tn.CA, "probe", time.Hour)), tn.URL)
		if got.Cmp(second) == 0 {
			break
		}
		if got.Cmp(first) != 0 || time.Now().After(deadline) {
			t.Fatalf("new connections get serial %x; want %x (rotated from %x)", got, second, first)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := servedSerial(t, kept, tn.URL); got.Cmp(first) != 0 {
		t.Fatalf("the open connection was replaced: serial %x, want %x", got, first)
	}

	// A half-written rotation (a key that does not match) keeps the pair in use.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteKeyPEM(tn.keyFile, other); err != nil {
		t.Fatal(err)
	}
	if err := tn.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("ReloadTLS with a mismatched key: %v", err)
	}
	if got := servedSerial(t, tn.client(clientCert(t, tn.CA, "probe", time.Hour)), tn.URL); got.Cmp(second) != 0 {
		t.Fatalf("after a failed reload serial %x, want %x", got, second)
	}

	third := tn.rotate(t)
	if err := tn.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, tn.client(clientCert(t, tn.CA, "probe", time.Hour)), tn.URL); got.Cmp(third) != 0 {
		t.Fatalf("after ReloadTLS serial %x, want %x", got, third)
	}

	// clientAuth require: no certificate, no handshake.
	if _, err := tn.client(nil).Get(tn.URL + "/healthz"); err == nil {
		t.Fatal("a client without a certificate was served with clientAuth require")
	}
}

// A tls section that cannot work is refused at start, naming the key.
func TestTLSSettingsRefused(t *testing.T) {
	ca, err := devpki.NewCA("Example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := devpki.WriteCertsPEM(caFile, ca.Cert); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  map[string]any
		want string
	}{
		{"no key", map[string]any{"certificate": caFile}, "certificate and key are both required"},
		{"TLS 1.1", map[string]any{"certificate": caFile, "key": map[string]any{"file": caFile}, "minVersion": "1.1"}, "tls.minVersion"},
		{"unknown client auth", map[string]any{"certificate": caFile, "key": map[string]any{"file": caFile}, "clientAuth": "optional"}, "tls.clientAuth"},
		{"require without CAs", map[string]any{"certificate": caFile, "key": map[string]any{"file": caFile}, "clientAuth": "require"}, "needs tls.clientCAs"},
		{"CAs without client auth", map[string]any{"certificate": caFile, "key": map[string]any{"file": caFile}, "clientCAs": []string{caFile}}, "clientAuth is none"},
		{"key in the config", map[string]any{"certificate": caFile, "key": caFile}, "config section tls"},
		{"not a key pair", map[string]any{"certificate": caFile, "key": map[string]any{"file": caFile}}, "tls: certificate " + caFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg := nodeConfig(t, func(doc map[string]any) { doc["tls"] = tc.tls })
			srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				srv.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
