package tsa_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/tsa"
)

// authority is a development TSA served on loopback, with its PEM files for openssl.
type authority struct {
	ca        *devpki.CA
	cert      *x509.Certificate
	responder *tsa.Responder
	server    *httptest.Server
	roots     *x509.CertPool
	caPEM     string
	tsaPEM    string
}

func newAuthority(t testing.TB, opts tsa.ResponderOptions) *authority {
	t.Helper()
	ca, err := devpki.NewCA("Example Manufacturing GmbH")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueTSA(key.Public(), "Example Manufacturing GmbH", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tsa.NewResponder(key, []*x509.Certificate{cert, ca.Cert}, opts)
	if err != nil {
		t.Fatalf("NewResponder: %v", err)
	}
	a := &authority{ca: ca, cert: cert, responder: r, roots: x509.NewCertPool()}
	a.roots.AddCert(ca.Cert)
	a.server = httptest.NewServer(r)
	t.Cleanup(a.server.Close)
	dir := t.TempDir()
	a.caPEM, a.tsaPEM = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tsa.pem")
	if err := devpki.WriteCertsPEM(a.caPEM, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(a.tsaPEM, cert); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *authority) client(t *testing.T, hash string) *tsa.Client {
	t.Helper()
	c, err := tsa.NewClient(tsa.ClientConfig{URL: a.server.URL, Hash: hash})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// post sends a raw query to the responder and returns the raw reply.
func (a *authority) post(t *testing.T, query []byte) []byte {
	t.Helper()
	resp, err := http.Post(a.server.URL, tsa.QueryMediaType, bytes.NewReader(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tsa.ReplyMediaType {
		t.Fatalf("reply: HTTP %d %q, want 200 %s", resp.StatusCode, resp.Header.Get("Content-Type"), tsa.ReplyMediaType)
	}
	return body
}

func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

func write(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sum(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// Tokens the client obtains verify with openssl ts -verify over the data and
// with tsa.Verify, for each imprint hash, and echo the imprint and nonce.
func TestClientTokensVerifyWithOpenSSLAndVerify(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{Accuracy: 1500 * time.Millisecond})
	data := []byte("the signature value being timestamped")
	dataPath := write(t, "data", data)
	for _, tc := range []struct {
		name string
		hash crypto.Hash
		flag string
	}{
		{"sha256", crypto.SHA256, "-sha256"},
		{"sha384", crypto.SHA384, "-sha384"},
		{"sha512", crypto.SHA512, "-sha512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := a.client(t, tc.name)
			if c.TimestampHash() != tc.hash {
				t.Fatalf("TimestampHash = %v, want %v", c.TimestampHash(), tc.hash)
			}
			before := time.Now().Add(-time.Second)
			token, err := c.Timestamp(context.Background(), sum(tc.hash, data), tc.hash)
			if err != nil {
				t.Fatalf("Timestamp: %v", err)
			}
			tokenPath := write(t, "tst.der", token)
			if out, err := openssl(t, "ts", "-verify", "-data", dataPath, "-in", tokenPath, "-token_in",
				"-CAfile", a.caPEM, "-untrusted", a.tsaPEM); err != nil || !strings.Contains(out, "Verification: OK") {
				t.Fatalf("openssl ts -verify: %v\n%s", err, out)
			}
			info, err := tsa.Verify(token, sum(tc.hash, data), tc.hash, tsa.VerifyOptions{Roots: a.roots})
			if err != nil {
				t.Fatalf("tsa.Verify: %v", err)
			}
			if info.GenTime.Before(before.Truncate(time.Second)) || info.GenTime.After(time.Now()) {
				t.Errorf("genTime %v is not now", info.GenTime)
			}
			if info.Policy != tsa.DevelopmentPolicy.String() || info.Accuracy != 1500*time.Millisecond || info.Hash != tc.hash.String() {
				t.Errorf("token policy %s accuracy %v hash %s, want %s 1.5s %s", info.Policy, info.Accuracy, info.Hash, tsa.DevelopmentPolicy, tc.hash)
			}
			if !info.Certificate.Equal(a.cert) || !strings.Contains(info.TSA, devpki.NotQualified) || len(info.Chain) != 2 {
				t.Errorf("token TSA %q chain %d, want the development TSA certificate and its CA", info.TSA, len(info.Chain))
			}
			if info.Nonce == nil {
				t.Errorf("the token does not echo the client's nonce")
			}

			other := sum(tc.hash, []byte("other data"))
			if _, err := tsa.Verify(token, other, tc.hash, tsa.VerifyOptions{Roots: a.roots}); fault.CodeOf(err) != cms.CodeTimestampInvalid {
				t.Errorf("token verified over other data: got %v, want %s", err, cms.CodeTimestampInvalid)
			}
			if out, err := openssl(t, "ts", "-verify", "-data", write(t, "other", []byte("other data")), "-in", tokenPath, "-token_in",
				"-CAfile", a.caPEM, "-untrusted", a.tsaPEM); err == nil {
				t.Errorf("openssl verified the token over other data:\n%s", out)
			}
		})
	}
}

// Queries made by openssl itself get tokens that openssl verifies against
// the query (imprint, nonce, policy); without -cert the token carries no
// certificate, as RFC 3161 requires, and verifies with the certificate given.
func TestResponderAnswersOpenSSLQueries(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{})
	dataPath := write(t, "data", []byte("document"))
	for _, certReq := range []bool{true, false} {
		dir := t.TempDir()
		q := filepath.Join(dir, "q.tsq")
		args := []string{"ts", "-query", "-data", dataPath, "-sha256", "-out", q}
		if certReq {
			args = append(args, "-cert")
		}
		if out, err := openssl(t, args...); err != nil {
			t.Fatalf("openssl ts -query: %v\n%s", err, out)
		}
		query, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		reply := write(t, "r.tsr", a.post(t, query))
		if out, err := openssl(t, "ts", "-verify", "-queryfile", q, "-in", reply,
			"-CAfile", a.caPEM, "-untrusted", a.tsaPEM); err != nil || !strings.Contains(out, "Verification: OK") {
			t.Fatalf("certReq=%v: openssl ts -verify -queryfile: %v\n%s", certReq, err, out)
		}
		token, err := tsa.ParseResponse(a.post(t, query))
		if err != nil {
			t.Fatal(err)
		}
		info, err := cms.ParseTimestampToken(token)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Certificate != nil; got != certReq {
			t.Errorf("certReq=%v: token carries the certificate = %v", certReq, got)
		}
		if _, err := tsa.Verify(token, sum(crypto.SHA256, []byte("document")), crypto.SHA256,
			tsa.VerifyOptions{Roots: a.roots, Certificates: []*x509.Certificate{a.cert}}); err != nil {
			t.Errorf("certReq=%v: tsa.Verify with the TSA certificate given: %v", certReq, err)
		}
	}
}

// Every token gets its own serial number.
func TestResponderSerialsAreUnique(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{})
	c := a.client(t, "")
	seen := map[string]bool{}
	for i := range 50 {
		token, err := c.Timestamp(context.Background(), sum(crypto.SHA256, []byte{byte(i)}), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cms.ParseTimestampToken(token)
		if err != nil {
			t.Fatal(err)
		}
		if seen[info.SerialNumber] {
			t.Fatalf("serial %s issued twice", info.SerialNumber)
		}
		seen[info.SerialNumber] = true
	}
}

type imprintASN struct {
	Alg    struct{ Algorithm asn1.ObjectIdentifier }
	Digest []byte
}

// marshalQuery builds a TimeStampReq by hand, to send what a correct client would not.
func marshalQuery(t *testing.T, version int, alg asn1.ObjectIdentifier, digest []byte, policy asn1.ObjectIdentifier) []byte {
	t.Helper()
	q := struct {
		Version int
		Imprint imprintASN
		Policy  asn1.ObjectIdentifier `asn1:"optional"`
	}{version, imprintASN{struct{ Algorithm asn1.ObjectIdentifier }{alg}, digest}, policy}
	der, err := asn1.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Queries the authority cannot honour get a rejection status with the
// matching failInfo — an answer the client can act on, never an HTTP 500.
func TestResponderRejectsBadQueries(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{})
	sha256OID, sha1OID := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	d := sum(crypto.SHA256, []byte("x"))
	tests := []struct {
		name     string
		query    []byte
		wantFail string // as in tsa's error and openssl's "Failure info"
		openssl  string
	}{
		{"not DER", []byte("hello, TSA"), "badDataFormat", "the data submitted has the wrong format"},
		{"oversized", bytes.Repeat([]byte{0x30}, 5000), "badDataFormat", "the data submitted has the wrong format"},
		{"version 2", marshalQuery(t, 2, sha256OID, d, nil), "badDataFormat", "the data submitted has the wrong format"},
		{"SHA-1 imprint", marshalQuery(t, 1, sha1OID, d[:20], nil), "badAlg", "unrecognized or unsupported algorithm identifier"},
		{"imprint of the wrong length", marshalQuery(t, 1, sha256OID, d[:16], nil), "badDataFormat", "the data submitted has the wrong format"},
		{"unknown policy", marshalQuery(t, 1, sha256OID, d, asn1.ObjectIdentifier{1, 2, 3, 4}), "unacceptedPolicy", "the requested TSA policy is not supported by the TSA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply := a.post(t, tc.query)
			_, err := tsa.ParseResponse(reply)
			if fault.CodeOf(err) != tsa.CodeTSARejected || !strings.Contains(err.Error(), tc.wantFail) {
				t.Fatalf("got %v, want %s with %s", err, tsa.CodeTSARejected, tc.wantFail)
			}
			out, err := openssl(t, "ts", "-reply", "-in", write(t, "r.tsr", reply), "-text")
			if err != nil || !strings.Contains(out, "Status: Rejected") || !strings.Contains(out, tc.openssl) {
				t.Errorf("openssl ts -reply -text: %v\n%s", err, out)
			}
		})
	}

	resp, err := http.Get(a.server.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d, want 405", resp.StatusCode)
	}
}

// The responder only signs with a certificate fit for timestamping.
func TestNewResponderRequiresTimestampingCertificate(t *testing.T) {
	ca, err := devpki.NewCA("Example Manufacturing GmbH")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := ca.IssueSeal(key.Public(), devpki.SealSubject{Organization: "Example Manufacturing GmbH"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsa.NewResponder(key, []*x509.Certificate{seal, ca.Cert}, tsa.ResponderOptions{}); fault.CodeOf(err) != cms.CodeTimestampInvalid {
		t.Errorf("seal certificate as TSA: got %v, want %s", err, cms.CodeTimestampInvalid)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tsaCert, err := ca.IssueTSA(other.Public(), "Example Manufacturing GmbH", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsa.NewResponder(key, []*x509.Certificate{tsaCert}, tsa.ResponderOptions{}); fault.CodeOf(err) != signing.CodeKeyMismatch {
		t.Errorf("key of another certificate: got %v, want %s", err, signing.CodeKeyMismatch)
	}
}

// A token is trusted only through the roots it is verified against.
func TestVerifyRequiresTrustedAuthority(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{})
	d := sum(crypto.SHA256, []byte("doc"))
	token, err := a.client(t, "").Timestamp(context.Background(), d, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := devpki.NewCA("Someone Else")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(stranger.Cert)
	if _, err := tsa.Verify(token, d, crypto.SHA256, tsa.VerifyOptions{Roots: roots}); fault.CodeOf(err) != cms.CodeChainUntrusted {
		t.Errorf("unknown root: got %v, want %s", err, cms.CodeChainUntrusted)
	}
	if _, err := tsa.Verify(token, d, crypto.SHA256, tsa.VerifyOptions{Roots: a.roots, At: time.Now().AddDate(2, 0, 0)}); fault.CodeOf(err) != cms.CodeChainUntrusted {
		t.Errorf("after the TSA certificate expired: got %v, want %s", err, cms.CodeChainUntrusted)
	}
}

// The client authenticates with HTTP Basic, reading the password from its
// secret source, and reports failures of the authority with stable codes
// and without the password.
func TestClientAuthenticationAndFailures(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{})
	const password = "s3cret-tsa-pw"
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "sealgate" || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="tsa"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		a.responder.ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(broken.Close)
	wrongType := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>login</html>"))
	}))
	t.Cleanup(wrongType.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	t.Setenv("TSA_PASSWORD", password)
	t.Setenv("TSA_WRONG_PASSWORD", "not-the-password")
	d := sum(crypto.SHA256, []byte("doc"))
	tests := []struct {
		name string
		cfg  tsa.ClientConfig
		want fault.Code // "" means a token
	}{
		{"basic auth with the right password", tsa.ClientConfig{URL: guarded.URL, Username: "sealgate", Password: secret.Ref{Env: "TSA_PASSWORD"}}, ""},
		{"basic auth with a wrong password", tsa.ClientConfig{URL: guarded.URL, Username: "sealgate", Password: secret.Ref{Env: "TSA_WRONG_PASSWORD"}}, tsa.CodeTSAUnreachable},
		{"password source not set", tsa.ClientConfig{URL: guarded.URL, Username: "sealgate", Password: secret.Ref{Env: "TSA_UNSET_PASSWORD"}}, tsa.CodeConfigInvalid},
		{"no credentials", tsa.ClientConfig{URL: guarded.URL}, tsa.CodeTSAUnreachable},
		{"authority answers 503", tsa.ClientConfig{URL: broken.URL}, tsa.CodeTSAUnreachable},
		{"authority answers HTML", tsa.ClientConfig{URL: wrongType.URL}, tsa.CodeTSAUnreachable},
		{"authority unreachable", tsa.ClientConfig{URL: closed.URL}, tsa.CodeTSAUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tsa.NewClient(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			token, err := c.Timestamp(context.Background(), d, crypto.SHA256)
			if fault.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want code %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the error reveals the password: %v", err)
			}
			if tc.want == "" {
				if _, err := tsa.Verify(token, d, crypto.SHA256, tsa.VerifyOptions{Roots: a.roots}); err != nil {
					t.Errorf("token: %v", err)
				}
			}
		})
	}

	c := a.client(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Timestamp(ctx, d, crypto.SHA256); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
}

// The "tsa" section of sealgate.yaml configures the client; typos and bad
// values are refused, naming the input.
func TestClientConfigFromYAML(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sealgate.yaml")
	yaml := "tsa:\n  url: https://tsa.example.com/tsr\n  username: sealgate\n  password: {env: TSA_PASSWORD}\n  hash: sha384\n  timeout: 3s\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path, dir)
	if err != nil {
		t.Fatal(err)
	}
	var cfg tsa.ClientConfig
	if ok, err := f.Section("tsa", &cfg); !ok || err != nil {
		t.Fatalf("Section: %v %v", ok, err)
	}
	c, err := tsa.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://tsa.example.com/tsr" || c.Username != "sealgate" || c.Password.Env != "TSA_PASSWORD" || c.Hash != crypto.SHA384 || c.Timeout != 3*time.Second {
		t.Errorf("client from yaml = %+v", c)
	}

	for _, tc := range []struct {
		name string
		cfg  tsa.ClientConfig
		want string
	}{
		{"no url", tsa.ClientConfig{}, `""`},
		{"ftp url", tsa.ClientConfig{URL: "ftp://tsa"}, "ftp://tsa"},
		{"unknown hash", tsa.ClientConfig{URL: "http://tsa", Hash: "md5"}, "md5"},
		{"username without password", tsa.ClientConfig{URL: "http://tsa", Username: "u"}, `"u"`},
		{"missing caFile", tsa.ClientConfig{URL: "https://tsa", CAFile: "/nonexistent-ca.pem"}, "/nonexistent-ca.pem"},
		{"missing client certificate", tsa.ClientConfig{URL: "https://tsa", ClientCert: "/nonexistent.pem", ClientKey: "/nonexistent.key"}, "/nonexistent.pem"},
	} {
		if _, err := tsa.NewClient(tc.cfg); fault.CodeOf(err) != tsa.CodeConfigInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %s naming %s", tc.name, err, tsa.CodeConfigInvalid, tc.want)
		}
	}
}

// The request carries the imprint, the nonce and certReq, as openssl reads it.
func TestRequestEncoding(t *testing.T) {
	d := sha256.Sum256([]byte("doc"))
	q, err := tsa.Request(d[:], crypto.SHA256, big.NewInt(0x1234567890))
	if err != nil {
		t.Fatal(err)
	}
	out, err := openssl(t, "ts", "-query", "-in", write(t, "q.tsq", q), "-text")
	if err != nil {
		t.Fatalf("openssl ts -query -text: %v\n%s", err, out)
	}
	for _, want := range []string{"Hash Algorithm: sha256", "Nonce: 0x1234567890", "Certificate required: yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl does not show %q:\n%s", want, out)
		}
	}
}

