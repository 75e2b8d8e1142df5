// Package csc is the remote-seal backend: a seal key held by a trust
// service provider, used through the Cloud Signature Consortium API v2
// (CSC API v2.0, "remote signature service"). Its Client speaks the API —
// info, OAuth 2.0 (client credentials, or the authorization-code flow's
// stored refresh token), credentials/list, credentials/info,
// credentials/authorize and signatures/signHash — with timeouts, retries of
// transient failures and renewal of access tokens and SADs before they
// expire. Its Backend makes each configured remote credential a card of the
// seal pool: probed in the background after a failure, limited to a number
// of requests under way, and signing batches of digests under one
// authorization.
package csc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// CodeAuthorizationRequired: the provider wants a person to authorize the
// credential's use (an OTP or push approval no secret reference can
// answer, or the oauth2code auth mode).
const CodeAuthorizationRequired fault.Code = "remote_authorization_required"

// Defaults for a remote credential.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultSessions      = 4
	DefaultSADSignatures = 100
	defaultScope         = "service"
	// attempts is how often a request is sent when the provider answers
	// 5xx or 429 or cannot be reached.
	attempts = 3
	// retryFirst is the first pause between attempts; it doubles, with
	// jitter, and a Retry-After the provider sends takes its place.
	retryFirst = 100 * time.Millisecond
	// retryAfterMax caps a provider's Retry-After: a longer wait is a
	// failure, and the pool signs elsewhere meanwhile.
	retryAfterMax = 5 * time.Second
)

// Error is an error answer of the provider: its HTTP status and the CSC
// error and error_description (CSC API v2.0 §10.1), or the OAuth 2.0 error
// (RFC 6749 §5.2).
type Error struct {
	Method      string
	Status      int
	Code        string
	Description string
	// RetryAfter is the wait the provider asked for (Retry-After), if any.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("csc %s: HTTP %d", e.Method, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// transient reports whether sending the same request again may succeed.
func (e *Error) transient() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// ClientConfig says how to reach one provider as one OAuth client.
type ClientConfig struct {
	// URL is the CSC API base, e.g. https://rs.tsp.example/csc/v2.
	URL string
	// OAuth is sealgate's OAuth client at the provider.
	OAuth signing.RemoteOAuthConfig
	// CA is a PEM file of CAs for the provider's TLS certificate; "" means
	// the system roots.
	CA string
	// Timeout bounds each HTTP request; default DefaultTimeout.
	Timeout time.Duration
	// Log receives warnings (a rotated refresh token that could not be
	// stored); nil discards them.
	Log *slog.Logger
}

// Client is a CSC API v2 client for one provider and one OAuth client. It
// is safe for concurrent use.
type Client struct {
	base    string
	oauth   signing.RemoteOAuthConfig
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	tokenURL string
	token    string
	expires  time.Time // when token must be renewed (ahead of its expiry)
	refresh  string    // the newest refresh token, when the provider rotates it
}

// NewClient returns a client for cfg. It reads the CA file; it makes no
// request yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("provider CA file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("provider CA file %s holds no PEM certificate", cfg.CA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OAuth.Scope == "" {
		cfg.OAuth.Scope = defaultScope
	}
	return &Client{
		base: strings.TrimRight(cfg.URL, "/"), oauth: cfg.OAuth, timeout: cfg.Timeout,
		http: &http.Client{Transport: tr}, tokenURL: cfg.OAuth.TokenURL, log: cfg.Log,
	}, nil
}

// Info is the answer of the info method (CSC API v2.0 §11.1).
type Info struct {
	Specs        string   `json:"specs"`
	Name         string   `json:"name"`
	Region       string   `json:"region,omitempty"`
	AuthType     []string `json:"authType"`
	OAuth2       string   `json:"oauth2,omitempty"`
	OAuth2Issuer string   `json:"oauth2Issuer,omitempty"`
	Methods      []string `json:"methods"`
}

