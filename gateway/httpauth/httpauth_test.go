package httpauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/store"
)

func openService(t *testing.T, opts access.Options) *access.Service {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.Password = access.PasswordParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	svc, err := access.Open(ctx, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// tokenServer serves the token endpoint over TLS, asking for (not
// requiring) client certificates.
func tokenServer(t *testing.T, svc *access.Service) *httptest.Server {
	t.Helper()
	a := httpauth.New(svc, httpauth.Options{})
	srv := httptest.NewUnstartedServer(a.TokenHandler())
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

type tokenReply struct {
	status      int
	wwwAuth     string
	retryAfter  string
	cacheCtl    string
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func postToken(t *testing.T, client *http.Client, srvURL string, form url.Values, basic []string) tokenReply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srvURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := tokenReply{status: resp.StatusCode, wwwAuth: resp.Header.Get("WWW-Authenticate"), cacheCtl: resp.Header.Get("Cache-Control"),
		retryAfter: resp.Header.Get("Retry-After")}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTokenEndpointClientCredentialsGrant(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, access.Options{TokenTTL: 10 * time.Minute})
	_, secret, err := svc.AddProcess(ctx, "erp", "", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AddProcess(ctx, "certproc", "", nil, "test"); err != nil {
		t.Fatal(err)
	}
	cert := clientCert(t)
	if err := svc.AddProcessCert(ctx, "certproc", access.ProcessCert{Fingerprint: fingerprintOf(cert.Leaf)}, "test"); err != nil {
		t.Fatal(err)
	}
	srv := tokenServer(t, svc)
	certClient := func() *http.Client {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		return &http.Client{Transport: tr}
	}()
	grant := url.Values{"grant_type": {"client_credentials"}}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}

	tests := []struct {
		name    string
		client  *http.Client
		form    url.Values
		basic   []string
		status  int
		errCode string // RFC 6749 §5.2 error, "" for a token
		wwwAuth bool
	}{
		{"client_secret_basic", srv.Client(), grant, []string{"erp", secret}, 200, "", false},
		{"client_secret_post", srv.Client(), with(grant, "client_id", "erp", "client_secret", secret), nil, 200, "", false},
		{"tls_client_auth", certClient, with(grant, "client_id", "certproc"), nil, 200, "", false},
		{"certificate of another client id", certClient, with(grant, "client_id", "erp"), nil, 401, "invalid_client", false},
		{"wrong secret over Basic", srv.Client(), grant, []string{"erp", "sgp_wrong"}, 401, "invalid_client", true},
		{"unknown client over Basic", srv.Client(), grant, []string{"nobody", "sgp_wrong"}, 401, "invalid_client", true},
		{"wrong secret in the form", srv.Client(), with(grant, "client_id", "erp", "client_secret", "sgp_wrong"), nil, 401, "invalid_client", false},
		{"no client authentication", srv.Client(), grant, nil, 401, "invalid_client", false},
		{"two authentication methods", srv.Client(), with(grant, "client_secret", secret), []string{"erp", secret}, 400, "invalid_request", false},
		{"missing grant_type", srv.Client(), url.Values{}, []string{"erp", secret}, 400, "invalid_request", false},
		{"password grant", srv.Client(), url.Values{"grant_type": {"password"}}, []string{"erp", secret}, 400, "unsupported_grant_type", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postToken(t, tt.client, srv.URL, tt.form, tt.basic)
			if r.status != tt.status || r.Error != tt.errCode || (r.wwwAuth != "") != tt.wwwAuth || r.cacheCtl != "no-store" {
				t.Fatalf("got %+v", r)
			}
			if tt.errCode != "" {
				return
			}
			if r.TokenType != "Bearer" || r.ExpiresIn != 600 || !strings.HasPrefix(r.AccessToken, access.BearerTokenPrefix) {
				t.Fatalf("token response %+v", r)
			}
			p, err := svc.AuthenticateBearer(ctx, r.AccessToken, netipLoopback)
			if err != nil || p.Kind != access.KindProcess {
				t.Fatalf("issued token: %+v, %v", p, err)
			}
		})
	}
}

func TestTokenEndpointLocksOutGuessing(t *testing.T) {
	ctx := context.Background()
	svc := openService(t, access.Options{Lockout: access.LockoutPolicy{AccountFailures: 3}})
	_, secret, err := svc.AddProcess(ctx, "erp", "", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := tokenServer(t, svc)
	grant := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i < 3; i++ {
		if r := postToken(t, srv.Client(), srv.URL, grant, []string{"erp", "sgp_guess"}); r.status != 401 {
			t.Fatalf("guess %d: %+v", i+1, r)
		}
	}
	r := postToken(t, srv.Client(), srv.URL, grant, []string{"erp", secret})
	if r.status != http.StatusTooManyRequests || r.Error != "invalid_client" || !strings.Contains(r.Description, "try again") || r.retryAfter != "60" {
		t.Fatalf("right secret while locked: %+v", r)
	}
}

func TestAuthenticateRequests(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clockNow := func() time.Time { return now }
	svc := openService(t, access.Options{Now: clockNow})
	a := httpauth.New(svc, httpauth.Options{})
	if _, err := svc.AddUser(ctx, access.NewUser{Login: "carol", Password: "correct horse battery"}, "test"); err != nil {
		t.Fatal(err)
	}
	en, err := svc.EnrollTOTP(ctx, "carol", "test")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := otp.NewKeyFromURL(en.URL)
	code := func() string {
		c, _ := totp.GenerateCode(key.Secret(), now)
		now = now.Add(30 * time.Second) // each code once
		return c
	}
	if _, err := svc.ConfirmTOTP(ctx, "carol", code(), "test"); err != nil {
		t.Fatal(err)
	}
	login, err := svc.AuthenticateUser(ctx, access.UserCredentials{Login: "carol", Password: "correct horse battery", OTP: code()})
	if err != nil {
		t.Fatal(err)
	}
	session, _, err := svc.StartSession(ctx, login)
	if err != nil {
		t.Fatal(err)
	}

	request := func(mod func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/seals", nil)
		r.RemoteAddr = "[2001:db8::7]:5000"
		mod(r)
		return r
	}
	tests := []struct {
		name     string
		req      func(r *http.Request) // adds the credentials, when the row runs
		kind     access.Kind
		factors  []access.Factor
		approval bool
		code     fault.Code
	}{
		{"no credentials", func(r *http.Request) {}, access.KindAnonymous, nil, false, ""},
		{"user Basic with TOTP header", func(r *http.Request) {
			r.SetBasicAuth("carol", "correct horse battery")
			r.Header.Set(httpauth.OTPHeader, code())
		}, access.KindUser, []access.Factor{access.FactorPassword, access.FactorTOTP}, true, ""},
		{"user Basic without TOTP header", func(r *http.Request) { r.SetBasicAuth("carol", "correct horse battery") },
			"", nil, false, access.CodeTOTPRequired},
		{"session token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+session) },
			access.KindUser, []access.Factor{access.FactorPassword, access.FactorTOTP}, false, ""},
		{"session token with an approval code", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+session)
			r.Header.Set(httpauth.OTPHeader, code())
		}, access.KindUser, []access.Factor{access.FactorPassword, access.FactorTOTP}, true, ""},
		{"unknown bearer token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer sgt_nothing") },
			"", nil, false, access.CodeUnauthenticated},
		{"unsupported scheme", func(r *http.Request) { r.Header.Set("Authorization", "Digest x") },
			"", nil, false, access.CodeUnauthenticated},
		{"malformed Basic", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") },
			"", nil, false, access.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(request(tt.req))
			if fault.CodeOf(err) != tt.code {
				t.Fatalf("error %v, want code %q", err, tt.code)
			}
			if err != nil {
				return
			}
			if p.Kind != tt.kind || !slices.Equal(p.Factors, tt.factors) || (p.Approval != nil) != tt.approval || p.Source.String() != "2001:db8::7" {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

var netipLoopback = netip.MustParseAddr("127.0.0.1")

func clientCert(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "certproc.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