// Over HTTPS the client trusts the authority through caFile and proves
// itself with its TLS client certificate; without the certificate the
// authority refuses the handshake.
func TestClientTLSClientCertificate(t *testing.T) {
	a := newAuthority(t, tsa.ResponderOptions{})
	srv := httptest.NewUnstartedServer(a.responder)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(a.ca.Cert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	serverCA := filepath.Join(dir, "server-ca.pem")
	if err := devpki.WriteCertsPEM(serverCA, srv.Certificate()); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.ca.IssueSeal(key.Public(), devpki.SealSubject{Organization: "Example Manufacturing GmbH"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := devpki.WriteCertsPEM(certPath, cert); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteKeyPEM(keyPath, key); err != nil {
		t.Fatal(err)
	}

	d := sum(crypto.SHA256, []byte("doc"))
	for _, tc := range []struct {
		name string
		cfg  tsa.ClientConfig
		want fault.Code
	}{
		{"with client certificate", tsa.ClientConfig{URL: srv.URL, CAFile: serverCA, ClientCert: certPath, ClientKey: keyPath}, ""},
		{"without client certificate", tsa.ClientConfig{URL: srv.URL, CAFile: serverCA}, tsa.CodeTSAUnreachable},
		{"without the server's CA", tsa.ClientConfig{URL: srv.URL, ClientCert: certPath, ClientKey: keyPath}, tsa.CodeTSAUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tsa.NewClient(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Timestamp(context.Background(), d, crypto.SHA256); fault.CodeOf(err) != tc.want {
				t.Fatalf("got %v, want code %q", err, tc.want)
			}
		})
	}
}