// Info asks the provider what it is and where its OAuth server is.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var info Info
	if err := c.post(ctx, "info", "", struct{}{}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// CredentialInfo is the answer of credentials/info (CSC API v2.0 §11.5).
type CredentialInfo struct {
	Description        string `json:"description,omitempty"`
	SignatureQualifier string `json:"signatureQualifier,omitempty"`
	Key                struct {
		Status string   `json:"status"`
		Algo   []string `json:"algo"`
		Len    int      `json:"len"`
		Curve  string   `json:"curve,omitempty"`
	} `json:"key"`
	Cert struct {
		Status       string   `json:"status,omitempty"`
		Certificates []string `json:"certificates,omitempty"`
		IssuerDN     string   `json:"issuerDN,omitempty"`
		SerialNumber string   `json:"serialNumber,omitempty"`
		SubjectDN    string   `json:"subjectDN,omitempty"`
		ValidFrom    string   `json:"validFrom,omitempty"`
		ValidTo      string   `json:"validTo,omitempty"`
	} `json:"cert"`
	Auth struct {
		Mode       string       `json:"mode"`
		Expression string       `json:"expression,omitempty"`
		Objects    []AuthObject `json:"objects,omitempty"`
	} `json:"auth"`
	// SCAL is "1" (the SAD is not bound to the hashes) or "2" (it is).
	SCAL string `json:"SCAL,omitempty"`
	// Multisign is the most hashes one signatures/signHash call signs.
	Multisign int    `json:"multisign"`
	Lang      string `json:"lang,omitempty"`
}

// AuthObject is one piece of authorization data a credential's explicit
// auth mode asks for.
type AuthObject struct {
	Type        string `json:"type"` // "Password" (a PIN), "OTP", ...
	ID          string `json:"id"`
	Format      string `json:"format,omitempty"`
	Label       string `json:"label,omitempty"`
	Description string `json:"description,omitempty"`
}

// Chain decodes the credential's certificates, end-entity first.
func (ci *CredentialInfo) Chain() ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for i, b64 := range ci.Cert.Certificates {
		der, err := decodeBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		chain = append(chain, cert)
	}
	return chain, nil
}

// ListCredentials returns the credential ids the access token may use
// (credentials/list, §11.4).
func (c *Client) ListCredentials(ctx context.Context) ([]string, error) {
	var out struct {
		CredentialIDs []string `json:"credentialIDs"`
	}
	if err := c.call(ctx, "credentials/list", struct{}{}, &out); err != nil {
		return nil, err
	}
	return out.CredentialIDs, nil
}

// CredentialInfo describes credential id with its whole certificate chain
// and its authorization data (credentials/info, §11.5).
func (c *Client) CredentialInfo(ctx context.Context, id string) (*CredentialInfo, error) {
	req := struct {
		CredentialID string `json:"credentialID"`
		Certificates string `json:"certificates"`
		CertInfo     bool   `json:"certInfo"`
		AuthInfo     bool   `json:"authInfo"`
	}{id, "chain", true, true}
	var ci CredentialInfo
	if err := c.call(ctx, "credentials/info", req, &ci); err != nil {
		return nil, err
	}
	return &ci, nil
}

// AuthData is one answer to an AuthObject (a PIN or OTP value).
type AuthData struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// AuthorizeRequest asks for a SAD (credentials/authorize, §11.6).
type AuthorizeRequest struct {
	CredentialID  string     `json:"credentialID"`
	NumSignatures int        `json:"numSignatures"`
	Hashes        []string   `json:"hashes,omitempty"` // base64; required for SCAL2
	HashAlgorithm string     `json:"hashAlgorithmOID,omitempty"`
	AuthData      []AuthData `json:"authData,omitempty"`
	Description   string     `json:"description,omitempty"`
}

// SAD is signature activation data and how long it is valid.
type SAD struct {
	Value     string
	ExpiresIn time.Duration
}

// Authorize obtains a SAD for req.
func (c *Client) Authorize(ctx context.Context, req AuthorizeRequest) (SAD, error) {
	var out struct {
		SAD       string `json:"SAD"`
		ExpiresIn int    `json:"expiresIn"`
	}
	if err := c.call(ctx, "credentials/authorize", req, &out); err != nil {
		return SAD{}, err
	}
	if out.SAD == "" {
		return SAD{}, errors.New("csc credentials/authorize: the answer holds no SAD")
	}
	if out.ExpiresIn <= 0 {
		out.ExpiresIn = 3600 // the specification's default
	}
	return SAD{Value: out.SAD, ExpiresIn: time.Duration(out.ExpiresIn) * time.Second}, nil
}

