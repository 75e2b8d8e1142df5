package httpauth_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/internal/loopback"
)

// TestProxiesResolveTheClient sends requests from a trusted proxy
// (127.0.0.1) and from a stranger (127.0.0.2) with forwarding and
// certificate headers, and reads back the address and principal the
// authenticator arrived at.
func TestProxiesResolveTheClient(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, access.Options{})
	pinned, other := clientCert(t).Leaf, clientCert(t).Leaf
	for _, p := range []struct {
		id   string
		cert access.ProcessCert
	}{
		{"erp", access.ProcessCert{Fingerprint: fingerprintOf(pinned)}},
		{"billing", access.ProcessCert{Subject: other.Subject.String()}},
	} {
		if _, _, err := svc.AddProcess(ctx, p.id, "", nil, "test"); err != nil {
			t.Fatal(err)
		}
		if err := svc.AddProcessCert(ctx, p.id, p.cert, "test"); err != nil {
			t.Fatal(err)
		}
	}
	a := httpauth.New(svc, httpauth.Options{})
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r)
		if err != nil {
			problem.Write(w, r, slog.New(slog.DiscardHandler), err)
			return
		}
		problem.WriteJSON(w, http.StatusOK, map[string]string{"addr": httpauth.RemoteAddr(r).String(), "principal": p.String()})
	})
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	xff := access.ProxySettings{TrustedProxies: trusted, ClientCertHeader: "X-Client-Cert"}
	fwd := access.ProxySettings{TrustedProxies: trusted, ForwardedHeader: access.HeaderForwarded}
	verifying := xff
	verifying.ClientCertVerified = true
	certPEM := func(c []byte) string {
		return url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})))
	}

	tests := []struct {
		name      string
		settings  access.ProxySettings
		from      string
		header    http.Header
		addr      string // the client's address; "" when refused
		principal string // or the problem code when refused
	}{
		{"no proxies configured", access.ProxySettings{}, "127.0.0.1", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "127.0.0.1", "anonymous"},
		{"stranger's header ignored", xff, "127.0.0.2", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "127.0.0.2", "anonymous"},
		{"proxy without header", xff, "127.0.0.1", nil, "127.0.0.1", "anonymous"},
		{"one hop", xff, "127.0.0.1", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1", "anonymous"},
		{"right-most untrusted hop", xff, "127.0.0.1", http.Header{"X-Forwarded-For": {"203.0.113.5, 198.51.100.1, 10.1.2.3"}}, "198.51.100.1", "anonymous"},
		{"several header lines", xff, "127.0.0.1", http.Header{"X-Forwarded-For": {"203.0.113.5", "198.51.100.1"}}, "198.51.100.1", "anonymous"},
		{"only trusted hops", xff, "127.0.0.1", http.Header{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, "10.0.0.1", "anonymous"},
		{"IPv6 hop", xff, "127.0.0.1", http.Header{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7", "anonymous"},
		{"malformed hop", xff, "127.0.0.1", http.Header{"X-Forwarded-For": {"1.2.3.4.5"}}, "", "forwarded_invalid"},
		{"Forwarded not read in X-Forwarded-For mode", xff, "127.0.0.1", http.Header{"Forwarded": {"for=198.51.100.1"}}, "127.0.0.1", "anonymous"},
		{"Forwarded", fwd, "127.0.0.1", http.Header{"Forwarded": {`for=192.0.2.60;proto=https;by=10.0.0.1, for="[2001:db8:cafe::17]:4711"`}}, "2001:db8:cafe::17", "anonymous"},
		{"Forwarded with a trusted last hop", fwd, "127.0.0.1", http.Header{"Forwarded": {"for=192.0.2.60", "For=10.9.9.9;proto=https"}}, "192.0.2.60", "anonymous"},
		{"X-Forwarded-For not read in Forwarded mode", fwd, "127.0.0.1", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "127.0.0.1", "anonymous"},
		{"Forwarded for=unknown", fwd, "127.0.0.1", http.Header{"Forwarded": {"for=unknown"}}, "", "forwarded_invalid"},
		{"Forwarded element without for", fwd, "127.0.0.1", http.Header{"Forwarded": {"proto=https"}}, "", "forwarded_invalid"},
		{"Forwarded from a stranger", fwd, "127.0.0.2", http.Header{"Forwarded": {"for=unknown"}}, "127.0.0.2", "anonymous"},
		{"pinned certificate from the proxy", xff, "127.0.0.1", http.Header{"X-Client-Cert": {certPEM(pinned.Raw)}, "X-Forwarded-For": {"198.51.100.4"}}, "198.51.100.4", "process:erp"},
		{"certificate header from a stranger", xff, "127.0.0.2", http.Header{"X-Client-Cert": {certPEM(pinned.Raw)}}, "127.0.0.2", "anonymous"},
		{"certificate header not configured", fwd, "127.0.0.1", http.Header{"X-Client-Cert": {certPEM(pinned.Raw)}}, "127.0.0.1", "anonymous"},
		{"subject mapping needs a verifying proxy", xff, "127.0.0.1", http.Header{"X-Client-Cert": {certPEM(other.Raw)}}, "", "unauthenticated"},
		{"subject mapping behind a verifying proxy", verifying, "127.0.0.1", http.Header{"X-Client-Cert": {certPEM(other.Raw)}}, "127.0.0.1", "process:billing"},
		{"malformed certificate header", xff, "127.0.0.1", http.Header{"X-Client-Cert": {"-----BEGIN%20CERTIFICATE-----%0Agarbage"}}, "", "client_cert_header_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(httpauth.NewProxies(tt.settings, nil).Handler(echo))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			resp, err := loopback.Client(tt.from).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if tt.addr == "" {
				if got["code"] != tt.principal || resp.StatusCode == http.StatusOK {
					t.Fatalf("got %d %v, want the problem %s", resp.StatusCode, got, tt.principal)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || got["addr"] != tt.addr || got["principal"] != tt.principal {
				t.Fatalf("got %d %v, want %s as %s", resp.StatusCode, got, tt.principal, tt.addr)
			}
		})
	}
}

// fingerprintOf is how a certificate is pinned: hex SHA-256 of its DER.
func fingerprintOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