// SignHashRequest signs hashes with a SAD (signatures/signHash, §11.9).
type SignHashRequest struct {
	CredentialID  string   `json:"credentialID"`
	SAD           string   `json:"SAD"`
	Hashes        []string `json:"hashes"` // base64
	HashAlgorithm string   `json:"hashAlgorithmOID,omitempty"`
	SignAlgo      string   `json:"signAlgo"`
	SignAlgoParam string   `json:"signAlgoParams,omitempty"` // base64 DER
	OperationMode string   `json:"operationMode,omitempty"`
}

// SignHash returns the signatures of req.Hashes, in their order, decoded.
func (c *Client) SignHash(ctx context.Context, req SignHashRequest) ([][]byte, error) {
	var out struct {
		Signatures []string `json:"signatures"`
	}
	if err := c.call(ctx, "signatures/signHash", req, &out); err != nil {
		return nil, err
	}
	if len(out.Signatures) != len(req.Hashes) {
		return nil, fmt.Errorf("csc signatures/signHash: %d signatures for %d hashes", len(out.Signatures), len(req.Hashes))
	}
	sigs := make([][]byte, len(out.Signatures))
	for i, s := range out.Signatures {
		b, err := decodeBase64(s)
		if err != nil {
			return nil, fmt.Errorf("csc signatures/signHash: signature %d: %w", i, err)
		}
		sigs[i] = b
	}
	return sigs, nil
}

// call sends an authenticated API request. An access token the provider
// no longer accepts (401) is replaced once.
func (c *Client) call(ctx context.Context, method string, req, resp any) error {
	token, err := c.accessToken(ctx)
	if err != nil {
		return err
	}
	err = c.post(ctx, method, token, req, resp)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusUnauthorized {
		c.dropToken(token)
		if token, err = c.accessToken(ctx); err != nil {
			return err
		}
		err = c.post(ctx, method, token, req, resp)
	}
	return err
}

// post sends one JSON request to method (relative to the base URL),
// retrying transient failures.
func (c *Client) post(ctx context.Context, method, token string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.send(ctx, method, func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/json")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r, nil
	}, resp)
}

// send makes the request up to attempts times while the provider answers
// 5xx or 429 or cannot be reached, waiting between attempts (as long as a
// Retry-After says, when it says). Each attempt is bounded by the timeout.
func (c *Client) send(ctx context.Context, method string, build func(context.Context) (*http.Request, error), resp any) error {
	pause := retryFirst
	var lastErr error
	for attempt := range attempts {
		if attempt > 0 {
			wait := pause + rand.N(pause/2)
			var e *Error
			if errors.As(lastErr, &e) {
				if ra := e.RetryAfter; ra > retryAfterMax {
					return lastErr
				} else if ra > 0 {
					wait = ra
				}
			}
			select {
			case <-ctx.Done():
				return lastErr
			case <-time.After(wait):
			}
			pause *= 2
		}
		err := c.once(ctx, method, build, resp)
		if err == nil {
			return nil
		}
		lastErr = err
		var e *Error
		if ctx.Err() != nil || (errors.As(err, &e) && !e.transient()) {
			return err
		}
	}
	return lastErr
}

// once makes one attempt.
func (c *Client) once(ctx context.Context, method string, build func(context.Context) (*http.Request, error), resp any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := build(ctx)
	if err != nil {
		return err
	}
	r, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("csc %s: %w", method, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("csc %s: reading the answer: %w", method, err)
	}
	if r.StatusCode/100 != 2 {
		e := &Error{Method: method, Status: r.StatusCode}
		var ans struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(b, &ans) == nil {
			e.Code, e.Description = ans.Error, ans.Description
		}
		e.RetryAfter = parseRetryAfter(r.Header.Get("Retry-After"))
		return e
	}
	if err := json.Unmarshal(b, resp); err != nil {
		return fmt.Errorf("csc %s: the answer is not the JSON expected: %w", method, err)
	}
	return nil
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date
// (RFC 9110 §10.2.3).
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// accessToken returns a valid access token, fetching a new one when none
// is held or the one held is about to expire.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	if c.tokenURL == "" {
		info, err := c.Info(ctx)
		if err != nil {
			return "", err
		}
		if info.OAuth2 == "" {
			return "", fault.New(fault.Invalid, signing.CodeConfigInvalid,
				"the provider's info names no oauth2 server; set oauth.tokenUrl")
		}
		c.tokenURL = strings.TrimRight(info.OAuth2, "/") + "/oauth2/token"
	}
	form := url.Values{"client_id": {c.oauth.ClientID}, "scope": {c.oauth.Scope}}
	secretValue, err := c.oauth.ClientSecret.Value()
	if err != nil {
		return "", fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed, "cannot read the OAuth client secret from %s", c.oauth.ClientSecret)
	}
	form.Set("client_secret", string(secretValue))
	if c.oauth.RefreshToken.IsZero() {
		form.Set("grant_type", "client_credentials")
	} else {
		rt := c.refresh
		if rt == "" {
			v, err := c.oauth.RefreshToken.Value()
			if err != nil {
				return "", fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed, "cannot read the OAuth refresh token from %s", c.oauth.RefreshToken)
			}
			rt = string(v)
		}
		form.Set("grant_type", "refresh_token")
		form.Set("refresh_token", rt)
	}
	body := form.Encode()
	var out struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	err = c.send(ctx, "oauth2/token", func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(body))
		if err == nil {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return r, err
	}, &out)
	var e *Error
	if errors.As(err, &e) && (e.Code == "invalid_client" || e.Code == "invalid_grant" || e.Code == "unauthorized_client") {
		// The Error holds only the provider's code and description, never the secret.
		return "", fault.Wrap(err, fault.Unavailable, signing.CodeTokenLoginFailed,
			"the provider refused OAuth client %q (%s)", c.oauth.ClientID, e.Code)
	}
	if err != nil {
		return "", err
	}
	if out.AccessToken == "" || !strings.EqualFold(out.TokenType, "bearer") {
		return "", fmt.Errorf("csc oauth2/token: no bearer access token in the answer (token_type %q)", out.TokenType)
	}
	life := time.Duration(out.ExpiresIn) * time.Second
	if out.ExpiresIn <= 0 {
		life = time.Hour
	}
	c.token = out.AccessToken
	c.expires = time.Now().Add(life - renewAhead(life))
	if out.RefreshToken != "" && out.RefreshToken != c.refresh {
		c.refresh = out.RefreshToken
		c.storeRefreshToken()
	}
	return c.token, nil
}

// storeRefreshToken writes a rotated refresh token back to its file, so
// that a restart uses the newest one (the provider has revoked the older
// ones). A token from an environment variable stays in memory only.
func (c *Client) storeRefreshToken() {
	file := c.oauth.RefreshToken.File
	if file == "" {
		c.log.Warn("the provider rotated the OAuth refresh token; the new one is kept in memory only (refreshToken is an environment variable)")
		return
	}
	tmp := file + ".new"
	err := os.WriteFile(tmp, []byte(c.refresh+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		c.log.Error("the provider rotated the OAuth refresh token and it could not be stored; it is kept in memory until restart",
			"file", file, "err", err)
	}
}

// dropToken forgets token unless it was already replaced.
func (c *Client) dropToken(token string) {
	c.mu.Lock()
	if c.token == token {
		c.token = ""
	}
	c.mu.Unlock()
}

// renewAhead is how long before its expiry a token or SAD of the given
// lifetime is replaced: a quarter of it, at most a minute, so a request
// never starts with one about to lapse.
func renewAhead(life time.Duration) time.Duration {
	return min(life/4, time.Minute)
}

// decodeBase64 accepts standard base64 with or without padding (CSC
// payloads are standard base64; some providers drop the padding).
func decodeBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}
